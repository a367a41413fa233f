"""Object storage end to end on a real S3 server on loopback (moto's, in a thread of this process): videos uploaded
to s3://, `ophora curate s3://.../videos/ --out s3://.../curated/`, `ophora train --out s3://...` reading those
shards and publishing its run folder (export, summary, checkpoints under OUT/ray) there, a second run from a fresh
local folder resuming from those checkpoints (storage_path), and a sampling run publishing its videos to s3://.

Discovery of s3:// folders and globs is checked quickly; the end-to-end runs are slow. Every command runs as the
CLI a user types, in a subprocess with its own embedded Ray (its own temp dir) and the
endpoint given the standard way (AWS_ENDPOINT_URL, read by botocore under s3fs); nothing is patched.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ophora.curation.config import CurateConfig
from tests.fixtures.ray_processes import free_port, ray_env

OPHORA = os.path.join(os.path.dirname(sys.executable), "ophora")
BUCKET = "ophora-scale"
# Transcription and the LLM are the slow stages on this machine and have their own tests; the rest of the graph runs.
CURATE_SETS = ["--set", "skip=[transcribe,refine]"] if "skip" in CurateConfig.model_fields else []


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with one bucket; yields (s3fs filesystem, env for the subprocesses)."""
    pytest.importorskip("moto.server")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        **ray_env(),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "RAY_TMPDIR": str(tmp_path_factory.mktemp("rs")),
    }  # an embedded Ray per command, never another
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        env.pop(name, None)
    saved = {k: os.environ.get(k) for k in env if k.startswith("AWS_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})  # for this process's s3fs too
    try:
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir(BUCKET)
        yield fs, env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def ophora(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    run = subprocess.run([OPHORA, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"ophora {' '.join(args)}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


@pytest.fixture(scope="module")
def curated(s3, tmp_path_factory) -> str:
    """Two ~20 s synthetic videos (one with an .srt sidecar) uploaded to s3://, curated to s3://."""
    from ophora.synthetic.corpus import generate_corpus

    fs, env = s3
    corpus = tmp_path_factory.mktemp("s3-corpus")
    generate_corpus(corpus, videos=2, seed=3, minutes=20 / 60, max_height=360, workers=1)
    fs.put(f"{corpus}/videos/", f"{BUCKET}/videos/", recursive=True)
    out = f"s3://{BUCKET}/curated"
    ophora(
        ["curate", f"s3://{BUCKET}/videos/", "--out", out, "--profile", "offline", "--quiet", *CURATE_SETS],
        env,
        tmp_path_factory.mktemp("cwd"),
    )
    return out


def test_s3_folders_and_globs_name_their_videos_with_sidecars(s3):
    from ophora.curation.inputs import InputError, discover

    fs, _ = s3
    for name in ("lib/a.mp4", "lib/a.srt", "lib/deep/b.mkv", "lib/.hidden.mp4", "lib/notes.txt"):
        fs.pipe(f"{BUCKET}/{name}", b"x")
    folder, _ = discover([f"s3://{BUCKET}/lib/"])
    assert [s.uri for s in folder] == [f"s3://{BUCKET}/lib/a.mp4", f"s3://{BUCKET}/lib/deep/b.mkv"]
    assert folder[0].sidecars == {"srt": f"s3://{BUCKET}/lib/a.srt"}
    assert [s.uri for s in discover([f"s3://{BUCKET}/lib"])[0]] == [s.uri for s in folder]  # no trailing slash
    assert [s.uri for s in discover([f"s3://{BUCKET}/lib/*.mp4"])[0]] == [f"s3://{BUCKET}/lib/a.mp4"]
    assert [s.uri for s in discover([f"s3://{BUCKET}/lib/deep/b.mkv"])[0]] == [f"s3://{BUCKET}/lib/deep/b.mkv"]
    for spec, message in (
        (f"s3://{BUCKET}/lib/*.avi", "no video matches"),
        (f"s3://{BUCKET}/nothing/", "no video under this prefix"),
        ("s3://no-such-bucket/x/", "cannot list"),
    ):
        with pytest.raises(InputError, match=message):
            discover([spec])


@pytest.mark.slow
def test_curate_reads_s3_inputs_and_writes_shards_index_ledger_to_s3(s3, curated, tmp_path):
    from ophora.dataset.ledger import read_ledger
    from ophora.dataset.shards import iter_subset, list_shards, read_index

    fs, env = s3
    summary = json.loads(fs.cat(f"{curated}/summary.json"))
    assert summary["inputs"] == 2 and summary["done"] == 2 and summary["failed"] == 0
    assert summary["clips_written"] >= 2
    ledger = read_ledger(curated)
    assert set(ledger.status) == {"done"}
    assert sorted(ledger.source_uri) == sorted(
        f"s3://{p}" for p in fs.find(f"{BUCKET}/videos") if p.endswith((".mp4", ".mkv"))
    )
    index = read_index(curated)
    shards = list_shards(curated, "tpt")
    assert shards and all(s.startswith(f"s3://{BUCKET}/curated/tpt/") for s in shards)
    assert sorted(s.key for s in iter_subset(curated, "tpt", members=("json",))) == sorted(
        index[index.subset == "tpt"].key
    )
    assert not [p for p in fs.find(f"{BUCKET}/curated") if p.endswith(".tmp")]

    again = ophora(
        ["curate", f"s3://{BUCKET}/videos/", "--out", curated, "--profile", "offline", "--quiet", *CURATE_SETS],
        env,
        tmp_path,
    )  # a rerun resumes from the ledger on s3: nothing left to do
    assert json.loads(fs.cat(f"{curated}/summary.json"))["skipped_settled"] == 2, again.stdout[-2000:]


@pytest.mark.slow
def test_training_from_s3_publishes_its_run_there_and_a_fresh_run_resumes_from_its_checkpoints(s3, curated, tmp_path):
    from ophora.training.models import make_tiny_model

    fs, env = s3
    model = make_tiny_model(tmp_path / "tiny-model", seed=0)
    run = f"s3://{BUCKET}/runs/tpt"

    def train(steps: int, out: str, *extra: str) -> None:
        ophora(
            [
                "train",
                "run",
                "--stage",
                "tpt",
                "--shards",
                curated,
                "--out",
                out,
                "--config",
                "tiny",
                "--model",
                str(model),
                "--set",
                f"max_steps={steps}",
                "--set",
                "checkpoint_every=2",
                "--set",
                "scaling.num_workers=1",
                "--set",
                "log_every=1",
                # the clips are curated at 480x720: the tiny model trains on them cropped to its own size
                "--set",
                "data.resize_clips=true",
                "--set",
                "data.height=64",
                "--set",
                "data.width=96",
                *extra,
            ],
            env,
            tmp_path,
        )

    train(2, run)  # --out on s3: the run folder is staged locally and published there
    first = json.loads(fs.cat(f"{run}/summary.json"))
    assert first["steps"] == 2 and first["resumed_from_step"] is None and first["export"] == f"{run}/export"
    assert first["checkpoint"].startswith(f"{run}/ray/ophora-tpt/checkpoint_")  # checkpoints follow --out
    saved = {p.rsplit("/", 1)[-1] for p in fs.find(first["checkpoint"].removeprefix("s3://"))}
    assert {"model.safetensors", "optimizer.pt", "trainer_state.json", "rank-0.json"} <= saved
    assert "model_index.json" in {p.rsplit("/", 1)[-1] for p in fs.find(f"{run}/export".removeprefix("s3://"))}

    fresh = tmp_path / "run-2"  # a fresh local folder: only the checkpoints on s3 know step 2
    train(4, str(fresh), "--set", f"storage_path={run}/ray")
    second = json.loads((fresh / "summary.json").read_text())
    assert second["resumed_from_step"] == 2 and second["steps"] == 4
    assert second["checkpoint"] != first["checkpoint"] and fs.exists(second["checkpoint"])
    assert not (fresh / "ray").exists()  # nothing of Ray Train's went to the local folder
    state = json.loads(fs.cat(f"{second['checkpoint']}/trainer_state.json"))
    assert state["step"] == 4 and len(state["loss_history"]) == 4
    assert state["loss_history"][:2] == first["loss_history"]  # the history came back from s3, not a rerun

    samples = f"s3://{BUCKET}/samples"
    ophora(
        [
            "sample",
            "--model",
            str(model),
            "--prompt",
            "Make a clear corneal incision.",
            "--out",
            samples,
            "--steps",
            "1",
            "--frames",
            "9",
            "--height",
            "32",
            "--width",
            "48",
            "--no-gallery",
        ],
        env,
        tmp_path,
    )
    sampled = json.loads(fs.cat(f"{samples}/summary.json"))
    assert sampled["videos"] == 1 and sampled["manifest"] == f"{samples}/manifest.jsonl"
    [row] = [json.loads(line) for line in fs.cat(f"{samples}/manifest.jsonl").decode().splitlines()]
    assert row["status"] == "ok" and fs.exists(f"{samples}/{row['file']}")
