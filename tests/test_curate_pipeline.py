"""The curate job end to end on the synthetic corpus, through one local Ray: what lands in OUT keeps the promises."""

from __future__ import annotations

import json
import tarfile

import pytest
from curate_helpers import mp4_facts, scene_of, truth_by_file

from ophora.curation.config import CurateConfig
from ophora.curation.ledger import read_ledger
from ophora.curation.pipeline import run_curation
from ophora.curation.resume import read_index
from ophora.curation.shards import iter_subset, list_shards


@pytest.fixture(scope="module")
def curated(ray_local, small_corpus, tmp_path_factory):
    """The small corpus curated once with the default profile: (OUT, summary)."""
    out = tmp_path_factory.mktemp("curated")
    summary = run_curation(CurateConfig.load("default"), [str(small_corpus / "videos")], str(out), quiet=True)
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
        assert facts == {"frames": 49, "width": 720, "height": 480, "fps": "8/1", "pix_fmt": "yuv420p",
                         "codec": "h264"}, sample.key
        meta = sample.clip_meta()
        assert (meta.num_frames, meta.width, meta.height, meta.fps) == (49, 720, 480, 8.0)
        assert meta.subsets == ["tpt", "p2ft"]


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
        in_shards = {(f"{subset}/{s.shard.rsplit('/', 1)[-1]}", s.key)
                     for s in iter_subset(str(out), subset, members=["json"])}
        assert in_shards == {(r.shard, r.key) for r in index[index.subset == subset].itertuples()}


def test_output_passes_the_shard_validator(curated):
    from ophora.inspection.validate import validate

    report = validate(str(curated[0]), quick=True)
    assert report.ok, [(f.code, f.message) for f in report.errors]


def test_rerun_skips_settled_sources_and_keeps_every_shard(curated, small_corpus):
    out, first = curated
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*/*.tar")}
    again = run_curation(CurateConfig.load("default"), [str(small_corpus / "videos")], str(out), quiet=True)
    assert again["skipped_settled"] == 3 and again["processed"] == 0 and again["exit_code"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*/*.tar")} == before
