"""Shards -> batches: disjoint readers, exact resume positions, bad input that is skipped or refused loudly.

No Ray here: the stream is ordinary Python, so these promises are checked directly and fast.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from ophora.dataset.shards import ClipMeta, ShardWriter, clip_key, encode_sample, list_shards
from ophora.training.config import DataConfig, load_config
from ophora.training.data import ClipStream, DataError, detect_kind, find_shards
from tests.fixtures.shards import synth_clip, write_clip_shards

DATA = DataConfig(num_frames=9, height=64, width=96, shuffle_buffer=3)


@pytest.fixture(scope="module")
def shard_root(tmp_path_factory) -> Path:
    """10 tpt clips in 5 shards of 2 (real ffmpeg clips, real ShardWriter)."""
    root = tmp_path_factory.mktemp("train-data")
    write_clip_shards(root, {"tpt": 10}, per_shard=2)
    return root


def _keys(stream: ClipStream, batches: int) -> list[list[str]]:
    return [b["keys"] for b in itertools.islice(iter(stream), batches)]


def test_readers_see_disjoint_samples_and_together_all(shard_root):
    shards = find_shards(str(shard_root), "tpt")
    streams = [ClipStream(shards, DATA, 1, seed=3, rank=r, world=2, kind="raw") for r in (0, 1)]
    first_epoch = [[k for b in itertools.islice(iter(s), 8) if b["epoch"] == 0 for k in b["keys"]] for s in streams]
    assert not set(first_epoch[0]) & set(first_epoch[1])
    assert sorted(first_epoch[0] + first_epoch[1]) == sorted(set(first_epoch[0]) | set(first_epoch[1]))
    assert len(first_epoch[0]) + len(first_epoch[1]) == 10


def test_fewer_shards_than_readers_deals_samples_without_overlap(shard_root):
    one_shard = find_shards(str(shard_root), "tpt")[:1]
    seen = [sum(_keys(ClipStream(one_shard, DATA, 1, seed=0, rank=r, world=2, kind="raw"), 1), []) for r in (0, 1)]
    assert seen[0] != seen[1] and not set(seen[0]) & set(seen[1])


def test_resumed_stream_continues_exactly_where_it_stopped(shard_root):
    shards = find_shards(str(shard_root), "tpt")
    whole = list(itertools.islice(iter(ClipStream(shards, DATA, 2, seed=5, rank=1, world=2, kind="raw")), 6))
    stop = whole[3]  # crosses an epoch boundary: 5 clips per rank, batches of 2
    resumed = ClipStream(
        shards,
        DATA,
        2,
        seed=5,
        rank=1,
        world=2,
        kind="raw",
        positions={stop["reader"]: (stop["epoch"], stop["position"])},
    )
    assert [b["keys"] for b in itertools.islice(iter(resumed), 2)] == [b["keys"] for b in whole[4:6]]


def test_batches_are_normalised_pixels_with_instructions(shard_root):
    batch = next(iter(ClipStream(find_shards(str(shard_root), "tpt"), DATA, 2, 0, 0, 1, "raw")))
    assert batch["pixels"].shape == (2, 3, 9, 64, 96)
    assert -1.0 <= float(batch["pixels"].min()) < 0 < float(batch["pixels"].max()) <= 1.0
    assert all(len(t) > 10 for t in batch["text"])


def _write_odd_clips(root: Path, frames: list[int]) -> None:
    with ShardWriter(str(root), "tpt", prefix="odd", max_count=100) as w:
        for i, n in enumerate(frames):
            key = clip_key("badc0de000000001", i)
            meta = ClipMeta(
                key=key,
                source_id="badc0de000000001",
                source_uri="x",
                clip_index=i,
                scene_index=0,
                start=0,
                end=1,
                fps=8,
                num_frames=n,
                width=96,
                height=64,
                instruction="Polish the capsule.",
            )
            w.write(key, encode_sample(meta, synth_clip(i, frames=n)))


def test_short_clip_and_truncated_shard_are_skipped_with_counts(tmp_path, shard_root):
    _write_odd_clips(tmp_path, [9, 5, 9])  # the middle clip has too few frames
    good = find_shards(str(shard_root), "tpt")[0]
    truncated = tmp_path / "tpt" / "zz-truncated.tar"
    data = Path(good).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    cfg = DataConfig(num_frames=9, height=64, width=96, shuffle_buffer=1, max_bad_fraction=0.9)
    batches = list(itertools.islice(iter(ClipStream(list_shards(str(tmp_path), "tpt"), cfg, 1, 0, 0, 1, "raw")), 3))
    keys = [b["keys"][0] for b in batches]
    assert clip_key("badc0de000000001", 1) not in keys
    assert batches[-1]["bad"]["samples"] == 1 and batches[-1]["bad"]["shards"] == 1


def test_too_many_bad_samples_fail_with_the_reason(tmp_path):
    _write_odd_clips(tmp_path, [5] * 12)
    stream = ClipStream(list_shards(str(tmp_path), "tpt"), DATA, 1, 0, 0, 1, "raw")
    with pytest.raises(DataError, match="clip geometry 5 frames"):
        next(iter(stream))


def test_all_bad_small_subset_fails_instead_of_spinning(tmp_path):
    _write_odd_clips(tmp_path, [5, 5])
    with pytest.raises(DataError, match="no usable sample"):
        next(iter(ClipStream(list_shards(str(tmp_path), "tpt"), DATA, 1, 0, 0, 1, "raw")))


def test_empty_subset_names_the_folder(tmp_path):
    with pytest.raises(DataError, match=r"p2ft/"):
        find_shards(str(tmp_path), "p2ft")


def test_kind_is_detected_from_members(shard_root):
    assert detect_kind(find_shards(str(shard_root), "tpt")) == "raw"


def test_configs_carry_the_paper_settings_and_p2ft_states_only_what_differs():
    tpt, p2ft = load_config("tpt"), load_config("p2ft")
    assert (tpt.optim.lr, tpt.max_steps, p2ft.optim.lr, p2ft.max_steps) == (1e-4, 65000, 5e-5, 4500)
    assert tpt.global_batch == p2ft.global_batch == 128
    assert tpt.optim.betas == (0.9, 0.95) and tpt.optim.weight_decay == 1e-3 and tpt.optim.warmup_steps == 800
    assert (tpt.mixed_precision, tpt.gradient_checkpointing, tpt.scaling.backend) == ("bf16", True, "nccl")
    # the geometry is the shards' (read from ClipMeta), so no config repeats it
    assert (tpt.data.num_frames, tpt.data.height, tpt.data.width, tpt.data.fps) == (None, None, None, None)
    as_tpt = p2ft.model_copy(update={"max_steps": tpt.max_steps, "optim": p2ft.optim.model_copy(update={"lr": 1e-4})})
    assert as_tpt.model_dump() == tpt.model_dump()
    p2ft_yaml = (Path(__file__).resolve().parents[2] / "ophora" / "training" / "configs" / "p2ft.yaml").read_text()
    assert "inherit: tpt" in p2ft_yaml and "warmup_steps" not in p2ft_yaml
    with pytest.raises(ValueError, match="4k\\+1"):
        load_config("tiny", {"data.num_frames": 10})


def test_loader_workers_are_readers_of_their_own(shard_root):
    from ophora.training.data import make_loader

    stream = ClipStream(find_shards(str(shard_root), "tpt"), DATA, 1, seed=2, rank=1, world=2, kind="raw")
    batches = list(itertools.islice(iter(make_loader(stream, loader_workers=2)), 4))
    by_reader: dict[int, set[str]] = {}
    for b in batches:
        if b["epoch"] == 0:
            by_reader.setdefault(b["reader"], set()).update(b["keys"])
    assert set(by_reader) == {2, 3}  # rank 1 of 2, two loader workers: readers 2 and 3 of 4
    assert not by_reader[2] & by_reader[3]
