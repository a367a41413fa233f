"""Two Ray nodes on loopback (`ray start --head` plus `ray start --address`, two logical CPUs each, the second with
its own custom resource): `ray job submit --runtime-env ray_jobs.yaml` runs the curate job, a latent precompute, a
tiny training run and a sampling run on them.

The curate job's stage actors must land on both nodes, every source must end done in its ledger, and its clip keys
must equal those of a local (embedded Ray) run of the same inputs; the precompute, training and sampling jobs must end SUCCEEDED with the latent shards, the
checkpoint and the videos they promise. Every Ray process here has this module's own temp dir and ports, and each
node's process group is ended by its id in teardown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ophora.dataset.ledger import read_ledger
from ophora.dataset.shards import read_index
from tests.fixtures.curate import BACKBONE_FLAGS
from tests.fixtures.ray_processes import RAY, free_port, ray_env, stop_groups

REPO = Path(__file__).resolve().parents[2]
WORKER_RESOURCE = "ophora_worker_node"
# Logical CPUs per node. One is too few: the dedup stage's run-wide grouping is a Ray Data hash shuffle whose map
# task asks for a whole CPU, which a 1-CPU node already holding fractional stage actors never frees (the job hangs).
NODE_CPUS = 2
pytestmark = pytest.mark.slow

# The backbone's stages (probe, scenes, windows, clip, write): scheduling over nodes is what this module tests; the
# content stages have their own tests (test_curate_narration), and test_scale_s3 runs the visual filters remotely.
CURATE_SETS = BACKBONE_FLAGS[2:]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:  # the child keeps its own descriptor
        return subprocess.Popen(
            [RAY, "start", "--block", *args], env=ray_env(), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )


def _alive_nodes(address: str) -> list[dict]:
    from ray.util.state import list_nodes

    try:
        return [n.__dict__ for n in list_nodes(address=address, detail=True) if n.state == "ALIVE"]
    except Exception:  # noqa: BLE001 - the state API answers only once the dashboard is up
        return []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head (the job server) and a worker node (with a custom resource) on 127.0.0.1; yields
    (job-submission address, {node_id: is_head})."""
    temp = tmp_path_factory.mktemp("rc")
    gcs, dash = free_port(), free_port()
    address = f"http://127.0.0.1:{dash}"
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(
            _start(
                [
                    "--head",
                    "--node-ip-address=127.0.0.1",
                    f"--port={gcs}",
                    f"--num-cpus={NODE_CPUS}",
                    "--include-dashboard=true",
                    "--dashboard-host=127.0.0.1",
                    f"--dashboard-port={dash}",
                    f"--dashboard-agent-listen-port={free_port()}",
                    f"--temp-dir={temp}",
                    "--disable-usage-stats",
                ],
                temp.parent / "head.log",
            )
        )
        deadline = time.monotonic() + 180
        while not _alive_nodes(address):
            assert nodes[0].poll() is None, (temp.parent / "head.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Ray head did not come up in 180 s"
            time.sleep(2)
        nodes.append(
            _start(
                [
                    f"--address=127.0.0.1:{gcs}",
                    "--node-ip-address=127.0.0.1",
                    f"--num-cpus={NODE_CPUS}",
                    f"--resources={json.dumps({WORKER_RESOURCE: 1})}",
                    f"--dashboard-agent-listen-port={free_port()}",
                    "--disable-usage-stats",
                ],
                temp.parent / "worker.log",
            )
        )
        while len(alive := _alive_nodes(address)) < 2:
            assert nodes[1].poll() is None, (temp.parent / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker node did not join in 180 s"
            time.sleep(2)
        worker = [n for n in alive if not n["is_head_node"]]
        assert len(worker) == 1 and worker[0]["resources_total"].get(WORKER_RESOURCE) == 1, alive
        yield address, {n["node_id"]: bool(n["is_head_node"]) for n in alive}
    finally:
        stop_groups(*nodes)


def submit(address: str, argv: list[str], name: str) -> tuple[subprocess.CompletedProcess, str]:
    """`ray job submit --runtime-env ray_jobs.yaml -- ophora ...`, waiting for the job to end; returns the
    finished `ray job submit` and the job's submission id."""
    for attempt in range(12):  # the job server answers before every node's agent that runs jobs is up
        sid = f"{name}-{attempt}"
        job = subprocess.run(
            [
                RAY,
                "job",
                "submit",
                "--address",
                address,
                "--submission-id",
                sid,
                "--runtime-env",
                str(REPO / "ray_jobs.yaml"),
                "--",
                "ophora",
                *argv,
            ],
            cwd=REPO,
            env=ray_env(),
            capture_output=True,
            text=True,
            timeout=400,
        )
        if "No available agent" not in job.stdout + job.stderr:
            break
        time.sleep(5)
    return job, sid


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two ~20 s synthetic videos at 360p (one mp4, one mkv with an .srt sidecar)."""
    from ophora.synthetic.corpus import generate_corpus

    out = tmp_path_factory.mktemp("scale-corpus")
    generate_corpus(out, videos=2, seed=3, minutes=20 / 60, max_height=360, workers=1)
    return out / "videos"


def test_curate_job_spreads_its_stage_actors_over_both_nodes_and_matches_a_local_run(
    cluster, corpus, tmp_path, tmp_path_factory
):
    ray_tmp = tmp_path_factory.mktemp("rl")  # short: Ray's socket paths must stay under 108 bytes
    address, nodes = cluster
    assert len(nodes) == 2
    # The local run (an embedded Ray with its own temp dir, never this cluster) goes alongside the cluster job.
    local, on_cluster = tmp_path / "local-out", tmp_path / "cluster-out"
    env = {**ray_env(), "RAY_TMPDIR": str(ray_tmp)}
    log = tmp_path / "local.log"
    with open(log, "wb") as fh:
        local_run = subprocess.Popen(
            [
                os.path.join(os.path.dirname(sys.executable), "ophora"),
                "curate",
                str(corpus),
                "--out",
                str(local),
                "--profile",
                "offline",
                "--quiet",
                *CURATE_SETS,
            ],
            env=env,
            cwd=tmp_path,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        check_cluster_run(address, nodes, corpus, on_cluster)
        assert local_run.wait(600) == 0, log.read_text()[-3000:]
    finally:
        stop_groups(local_run)  # only when a failed check left it running
    cluster_keys = read_index(str(on_cluster)).groupby("subset")["key"].apply(sorted).to_dict()
    local_keys = read_index(str(local)).groupby("subset")["key"].apply(sorted).to_dict()
    assert cluster_keys.get("tpt"), "the cluster run wrote no clip"
    assert cluster_keys == local_keys
    clips = len(set().union(*cluster_keys.values()))
    assert [json.loads((d / "summary.json").read_text())["clips_written"] for d in (on_cluster, local)] == [clips] * 2
    assert set(read_ledger(str(on_cluster)).status) == {"done"}


def check_cluster_run(address: str, nodes: dict, corpus: Path, on_cluster: Path) -> None:
    """Submit the curate job; it must succeed with Ray Data stage actors on both nodes."""
    from ray.job_submission import JobStatus, JobSubmissionClient
    from ray.util.state import list_actors

    job, sid = submit(
        address,
        ["curate", str(corpus), "--out", str(on_cluster), "--profile", "offline", "--quiet", *CURATE_SETS],
        "ophora-scale-curate",
    )
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    client = JobSubmissionClient(address)
    info = client.get_job_info(sid)
    assert info.status == JobStatus.SUCCEEDED

    actors = list_actors(address=address, detail=True, limit=10_000, raise_on_missing_output=False)
    stage_actors = [a for a in actors if a.job_id == info.job_id and "MapWorker" in (a.class_name or "")]
    where = {(a.repr_name or a.class_name, a.node_id) for a in stage_actors}  # Ray Data's actor-pool workers
    assert where, [(a.class_name, a.repr_name, a.job_id, info.job_id) for a in actors]
    assert {node for _, node in where} == set(nodes), where
    stages = " ".join(name for name, _ in where)  # the stages that hold something run as actor pools
    assert "(Scenes)" in stages and "(Clip)" in stages, where


def test_training_job_succeeds_on_the_cluster_and_writes_a_checkpoint(cluster, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    from ophora.training.models import make_tiny_model
    from tests.fixtures.shards import write_clip_shards

    address, _ = cluster
    model = make_tiny_model(tmp_path / "tiny-model", seed=0)
    write_clip_shards(tmp_path / "shards", {"tpt": 4}, per_shard=2)
    out = tmp_path / "run"
    job, sid = submit(
        address,
        [
            "train",
            "run",
            "--stage",
            "tpt",
            "--shards",
            str(tmp_path / "shards"),
            "--out",
            str(out),
            "--config",
            "tiny",
            "--model",
            str(model),
            "--set",
            "max_steps=2",
            "--set",
            "checkpoint_every=2",
        ],
        "ophora-scale-train",
    )
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert JobSubmissionClient(address).get_job_status(sid) == JobStatus.SUCCEEDED
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["workers"] == 2
    checkpoint = Path(summary["checkpoint"])
    assert checkpoint.parent == out / "ray" / "ophora-tpt"
    assert {"model.safetensors", "optimizer.pt", "trainer_state.json"} <= {p.name for p in checkpoint.iterdir()}
    assert json.loads((checkpoint / "trainer_state.json").read_text())["step"] == 2


def test_precompute_job_writes_latent_shards_on_the_cluster(cluster, tmp_path):
    import numpy as np
    from ray.job_submission import JobStatus, JobSubmissionClient

    from ophora.dataset.shards import LATENT_MEMBERS, iter_samples, list_shards
    from ophora.training.models import make_tiny_model
    from tests.fixtures.shards import write_clip_shards

    address, _ = cluster
    model = make_tiny_model(tmp_path / "tiny-model", seed=0)
    keys = write_clip_shards(tmp_path / "shards", {"tpt": 4, "p2ft": 2}, per_shard=2)
    out = tmp_path / "latents"
    job, sid = submit(
        address,
        [
            "train",
            "precompute",
            "--shards",
            str(tmp_path / "shards"),
            "--out",
            str(out),
            "--model",
            str(model),
            "--config",
            "tiny",
            "--actors",
            "2",
        ],
        "ophora-scale-precompute",
    )
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert JobSubmissionClient(address).get_job_status(sid) == JobStatus.SUCCEEDED
    summary = json.loads((out / "precompute-summary.json").read_text())
    assert (summary["shards_in"], summary["shards_out"], summary["samples"], summary["bad"]) == (3, 3, 6, 0)
    for subset, want in keys.items():
        samples = [s for shard in list_shards(str(out), subset) for s in iter_samples(shard, members=LATENT_MEMBERS)]
        assert sorted(s.key for s in samples) == sorted(want)
        for sample in samples:  # 9 frames of 64x96 -> 3 latent frames of 8x12, 4 channels; T5 at the tiny 48 tokens
            latents, embeds = sample.npy("latents.npy"), sample.npy("prompt_embeds.npy")
            assert latents.shape == (3, 4, 8, 12) and latents.dtype == np.float16 and np.isfinite(latents).all()
            assert embeds.shape[0] == 48 and embeds.dtype == np.float16


def test_sample_job_renders_every_prompt_on_the_cluster(cluster, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    from ophora.inference.sample import read_manifest
    from ophora.training.models import make_tiny_model
    from ophora.video import probe_stream

    address, _ = cluster
    model = make_tiny_model(tmp_path / "tiny-model", seed=0)
    (tmp_path / "prompts.txt").write_text("Make a clear corneal incision.\nTear a continuous circular capsulorhexis.\n")
    out = tmp_path / "samples"
    job, sid = submit(
        address,
        [
            "sample",
            "--model",
            str(model),
            "--prompts",
            str(tmp_path / "prompts.txt"),
            "--out",
            str(out),
            "--seed",
            "7",
            "--steps",
            "2",
            "--frames",
            "9",
            "--height",
            "32",
            "--width",
            "48",
            "--ray",
            "--workers",
            "2",
            "--no-gallery",
        ],
        "ophora-scale-sample",
    )
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert JobSubmissionClient(address).get_job_status(sid) == JobStatus.SUCCEEDED
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["mode"], summary["prompts"], summary["videos"], summary["failed"]) == ("ray", 2, 2, 0)
    rows = read_manifest(out)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert sorted(p.name for p in (out / "videos").glob("*.mp4")) == sorted(Path(r["file"]).name for r in rows)
    for row in rows:
        facts = probe_stream(out / row["file"])
        assert (facts.frames, facts.width, facts.height) == (9, 48, 32), row
