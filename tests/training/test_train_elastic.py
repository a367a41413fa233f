"""Elastic resume without Ray: a run checkpointed by N workers resumes with M != N workers (each with 2 DataLoader
worker processes) and trains every clip of the interrupted epochs exactly once — none repeated, none skipped.

The workers here are the real ClipStream behind the real DataLoader, the checkpoint the real save/load functions;
only the model is a stand-in (a Linear layer), since the data position does not depend on it.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest
import torch

from ophora.clip_geometry import TINY
from ophora.training.checkpoint import load_checkpoint, save_checkpoint
from ophora.training.config import DataConfig
from ophora.training.data import ClipStream, find_shards, make_loader
from ophora.training.elastic import ReaderLayout, own_positions, resume_layout
from tests.fixtures.shards import write_clip_shards

DATA = DataConfig(**TINY.as_dict(), shuffle_buffer=2)
LOADER_WORKERS = 2


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[list[str], list[str]]:
    """10 clips in 5 shards of 2: (shard paths, clip keys)."""
    root = tmp_path_factory.mktemp("elastic")
    keys = write_clip_shards(root, {"tpt": 10}, per_shard=2)["tpt"]
    return find_shards(str(root), "tpt"), keys


def train_on(shards, world: int, steps: int, layout=None, positions=None):
    """What ``world`` workers train on for ``steps`` steps of one clip each, as the loop records it: the
    (key, epoch dealt in, reader) of every clip, and each worker's reader positions."""
    trained, kept = [], []
    for rank in range(world):
        stream = ClipStream(
            shards, DATA, 1, seed=11, rank=rank, world=world, kind="raw", positions=positions, layout=layout
        )
        mine = own_positions(positions or {}, rank, LOADER_WORKERS)  # as the loop keeps them for its checkpoint
        for batch in itertools.islice(iter(make_loader(stream, LOADER_WORKERS)), steps):
            mine[batch["reader"]] = (batch["epoch"], batch["position"])
            trained += [(k, e, batch["reader"]) for k, e in zip(batch["keys"], batch["sample_epochs"])]
        kept.append(mine)
    return trained, kept


def checkpoint_and_resume(tmp: Path, kept: list[dict], layout: ReaderLayout, world: int):
    """Every rank writes its share of a checkpoint; rank 0 of the new run reads it back and builds its layout."""
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    for rank, positions in enumerate(kept):
        save_checkpoint(
            tmp,
            rank=rank,
            model=model,
            optimizer=optimizer,
            lr_scheduler=sched,
            ema=None,
            step=3,
            signature={},
            positions=positions,
            history=[],
            extra={"layout": layout.to_json()},
        )
    state = load_checkpoint(tmp, rank=0, model=model, optimizer=optimizer, lr_scheduler=sched, ema=None, signature={})
    return resume_layout(ReaderLayout.from_json(state["layout"]), state["positions"], world * LOADER_WORKERS)


def each_clip_once_per_epoch(trained: list[tuple[str, int, int]], keys: list[str], epochs) -> None:
    for epoch in epochs:
        counts = Counter(k for k, e, _ in trained if e == epoch)
        assert sorted(counts) == sorted(keys), f"epoch {epoch}: missing {set(keys) - set(counts)}"
        assert max(counts.values()) == 1, f"epoch {epoch}: repeated {[k for k, n in counts.items() if n > 1]}"


@pytest.mark.parametrize("before,after", [(2, 1), (1, 2)])
def test_resume_with_another_worker_count_trains_each_clip_of_the_epoch_once(clips, tmp_path, before, after):
    shards, keys = clips
    first, kept = train_on(shards, before, steps=3)
    interrupted = max(e for positions in kept for e, _ in positions.values())
    layout, positions = checkpoint_and_resume(tmp_path, kept, ReaderLayout(before * LOADER_WORKERS), after)
    assert layout.readers == after * LOADER_WORKERS and layout.start_epoch == interrupted + 1
    second, _ = train_on(shards, after, steps=30, layout=layout, positions=positions)
    each_clip_once_per_epoch(first + second, keys, range(interrupted + 1))  # the epochs the change cut
    each_clip_once_per_epoch(second, keys, [interrupted + 1])  # the first epoch of the new layout


def test_a_resume_inside_the_carry_continues_it_exactly(clips):
    """A second stop while the new workers are still finishing the old epochs: same workers resume mid-carry."""
    shards, _ = clips
    _, kept = train_on(shards, 2, steps=2)
    layout, _ = resume_layout(ReaderLayout(4), {r: p for k in kept for r, p in k.items()}, 2)
    whole, _ = train_on(shards, 1, steps=12, layout=layout)
    part, kept_again = train_on(shards, 1, steps=3, layout=layout)
    same_layout, positions = resume_layout(layout, kept_again[0], 2)
    assert same_layout is layout and positions[0][0] == layout.start_epoch - 1  # still inside the carry
    rest, _ = train_on(shards, 1, steps=5, layout=same_layout, positions=positions)
    for reader in (0, 1):  # each reader's clips continue exactly as in the uninterrupted run
        resumed = [k for k, _, r in part + rest if r == reader]
        assert resumed == [k for k, _, r in whole if r == reader][: len(resumed)] and len(resumed) >= 3


def test_a_second_resume_by_the_same_workers_continues_every_reader_from_its_newest_position(clips, tmp_path):
    """Each rank's checkpoint file speaks only for its own readers: the merge of all files at the next resume
    must not bring back a position some rank inherited and another rank has since moved past."""
    shards, keys = clips
    first, kept = train_on(shards, 2, steps=3)
    layout, positions = checkpoint_and_resume(tmp_path / "a", kept, ReaderLayout(2 * LOADER_WORKERS), 2)
    second, kept = train_on(shards, 2, steps=3, layout=layout, positions=positions)
    assert all(set(k) <= set(range(r * LOADER_WORKERS, (r + 1) * LOADER_WORKERS)) for r, k in enumerate(kept))
    layout, positions = checkpoint_and_resume(tmp_path / "b", kept, layout, 2)
    third, _ = train_on(shards, 2, steps=10, layout=layout, positions=positions)
    trained = first + second + third
    done = min(max(e for k, e, r in trained if r == reader) for reader in range(2 * LOADER_WORKERS))
    each_clip_once_per_epoch(trained, keys, range(done))  # every epoch all readers finished
    assert done >= 2
