"""Shards -> training batches, with a data position that a checkpoint can hold.

Every (Ray Train worker, DataLoader worker) pair is one *reader*. In each epoch the shard list is permuted with
the run's seed and dealt to readers round-robin (or, when there are fewer shards than readers, samples are dealt
instead), so no two readers ever see the same sample. A reader's stream is a pure function of (seed, epoch,
reader, readers), which makes its position one pair: (epoch, raw samples of that epoch handed out). Resuming
replays the tar stream up to that point without decoding a single frame; resuming with another number of
readers first finishes the old readers' epochs (elastic.py). Batches are decoded ahead of the training step, by
DataLoader worker processes or, with none, by one background thread.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.utils.data

from ophora.clip_geometry import differing
from ophora.dataset.shards import (
    LATENT_MEMBERS,
    MAX_MEMBER_BYTES,
    RAW_MEMBERS,
    Sample,
    ShardError,
    iter_samples,
    list_shards,
)
from ophora.training.elastic import END, ReaderLayout, reader_stream
from ophora.video import DecodeLimits, decode_frames

log = logging.getLogger(__name__)
MIN_SEEN_FOR_THRESHOLD = 10  # judge the bad-sample fraction only once this many samples were read


class SampleRefused(ValueError):
    """A sample the loader skips for a known reason (``reason``: the counter it is tallied under)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class DataError(RuntimeError):
    """The training data cannot feed the run (empty subset, all samples bad, too many bad samples)."""


@dataclass
class BadCounts:
    """Samples and shards a reader skipped, by reason."""

    seen: int = 0
    bad_samples: dict[str, int] = field(default_factory=dict)
    bad_shards: int = 0

    def add(self, reason: str) -> None:
        self.bad_samples[reason] = self.bad_samples.get(reason, 0) + 1

    @property
    def total_bad(self) -> int:
        return sum(self.bad_samples.values())


def find_shards(root: str, subset: str) -> list[str]:
    """The subset's complete shards; DataError naming the folder when there are none."""
    shards = list_shards(root, subset)
    if not shards:
        raise DataError(f"no shards under {root}/{subset}/ (empty subset or wrong --shards path)")
    return shards


def detect_kind(shards: list[str], max_member_bytes: int = MAX_MEMBER_BYTES) -> str:
    """'latents' when the first shard with a clip member carries precomputed latents, else 'raw'."""
    for shard in shards:
        try:
            for sample in iter_samples(
                shard, members=("latents.npy", "mp4"), strict=False, max_member_bytes=max_member_bytes
            ):
                if "latents.npy" in sample.members:
                    return "latents"
                if "mp4" in sample.members:
                    return "raw"
        except (ShardError, OSError):
            continue
    return "raw"


# ---------------------------------------------------------------- decoding


def decode_clip(
    mp4: bytes, num_frames: int, height: int, width: int, max_pixels: int = DecodeLimits.max_pixels
) -> np.ndarray:
    """The first ``num_frames`` frames as uint8 [F, H, W, 3], resized to cover HxW and centre-cropped.

    Raises ValueError when the clip has fewer frames than asked or frames over ``max_pixels`` (PyAV; it beat
    spawning ffmpeg per clip)."""

    clip = decode_frames(mp4, num_frames, DecodeLimits(max_frames=num_frames, max_pixels=max_pixels))
    if len(clip) < num_frames:
        raise SampleRefused("too few frames", f"too few frames: {len(clip)} < {num_frames}")
    return clip if clip.shape[1:3] == (height, width) else _cover_crop(clip, height, width)


