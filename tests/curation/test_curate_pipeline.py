"""The curate job's backbone end to end on the synthetic corpus, through one local Ray: what lands in OUT keeps the
promises, through reruns, a killed driver and a killed worker (test_curate_narration runs every stage)."""

from __future__ import annotations

import json
import tarfile

import pytest

from ophora.curation.pipeline import run_curation
from ophora.dataset.ledger import read_ledger
from ophora.dataset.shards import iter_subset, list_shards, read_index
from tests.fixtures.curate import BACKBONE, BACKBONE_FLAGS, mp4_facts, offline_config, scene_of, truth_by_file


@pytest.fixture(scope="module")
def curated(ray_local, small_corpus, tmp_path_factory):
    """The small corpus curated once by the backbone stages: (OUT, summary)."""
    out = tmp_path_factory.mktemp("curated")
    summary = run_curation(offline_config(**BACKBONE), [str(small_corpus / "videos")], str(out), quiet=True)
    return out, summary


def test_every_source_ends_done_in_the_ledger_and_summary(curated, small_corpus):
    out, summary = curated
    ledger = read_ledger(str(out))
    assert len(ledger) == 3 and set(ledger.status) == {"done"}
    assert summary["done"] == 3 and summary["exit_code"] == 0 and summary["clips_written"] > 0
    assert json.loads((out / "summary.json").read_text())["clips_written"] == summary["clips_written"]
    keys = sorted(k for s in ledger.keys_json for k in json.loads(s))
    assert keys == sorted(s.key for s in iter_subset(str(out), "tpt", members=["json"]))


def test_every_clip_lies_inside_one_ground_truth_scene(curated, small_corpus):
    out, _ = curated
    truth = truth_by_file(small_corpus)
    for sample in iter_subset(str(out), "tpt", members=["json"]):
        meta = sample.meta
        name = meta["source_uri"].rsplit("/", 1)[-1]
        assert scene_of(truth[name], meta["start"], meta["end"]) is not None, (name, meta["start"], meta["end"])


def test_every_mp4_has_the_promised_frames_size_and_rate(curated, tmp_path):
    out, _ = curated
    for sample in iter_subset(str(out), "tpt"):
        facts = mp4_facts(sample.mp4, tmp_path)
        assert facts == {
            "frames": 49,
            "width": 720,
            "height": 480,
            "fps": 8.0,
            "pix_fmt": "yuv420p",
            "codec": "h264",
        }, sample.key
        meta = sample.clip_meta()
        assert (meta.num_frames, meta.width, meta.height, meta.fps) == (49, 720, 480, 8.0)
        assert meta.subsets == ["tpt"]  # the backbone skips privacy, so nothing is admitted to p2ft/


def test_a_run_that_skips_privacy_writes_p2ft_empty_and_says_why(curated, capsys):
    from ophora.cli.curate import print_summary

    out, summary = curated
    assert "p2ft" not in summary["clips_by_subset"] and list(iter_subset(str(out), "p2ft")) == []
    assert summary["p2ft_verdict"].startswith("empty: the privacy stage was skipped")
    assert summary["kept_out_of_p2ft"] == {"write: privacy not examined": summary["clips_written"]}
    assert json.loads((out / "summary.json").read_text())["p2ft_verdict"] == summary["p2ft_verdict"]
    print_summary(summary)
    assert "privacy stage was skipped" in capsys.readouterr().out.replace("\n", " ")
    for sample in iter_subset(str(out), "tpt", members=["json"]):
        assert "write: privacy not examined (the privacy stage did not run on this clip)" in sample.meta["p2ft_reasons"]


def test_shards_open_with_webdataset_ray_data_and_tarfile(curated, ray_local):
    import ray.data
    import webdataset as wds

    out, summary = curated
    shards = list_shards(str(out), "tpt")
    with_tarfile = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            with_tarfile += [m.name.split(".", 1)[0] for m in tar.getmembers() if m.name.endswith(".mp4")]
    with_wds = [s["__key__"] for s in wds.WebDataset(shards, shardshuffle=False)]
    with_ray = [r["__key__"] for r in ray.data.read_webdataset(shards, decoder=None).iter_rows()]
    assert sorted(with_tarfile) == sorted(with_wds) == sorted(with_ray)
    assert len(with_tarfile) == summary["clips_written"] == len(set(with_tarfile))


def test_index_names_every_sample_in_its_shard(curated):
    out, summary = curated
    index = read_index(str(out))
    assert len(index) == sum(summary["clips_by_subset"].values())
    for subset in ("tpt", "p2ft"):
        in_shards = {
            (f"{subset}/{s.shard.rsplit('/', 1)[-1]}", s.key) for s in iter_subset(str(out), subset, members=["json"])
        }
        assert in_shards == {(r.shard, r.key) for r in index[index.subset == subset].itertuples()}


def test_output_passes_the_shard_validator(curated):
    from ophora.inspection.validate import validate

    report = validate(str(curated[0]), quick=True)
    assert report.ok, [(f.code, f.message) for f in report.errors]


