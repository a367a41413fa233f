"""Reader layouts: which reader hands out which samples, and how a run resumed with a different number of readers
(Ray Train workers x DataLoader workers) finishes the epochs the old readers left unfinished.

In a layout of R readers, reader r's stream is a pure function of (seed, epoch, r, R) (see data.py), so its
progress is one position per reader: (epoch, samples of that epoch handed out). When a checkpoint written by R
readers is resumed by N != R readers, the new layout starts with a *carry* segment: every old reader's unread
rest of its stream up to the end of the latest epoch any old reader had reached is dealt to the new readers
(whole old streams when N <= R, a sample-by-sample share when N > R), then epochs continue in the new layout.
So no clip of those epochs is trained twice or left out, whatever N and R are. A carry is itself resumable (its
positions count like an epoch's) and is dropped from the layout once every reader has passed it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Position = tuple[int, int]  # (epoch, samples of that epoch segment handed out, skipped ones included)
EpochSamples = Callable[[int, int, int], Iterator[Any]]  # (epoch, reader, readers) -> that reader's samples
END = None  # the sample slot of an end-of-segment marker


@dataclass
class Carry:
    """The previous layout and where each of its readers stood when the run was resumed with other readers."""

    layout: ReaderLayout
    positions: dict[int, Position]


@dataclass
class ReaderLayout:
    """``readers`` streams dealing epochs from ``start_epoch`` on, after finishing ``carry`` (if any), whose
    samples count as epoch ``start_epoch - 1``."""

    readers: int
    start_epoch: int = 0
    carry: Carry | None = None

    @property
    def first_epoch(self) -> int:
        return self.start_epoch - 1 if self.carry else self.start_epoch

    def start_of(self, reader: int, positions: dict[int, Position]) -> Position:
        return tuple(positions.get(reader, (self.first_epoch, 0)))  # type: ignore[return-value]

    def to_json(self) -> dict[str, Any]:
        carry = None
        if self.carry is not None:
            carry = {
                "layout": self.carry.layout.to_json(),
                "positions": {str(k): list(v) for k, v in self.carry.positions.items()},
            }
        return {"readers": self.readers, "start_epoch": self.start_epoch, "carry": carry}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReaderLayout:
        carry = data.get("carry")
        return cls(
            int(data["readers"]),
            int(data.get("start_epoch", 0)),
            Carry(
                cls.from_json(carry["layout"]), {int(k): (int(v[0]), int(v[1])) for k, v in carry["positions"].items()}
            )
            if carry
            else None,
        )


def resume_layout(
    saved: ReaderLayout | None, positions: dict[int, Position], readers: int
) -> tuple[ReaderLayout, dict[int, Position]]:
    """(layout, positions) for ``readers`` readers continuing from a checkpoint's layout and every old reader's
    position. The same reader count continues as it was; another gets a carry of the unfinished epochs."""
    if saved is None:  # a checkpoint from before layouts were saved: it had the same readers or none at all
        return ReaderLayout(readers), dict(positions)
    if saved.readers == readers:
        done_carry = saved.carry is not None and all(
            saved.start_of(r, positions)[0] >= saved.start_epoch for r in range(readers)
        )
        return (ReaderLayout(readers, saved.start_epoch) if done_carry else saved), dict(positions)
    old = {q: saved.start_of(q, positions) for q in range(saved.readers)}
    until = max(epoch for epoch, _ in old.values())
    return ReaderLayout(readers, until + 1, Carry(saved, old)), {}


def own_positions(positions: dict[int, Position], rank: int, loaders: int) -> dict[int, Position]:
    """The positions of ``rank``'s own readers: every rank writes its own file and a resume merges them all, so a
    rank that also wrote what it inherited for the other ranks' readers would overwrite their newer positions."""
    mine = range(rank * loaders, (rank + 1) * loaders)
    return {r: p for r, p in positions.items() if r in mine}


def reader_stream(
    layout: ReaderLayout,
    reader: int,
    epoch_samples: EpochSamples,
    start: Position | None = None,
    until: int | None = None,
) -> Iterator[tuple[int, int, int, Any]]:
    """(epoch, position, epoch the sample was dealt in, sample) after ``start``, endless unless ``until`` (the
    last epoch to give). Each segment (the carry, then every epoch) ends with a marker whose sample is END."""
    epoch0, pos0 = start if start is not None else (layout.first_epoch, 0)
    if layout.carry is not None and epoch0 < layout.start_epoch:
        label = layout.start_epoch - 1
        if until is not None and label > until:
            return
        for pos, (dealt, sample) in enumerate(_carry_samples(layout, reader, epoch_samples), start=1):
            if pos > pos0:
                yield label, pos, dealt, sample
        yield label, 0, label, END
        epoch0, pos0 = layout.start_epoch, 0
    epoch = max(epoch0, layout.start_epoch)
    while until is None or epoch <= until:
        for pos, sample in enumerate(epoch_samples(epoch, reader, layout.readers), start=1):
            if epoch > epoch0 or pos > pos0:
                yield epoch, pos, epoch, sample
        yield epoch, 0, epoch, END
        epoch += 1


def _carry_samples(layout: ReaderLayout, reader: int, epoch_samples: EpochSamples) -> Iterator[tuple[int, Any]]:
    """This reader's share of the old readers' unread samples: (epoch it was dealt in, sample)."""
    carry = layout.carry
    old, new = carry.layout.readers, layout.readers
    if new <= old:  # whole old streams: no sample is read by two readers
        assigned, sharers, share = [q for q in range(old) if q % new == reader], 1, 0
    else:  # one old stream shared sample by sample by the new readers congruent to it
        group = [r for r in range(new) if r % old == reader % old]
        assigned, sharers, share = [reader % old], len(group), group.index(reader)
    for q in assigned:
        index = 0
        for _, _, dealt, sample in reader_stream(
            carry.layout, q, epoch_samples, carry.layout.start_of(q, carry.positions), until=layout.start_epoch - 1
        ):
            if sample is END:
                continue
            if index % sharers == share:
                yield dealt, sample
            index += 1
