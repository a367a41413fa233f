"""`ophora shards validate` finds every kind of broken shard, and passes a clean curation output."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ophora.dataset.shards import INDEX_COLUMNS, encode_sample
from ophora.inspection.validate import validate
from tests.fixtures.shards import FRAMES, INSTRUCTIONS, clip_meta, copy_of, make_clip, sample_members, write_raw_tar


def test_clean_output_has_no_findings(shard_root):
    report = validate(str(shard_root), workers=2)
    assert report.findings == []
    assert report.ok and report.samples == 19 and report.decoded == 19 and report.shards == 4


def test_quick_mode_skips_decoding(shard_root):
    report = validate(str(shard_root), quick=True)
    assert report.ok and report.decoded == 0 and report.samples == 19


def _truncated_tar(root):
    shard = root / "tpt" / "shard-w0-000000.tar"
    data = shard.read_bytes()
    shard.write_bytes(data[: int(len(data) * 0.6)])


def _truncated_between_members(root):
    # cut exactly at a member boundary: a streaming reader takes this for a normal end of archive
    shard = root / "tpt" / "shard-w0-000001.tar"
    data = shard.read_bytes().rstrip(b"\0")
    shard.write_bytes(data + b"\0" * (-len(data) % 512))


def _missing_member(root):
    members = [m for m in sample_members(2, 3) if not m[0].endswith(".txt")]
    write_raw_tar(root / "tpt" / "shard-w0-000000.tar", members)


def _duplicate_key(root):
    write_raw_tar(root / "tpt" / "shard-w9-000000.tar", sample_members(0, 1))


def _schema_break(root):
    key = clip_meta(1, 0).key
    members = sample_members(1, 0)
    broken = json.loads(members[0][1])
    broken.pop("fps")
    broken["surprise"] = "field"
    write_raw_tar(root / "tpt" / "shard-w0-000000.tar", [(f"{key}.json", json.dumps(broken).encode())] + members[1:])


def _shard_with_clip(root, mp4: bytes):
    meta = clip_meta(0, 0)
    encoded = encode_sample(meta, mp4)
    members = [(f"{meta.key}.{ext}", encoded[ext]) for ext in ("json", "mp4", "txt")]
    write_raw_tar(root / "tpt" / "shard-w0-000000.tar", members)


def _wrong_frame_count(root):
    _shard_with_clip(root, make_clip("testsrc2", 0, frames=FRAMES - 19))


def _wrong_pixel_format(root):
    _shard_with_clip(root, make_clip("testsrc2", 0, pix_fmt="yuv444p"))


def _evil_member(root):
    write_raw_tar(root / "tpt" / "shard-w0-000000.tar", sample_members(0, 0) + [("../evil", b"owned")])


def _symlink_member(root):
    write_raw_tar(root / "tpt" / "shard-w0-000000.tar", sample_members(0, 0), symlinks={"x.txt": "/etc/passwd"})


def _index_row_pointing_nowhere(root):
    row = {c: None for c in INDEX_COLUMNS}
    row.update(
        key="ffffffffffffffff_000042",
        subset="tpt",
        shard="tpt/shard-w0-000007.tar",
        source_id="ffff",
        start=0.0,
        end=6.0,
        duration=6.0,
        phase="incision",
        instruction=INSTRUCTIONS[0],
        scores_json="{}",
    )
    pq.write_table(pa.Table.from_pylist([row]), root / "index" / "part-9.parquet")


def _p2ft_clip_lost(root):
    # the last p2ft shard holds one clip; dropping it leaves a clip whose json promises p2ft
    (root / "p2ft" / "shard-w0-000001.tar").unlink()


def _index_row_twice(root):
    pq.write_table(pq.read_table(root / "index" / "part-0.parquet").slice(0, 1), root / "index" / "part-1.parquet")


CORRUPTIONS = {
    "truncated tar": (_truncated_tar, {"broken-tar", "incomplete-tar"}),
    "tar cut between members": (_truncated_between_members, {"incomplete-tar"}),
    "missing member": (_missing_member, {"missing-member"}),
    "duplicate key in two shards": (_duplicate_key, {"duplicate-key"}),
    "json breaks the schema": (_schema_break, {"bad-json"}),
    "mp4 with the wrong frame count": (_wrong_frame_count, {"wrong-frames"}),
    "mp4 not yuv420p": (_wrong_pixel_format, {"wrong-codec"}),
    "member named ../evil": (_evil_member, {"unsafe-member"}),
    "symlink member": (_symlink_member, {"unsafe-member"}),
    "index row pointing nowhere": (_index_row_pointing_nowhere, {"index-orphan"}),
    "index row twice": (_index_row_twice, {"index-duplicate"}),
    "p2ft clip missing from p2ft/": (_p2ft_clip_lost, {"subset-missing", "index-orphan"}),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_validate_catches(name, shard_root, tmp_path):
    corrupt, expected = CORRUPTIONS[name]
    root = copy_of(shard_root, tmp_path / "out")
    corrupt(root)
    report = validate(str(root), workers=2)
    assert not report.ok, f"{name} went unnoticed"
    assert expected <= report.codes(), f"{name}: expected {expected}, got {report.codes()}"
    assert not (tmp_path / "evil").exists()


def test_replaced_shard_is_noticed_by_index_and_ledger(shard_root, tmp_path):
    """A shard swapped for one holding a stranger's clip: the index and the ledger disagree both ways."""
    root = copy_of(shard_root, tmp_path / "out")
    write_raw_tar(root / "tpt" / "shard-w0-000000.tar", sample_members(7, 0))
    report = validate(str(root), quick=True)
    assert {"index-orphan", "ledger-orphan", "not-indexed", "not-in-ledger"} <= report.codes()
    assert "missing-member" not in report.codes()
