"""What is in a curation output directory: shards per subset with sizes, the clip index, where a key lives."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Iterable, Iterator

import fsspec

from ophora.curation.shards import (INDEX_DIR, LEDGER_DIR, SHARD_SUFFIX, SUBSETS, TMP_SUFFIX, Sample,
                                    iter_samples, list_shards, read_index)


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


def find_sample(root: str, key: str, members: Iterable[str] | None = None) -> Sample | None:
    """The sample with ``key``: looked up in the index first (one shard read), else by scanning every subset."""
    candidates: list[str] = []
    index = read_index(root)
    if len(index):
        for _, row in index[index["key"] == key].iterrows():
            for shard in list_shards(root, row["subset"]):
                if shard_name(shard) == shard_name(row["shard"]) and shard not in candidates:
                    candidates.append(shard)
    for shard in candidates:
        for sample in iter_samples(shard, members=members):
            if sample.key == key:
                return sample
    for _, sample in iter_all(root, members=members):
        if sample.key == key:
            return sample
    return None


def iter_all(root: str, subsets: Iterable[str] | None = None, members: Iterable[str] | None = None
             ) -> Iterator[tuple[str, Sample]]:
    """(subset, sample) for every sample of ``subsets`` (default: all present), streamed shard by shard."""
    for subset in subsets or subsets_in(root):
        for shard in list_shards(root, subset):
            for sample in iter_samples(shard, members=members):
                yield subset, sample


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
