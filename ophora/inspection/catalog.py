"""What is in a curation output directory: shards per subset with sizes, the clip index, where a key lives."""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec

from ophora.dataset.shards import (
    INDEX_DIR,
    LEDGER_DIR,
    SHARD_SUFFIX,
    SUBSETS,
    TMP_SUFFIX,
    Sample,
    ShardError,
    iter_samples,
    list_shards,
    read_index,
    refused_shards,
)


@dataclass
class ShardInfo:
    """One complete shard: its subset, path, size in bytes and (when counted) number of samples."""

    subset: str
    path: str
    bytes: int
    samples: int | None = None


def subsets_in(root: str) -> list[str]:
    """The subsets present under ``root``: the known ones first, then any other directory holding shards."""
    fs, path = fsspec.core.url_to_fs(root)
    if not fs.isdir(path):
        raise FileNotFoundError(f"{root}: not a directory")
    found = []
    for entry in sorted(fs.ls(path, detail=False)):
        name = posixpath.basename(entry.rstrip("/"))
        if name in (INDEX_DIR, LEDGER_DIR) or not fs.isdir(entry):
            continue
        if fs.glob(f"{entry.rstrip('/')}/*{SHARD_SUFFIX}"):
            found.append(name)
    return [s for s in SUBSETS if s in found] + [s for s in found if s not in SUBSETS]


def shard_inventory(root: str, subsets: Iterable[str] | None = None, count: bool = False) -> list[ShardInfo]:
    """Every complete shard of ``subsets`` (default: all present) with its size; with ``count`` also the number
    of samples, found by streaming the tar headers (reads the whole shard, so slower on big sets)."""
    fs, _ = fsspec.core.url_to_fs(root)
    out = []
    for subset in subsets or subsets_in(root):
        for shard in list_shards(root, subset):
            info = ShardInfo(subset=subset, path=shard, bytes=int(fs.size(shard)))
            if count:
                info.samples = sum(1 for _ in iter_samples(shard, members=()))
            out.append(info)
    return out


def torn_shards(root: str, subset: str) -> list[str]:
    """Leftover ``.tmp`` shards of a subset (a writer died before renaming them into place)."""
    fs, path = fsspec.core.url_to_fs(root)
    return sorted(fs.glob(f"{path.rstrip('/')}/{subset}/*{SHARD_SUFFIX}{TMP_SUFFIX}"))


def shard_name(shard: str) -> str:
    """The file name of a shard path or URL; the index may store shards absolute, relative or as URLs."""
    return posixpath.basename(str(shard).replace("\\", "/"))


def index_scores(row) -> dict[str, float]:
    """The scores of an index row (``scores_json``), empty when absent or unreadable."""
    try:
        scores = json.loads(row["scores_json"] or "{}")
    except (TypeError, ValueError):
        return {}
    return {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))} if isinstance(scores, dict) else {}


def find_sample(
    root: str, key: str, members: Iterable[str] | None = None, problems: list[str] | None = None
) -> Sample | None:
    """The sample with ``key``: looked up in the index first (one shard read), else by scanning every subset.
    With ``problems``, refused members and broken shards are noted there and the search goes on."""
    candidates: list[str] = []
    index = read_index(root)
    if len(index):
        for _, row in index[index["key"] == key].iterrows():
            for shard in list_shards(root, row["subset"]):
                if shard_name(shard) == shard_name(row["shard"]) and shard not in candidates:
                    candidates.append(shard)
    for shard in candidates:
        for sample in _shard_samples(shard, members, problems):
            if sample.key == key:
                return sample
    for _, sample in iter_all(root, members=members, problems=problems):
        if sample.key == key:
            return sample
    return None


def _shard_samples(shard: str, members: Iterable[str] | None, problems: list[str] | None) -> Iterator[Sample]:
    """A shard's samples; with ``problems``, what cannot be read is noted there instead of raised."""
    if problems is None:
        yield from iter_samples(shard, members=members)
        return
    try:
        yield from iter_samples(shard, members=members, on_refused=problems.append)
    except ShardError as e:  # the rest of this shard is unreadable; the other shards still are
        problems.append(str(e))


def iter_all(
    root: str,
    subsets: Iterable[str] | None = None,
    members: Iterable[str] | None = None,
    problems: list[str] | None = None,
) -> Iterator[tuple[str, Sample]]:
    """(subset, sample) for every sample of ``subsets`` (default: all present), streamed shard by shard. Without
    ``problems`` the first refused member or broken shard raises ShardError; with it, each is noted there (and
    every name that is no shard file: links, FIFOs) and reading goes on."""
    for subset in subsets or subsets_in(root):
        if problems is not None:
            problems.extend(f"{subset}/{shard_name(p)}: {why}" for p, why in refused_shards(root, subset))
        for shard in list_shards(root, subset):
            for sample in _shard_samples(shard, members, problems):
                yield subset, sample


@dataclass
class ClipFacts:
    """What the inspector shows of a clip, typed: read from its json leniently (extra fields are fine), but a
    field of the wrong type is a ShardError naming it, never a crash further on."""

    key: str
    instruction: str = ""
    narration: str = ""
    phase: str | None = None
    source_uri: str = ""
    start: float = 0.0
    end: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.end - self.start


def _typed(meta: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any, where: str) -> Any:
    value = meta.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or not _finite(value):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        raise ShardError(
            f"{where}: field {name!r} should be {' or '.join(k.__name__ for k in kinds)}, not "
            f"{type(value).__name__}" + ("" if _finite(value) else f" {value}")
        )
    return value


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def clip_facts(sample: Sample) -> ClipFacts:
    """The typed facts of a sample (instruction from its txt when present); ShardError naming the member and
    field when its json or txt is unusable."""
    meta = sample.meta
    where = f"{sample.shard}: {sample.key}.json"
    number = (int, float)
    scores = _typed(meta, "scores", dict, {}, where)
    flags = _typed(meta, "flags", dict, {}, where)
    bad = [k for k, v in scores.items() if isinstance(v, bool) or not isinstance(v, number) or not _finite(v)]
    if bad:
        raise ShardError(f"{where}: score {ascii(bad[0])} is not a finite number")
    phase = _typed(meta, "phase", str, None, where)
    return ClipFacts(
        key=sample.key,
        instruction=sample.instruction if "txt" in sample.members else _typed(meta, "instruction", str, "", where),
        narration=_typed(meta, "narration", str, "", where),
        phase=phase,
        source_uri=_typed(meta, "source_uri", str, "", where),
        start=float(_typed(meta, "start", number, 0.0, where)),
        end=float(_typed(meta, "end", number, 0.0, where)),
        scores={k: float(v) for k, v in scores.items()},
        flags={k: bool(v) for k, v in flags.items()},
    )


def listing(root: str, count_tars: bool = False) -> tuple[list[ShardInfo], str]:
    """Every shard with its size and sample count, and where the counts came from: ``"index"`` (fast, when the
    run wrote one and ``count_tars`` is off) or ``"tars"`` (streams every shard's headers)."""
    if not count_tars:
        index = read_index(root)
        if len(index):
            counts = index.assign(name=index["shard"].map(shard_name)).groupby(["subset", "name"]).size()
            infos = shard_inventory(root)
            for info in infos:
                info.samples = int(counts.get((info.subset, shard_name(info.path)), 0))
            return infos, "index"
    return shard_inventory(root, count=True), "tars"