def _cover_crop(clip: np.ndarray, height: int, width: int) -> np.ndarray:
    import torch.nn.functional as F

    h, w = clip.shape[1:3]
    scale = max(height / h, width / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    t = torch.from_numpy(clip).permute(0, 3, 1, 2).float()
    t = F.interpolate(t, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - height) // 2, (nw - width) // 2
    t = t[:, :, top : top + height, left : left + width]
    return t.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def sample_geometry_problem(meta: dict[str, Any], data_cfg) -> str | None:
    """Why one raw sample's ClipMeta does not match the run's geometry (None when it does; unset fields and
    missing metadata are not compared: decoding decides)."""
    want = {"num_frames": data_cfg.num_frames, "fps": data_cfg.fps}
    if not data_cfg.resize_clips:
        want.update(height=data_cfg.height, width=data_cfg.width)
    try:
        differ = differing(meta, want)
    except (KeyError, TypeError, ValueError):
        return None
    if differ:
        return (
            f"clip geometry {meta['num_frames']} frames of {meta['height']}x{meta['width']} at {meta['fps']:g} "
            f"fps differs from the run's ({', '.join(differ)})"
        )
    return None


def to_model_pixels(clip: np.ndarray):
    """uint8 [F, H, W, 3] -> float [3, F, H, W] in [-1, 1] (the VAE's input layout)."""
    return torch.from_numpy(clip).permute(3, 0, 1, 2).float().div(127.5).sub(1.0)


# ---------------------------------------------------------------- the stream


def _reader_shards(shards: list[str], seed: int, epoch: int, reader: int, readers: int) -> tuple[list[str], bool]:
    """(this reader's shards, whether samples must be dealt instead of shards) for one epoch."""
    order = list(shards)
    random.Random(f"{seed}:{epoch}").shuffle(order)
    if len(order) >= readers:
        return order[reader::readers], False
    return order, True


class ClipStream(torch.utils.data.IterableDataset):
    """An endless, shuffled, resumable stream of batches for one Ray Train worker (a torch IterableDataset).

    ``positions`` maps reader id -> (epoch, position) from a checkpoint and ``layout`` is the checkpoint's reader
    layout (elastic.py; None: a fresh one for world x loader workers). Each batch is a dict with ``pixels``
    [B, 3, F, H, W] (raw shards) or ``latents`` [B, F, C, h, w] and ``prompt_embeds`` [B, L, D] (precomputed),
    plus ``text``, ``keys``, ``sample_epochs`` (the epoch each clip was dealt in), ``reader``, ``epoch`` and
    ``position`` (of its last clip: a batch may span two epochs, so no clip is ever dropped) and the reader's
    ``bad`` counts."""

    def __init__(
        self,
        shards: list[str],
        data_cfg,
        batch_size: int,
        seed: int,
        rank: int,
        world: int,
        kind: str,
        positions: dict[int, tuple[int, int]] | None = None,
        layout: ReaderLayout | None = None,
    ):
        self.shards, self.cfg, self.batch_size, self.seed = shards, data_cfg, batch_size, seed
        self.rank, self.world, self.kind = rank, world, kind
        self.positions = dict(positions or {})
        self.layout = layout
        if kind == "raw" and None in (data_cfg.num_frames, data_cfg.height, data_cfg.width):
            raise ValueError("raw clips need the run's geometry in data_cfg (trainer.resolve_geometry fills it)")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        loaders, loader_id = (info.num_workers, info.id) if info else (1, 0)
        reader, readers = self.rank * loaders + loader_id, self.world * loaders
        layout = self.layout or ReaderLayout(readers)
        if layout.readers != readers:
            raise ValueError(f"a layout of {layout.readers} readers cannot feed {readers} (elastic.resume_layout)")
        counts = BadCounts()
        start = self.positions.get(reader)
        fresh_segment, good = start is None or start[1] == 0, 0
        batch: list[tuple[str, str, Any, int]] = []
        shuffled = lambda epoch, r, n: self._shuffled(epoch, r, n, counts)  # noqa: E731
        for epoch, position, dealt, sample in reader_stream(layout, reader, shuffled, start):
            if sample is END:
                if good == 0 and fresh_segment and epoch >= layout.start_epoch:
                    raise DataError(
                        f"reader {reader} got no usable sample in epoch {epoch} from "
                        f"{len(self.shards)} shard(s) (bad: {counts.bad_samples}, broken shards: "
                        f"{counts.bad_shards})"
                    )
                fresh_segment, good = True, 0
                continue
            item = self._decode(sample, counts)
            if item is None:
                continue
            good += 1
            batch.append((*item, dealt))
            if len(batch) == self.batch_size:
                yield self._collate(batch, reader, epoch, position, counts)
                batch = []

    def _raw(self, epoch: int, reader: int, readers: int, counts: BadCounts) -> Iterator[Sample]:
        mine, deal_samples = _reader_shards(self.shards, self.seed, epoch, reader, readers)
        members = RAW_MEMBERS if self.kind == "raw" else LATENT_MEMBERS
        index = 0
        for shard in mine:
            try:
                for sample in iter_samples(
                    shard, members=members, strict=False, max_member_bytes=self.cfg.max_member_mb << 20
                ):
                    index += 1
                    if not deal_samples or (index - 1) % readers == reader:
                        yield sample
            except ShardError as e:
                counts.bad_shards += 1
                log.warning("skipping the rest of a broken shard: %s", e)

    def _shuffled(self, epoch: int, reader: int, readers: int, counts: BadCounts) -> Iterator[Sample]:
        rng = random.Random(f"{self.seed}:{epoch}:{reader}")
        buffer: list[Sample] = []
        for sample in self._raw(epoch, reader, readers, counts):
            buffer.append(sample)
            if len(buffer) >= self.cfg.shuffle_buffer:
                yield buffer.pop(rng.randrange(len(buffer)))
        while buffer:
            yield buffer.pop(rng.randrange(len(buffer)))

    def _decode(self, sample: Sample, counts: BadCounts):
        counts.seen += 1
        try:
            text = sample.instruction
            if self.kind == "raw":
                mismatch = sample_geometry_problem(sample.meta, self.cfg) if "json" in sample.members else None
                if mismatch:
                    raise SampleRefused("clip geometry", mismatch)
                clip = decode_clip(
                    sample.mp4, self.cfg.num_frames, self.cfg.height, self.cfg.width, self.cfg.max_pixels
                )
                return sample.key, text, to_model_pixels(clip)
            return sample.key, text, (sample.npy("latents.npy"), sample.npy("prompt_embeds.npy"))
        except Exception as e:  # noqa: BLE001 - any undecodable sample is skipped and counted, never fatal alone
            reason = e.reason if isinstance(e, SampleRefused) else f"undecodable ({type(e).__name__})"
            counts.add(reason)
            log.warning("skipping sample %s in %s: %s", sample.key, sample.shard, e)
            if counts.seen >= MIN_SEEN_FOR_THRESHOLD and counts.total_bad / counts.seen > self.cfg.max_bad_fraction:
                raise DataError(
                    f"{counts.total_bad} of {counts.seen} samples are bad ({counts.bad_samples}), above "
                    f"max_bad_fraction={self.cfg.max_bad_fraction}; last: {sample.shard}: {e}"
                ) from e
            return None

    def _collate(self, batch, reader: int, epoch: int, position: int, counts: BadCounts) -> dict[str, Any]:
        out: dict[str, Any] = {
            "keys": [b[0] for b in batch],
            "text": [b[1] for b in batch],
            "reader": reader,
            "sample_epochs": [b[3] for b in batch],
            "epoch": epoch,
            "position": position,
            "bad": {"samples": counts.total_bad, "shards": counts.bad_shards},
        }
        if self.kind == "raw":
            out["pixels"] = torch.stack([b[2] for b in batch])
        else:
            out["latents"] = torch.stack([torch.from_numpy(b[2][0].astype(np.float32)) for b in batch])
            out["prompt_embeds"] = torch.stack([torch.from_numpy(b[2][1].astype(np.float32)) for b in batch])
        return out


def make_loader(stream: ClipStream, loader_workers: int, prefetch: int = 2):
    """Batches of the stream decoded ahead of the step: by ``loader_workers`` DataLoader processes (each one a
    reader of its own), or with 0 by one background thread, ``prefetch`` batches ahead."""
    if not loader_workers:
        return Prefetch(stream, prefetch)
    return torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=loader_workers, prefetch_factor=prefetch, persistent_workers=False
    )


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


class Prefetch:
    """Iterates ``source`` in a background thread up to ``depth`` items ahead, so decoding the next batch
    overlaps the training step (PyAV and torch release the GIL); an error in the source is raised here."""

    def __init__(self, source: Iterable, depth: int = 2):
        self.source, self.depth = source, max(1, depth)

    def __iter__(self) -> Iterator[Any]:
        items: queue.Queue = queue.Queue(maxsize=self.depth)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    items.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def run() -> None:
            try:
                for item in self.source:
                    if not put(item):
                        return
                put(_DONE)
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
                put(_Failed(e))

        threading.Thread(target=run, name="clip-prefetch", daemon=True).start()
        try:
            while True:
                item = items.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            stop.set()