def test_rerun_skips_settled_sources_and_keeps_every_shard(curated, small_corpus):
    out, first = curated
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*/*.tar")}
    again = run_curation(offline_config(**BACKBONE), [str(small_corpus / "videos")], str(out), quiet=True)
    assert again["skipped_settled"] == 3 and again["processed"] == 0 and again["exit_code"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*/*.tar")} == before


# ---------------------------------------------------------------- crashes


def _keys_and_leftovers(out):
    keys = [s.key for sub in ("tpt", "p2ft") for s in iter_subset(str(out), sub, members=["json"])]
    return keys, sorted(p.name for p in out.rglob("*.tmp"))


def _reference_keys(out) -> list[str]:
    return sorted(s.key for s in iter_subset(str(out), "tpt", members=["json"]))


@pytest.mark.slow
def test_rerun_after_killing_the_driver_gives_the_same_keys(curated, small_corpus, ray_local, tmp_path):
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed"
    ophora = shutil.which("ophora") or os.path.join(os.path.dirname(sys.executable), "ophora")
    cmd = [
        ophora,
        "curate",
        str(small_corpus / "videos"),
        "--out",
        str(out),
        "--quiet",
        *BACKBONE_FLAGS,
        "--address",
        ray_local.get_runtime_context().gcs_address,
        "--set",
        "progress_every_s=0.5",
    ]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        if list(out.glob("tpt/*.tar")) or list(out.glob("tpt/*.tmp")):  # part way: shards being written
            break
        time.sleep(0.2)
    assert driver.poll() is None, "the run ended before it could be killed"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    time.sleep(3)  # let Ray reap the dead driver's actors before the rerun cleans up after them
    again = subprocess.run(cmd[:-2], capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-2000:]
    keys, leftovers = _keys_and_leftovers(out)
    assert leftovers == [] and len(keys) == len(set(keys))  # each key once (in tpt/; privacy skipped: p2ft/ empty)
    tpt = sorted(s.key for s in iter_subset(str(out), "tpt", members=["json"]))
    assert tpt == _reference_keys(curated[0]) and len(tpt) == len(set(tpt))
    ledger = read_ledger(str(out))
    assert len(ledger) == 3 and set(ledger.status) == {"done"}


@pytest.mark.slow
def test_a_killed_worker_mid_stage_does_not_stop_the_run(curated, small_corpus, ray_local, tmp_path):
    import os
    import signal
    import threading
    import time

    import psutil

    killed: list[int] = []

    def kill_one_clip_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for p in psutil.process_iter(["pid", "cmdline"]):
                if "MapBatches(Clip)" in " ".join(p.info["cmdline"] or []) and p.pid != os.getpid():
                    time.sleep(0.5)  # let it start a clip
                    os.kill(p.pid, signal.SIGKILL)
                    killed.append(p.pid)
                    return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_one_clip_worker, daemon=True)
    killer.start()
    summary = run_curation(offline_config(**BACKBONE), [str(small_corpus / "videos")], str(tmp_path / "o"), quiet=True)
    killer.join(5)
    assert killed, "no clip worker was found to kill"
    assert summary["done"] == 3 and summary["exit_code"] == 0
    assert _reference_keys(tmp_path / "o") == _reference_keys(curated[0])


@pytest.mark.slow
def test_limit_takes_some_pending_sources_and_force_redoes_them_under_the_same_keys(curated, small_corpus, tmp_path):
    out = tmp_path / "limited"
    cfg = offline_config(limit=1, **BACKBONE)
    first = run_curation(cfg, [str(small_corpus / "videos")], str(out), quiet=True)
    assert first["processed"] == 1 and len(read_ledger(str(out))) == 1
    keys = _reference_keys(out)
    forced = run_curation(cfg, [str(small_corpus / "videos")], str(out), force=True, quiet=True)
    assert forced["processed"] == 1 and forced["skipped_settled"] == 0
    assert _reference_keys(out) == keys and set(keys) <= set(_reference_keys(curated[0]))
    assert len(list(out.glob("tpt/*.tar"))) == len(set(p.name for p in out.glob("tpt/*.tar")))
    assert not list(out.rglob("*.tmp"))


def test_a_stage_that_cannot_load_its_model_stops_the_run_with_one_line(ray_local, small_corpus, tmp_path):
    """An actor whose setup fails (here: open_clip weights that do not exist) stops the run with a
    StageStartError naming the stage and the cause, found by the error's type (Ray's actor-init failure)."""
    from ophora.curation.pipeline import StageStartError

    skip = [s for s in BACKBONE["skip"] if s != "quality"]
    cfg = offline_config(
        skip=skip,
        **{"quality.clip_model": "ViT-B-32", "quality.clip_pretrained": str(tmp_path / "missing-weights.bin")},
    )
    with pytest.raises(StageStartError, match="the quality stage could not start") as err:
        run_curation(cfg, [str(small_corpus / "videos")], str(tmp_path / "o"), quiet=True)
    assert "missing-weights.bin" in str(err.value) and "\n" not in str(err.value)
