"""The shard contract and the ledger: keys, members, writer atomicity, the safe reader."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from ophora.dataset import ledger, shards
from ophora.dataset.shards import ClipMeta, ShardError, ShardWriter


def _meta(key: str, **kw) -> ClipMeta:
    source, index = shards.parse_key(key)
    base = dict(
        key=key,
        source_id=source,
        source_uri="/x.mp4",
        clip_index=index,
        scene_index=0,
        start=0.0,
        end=6.125,
        fps=8.0,
        num_frames=49,
        width=720,
        height=480,
        instruction="Incise the cornea.",
    )
    base.update(kw)
    return ClipMeta(**base)


def test_clip_keys_are_deterministic_and_dot_free():
    sid = shards.source_id_for_file(io.BytesIO(b"same bytes"))
    assert sid == shards.source_id_for_file(io.BytesIO(b"same bytes"), chunk=3)
    assert sid != shards.source_id_for_file(io.BytesIO(b"other bytes"))
    key = shards.clip_key(sid, 12)
    assert key == f"{sid}_000012" and "." not in key
    assert shards.parse_key(key) == (sid, 12)
    assert shards.source_id_from_stable_id("yt:abc") == shards.source_id_from_stable_id("yt:abc")
    with pytest.raises(ShardError):
        shards.parse_key("../evil_000001")


def test_subsets_follow_privacy_and_reasons():
    assert shards.decide_subsets([], identifying=False) == ["tpt", "p2ft"]
    assert shards.decide_subsets(["privacy: text overlay"], identifying=False) == ["tpt"]
    assert shards.decide_subsets([], identifying=True) == []


def test_writer_rolls_shards_and_leaves_no_tmp(tmp_path):
    sid = "abcd0123abcd0123"
    with ShardWriter(str(tmp_path), "tpt", "shard-w0", max_count=2) as w:
        for i in range(5):
            w.write(shards.clip_key(sid, i), shards.encode_sample(_meta(shards.clip_key(sid, i)), b"\x00mp4"))
    names = sorted(p.name for p in (tmp_path / "tpt").iterdir())
    assert names == ["shard-w0-000000.tar", "shard-w0-000001.tar", "shard-w0-000002.tar"]
    got = [s.key for s in shards.iter_subset(str(tmp_path), "tpt")]
    assert got == [shards.clip_key(sid, i) for i in range(5)]
    first = next(shards.iter_subset(str(tmp_path), "tpt"))
    assert first.instruction == "Incise the cornea." and first.clip_meta().num_frames == 49


def test_failed_writer_leaves_no_torn_tar(tmp_path):
    sid = "abcd0123abcd0123"
    with pytest.raises(RuntimeError):
        with ShardWriter(str(tmp_path), "tpt", "shard-w1") as w:
            w.write(shards.clip_key(sid, 0), shards.encode_sample(_meta(shards.clip_key(sid, 0)), b"x"))
            raise RuntimeError("worker died")
    assert list((tmp_path / "tpt").iterdir()) == []
    assert shards.list_shards(str(tmp_path), "tpt") == []


def _raw_tar(path, entries):
    with tarfile.open(path, "w") as tar:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))


@pytest.mark.parametrize("bad", ["../evil.txt", "/abs_000001.txt", "k_000001.pyd", "k_000001.pickle"])
def test_reader_refuses_unsafe_or_pickled_members(tmp_path, bad):
    shard = tmp_path / "bad.tar"
    _raw_tar(shard, [(bad, b"payload")])
    with pytest.raises(ShardError):
        list(shards.iter_samples(str(shard)))
    assert list(shards.iter_samples(str(shard), strict=False)) == []


def test_reader_names_a_truncated_shard(tmp_path):
    sid = "abcd0123abcd0123"
    with ShardWriter(str(tmp_path), "tpt", "t") as w:
        w.write(shards.clip_key(sid, 0), shards.encode_sample(_meta(shards.clip_key(sid, 0)), b"y" * 5000))
    shard = tmp_path / "tpt" / "t-000000.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    with pytest.raises(ShardError, match="t-000000.tar"):
        list(shards.iter_samples(str(shard)))


def test_shards_open_with_plain_webdataset_and_tarfile(tmp_path):
    import webdataset as wds

    sid = "abcd0123abcd0123"
    with ShardWriter(str(tmp_path), "p2ft", "s") as w:
        for i in range(3):
            w.write(shards.clip_key(sid, i), shards.encode_sample(_meta(shards.clip_key(sid, i)), b"m"))
    shard = str(tmp_path / "p2ft" / "s-000000.tar")
    samples = list(wds.WebDataset(shard, shardshuffle=False))
    assert [s["__key__"] for s in samples] == [shards.clip_key(sid, i) for i in range(3)]
    assert json.loads(samples[0]["json"])["num_frames"] == 49
    with tarfile.open(shard) as tar:
        assert len(tar.getnames()) == 9


def test_ledger_keeps_latest_row_per_source(tmp_path):
    root = str(tmp_path)
    ledger.append_rows(root, [ledger.ledger_row("/a.mp4", "aaaa", "failed", stage="clip", reason="boom")])
    ledger.append_rows(
        root,
        [
            ledger.ledger_row("/a.mp4", "aaaa", "done", keys=["aaaa_000000"], drops={"windows: short leftover": 2}),
            ledger.ledger_row("/b.mp4", "", "rejected", stage="probe", reason="no video stream"),
        ],
    )
    df = ledger.read_ledger(root)
    assert list(df["status"]) == ["done", "rejected"]
    assert int(df.iloc[0]["clips_written"]) == 1
    assert ledger.drop_counts(df) == {"windows: short leftover": 2}
    assert len(ledger.read_ledger(root, latest=False)) == 3
    with pytest.raises(ValueError):
        ledger.ledger_row("/c.mp4", "", "maybe")
