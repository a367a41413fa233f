"""Getting clips out of shards safely: one clip (``show --extract``), mp4+txt pairs, or a ``clip id,instruction``
CSV. Output names come only from validated clip keys and are opened without following links, so a hostile shard
cannot write outside the target directory."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ophora.dataset.shards import ShardError, iter_samples, list_shards, parse_key
from ophora.inspection.text import csv_cell

CSV_HEADER = ("clip id", "instruction")


@dataclass
class ExportResult:
    written: int = 0
    skipped: list[str] | None = None
    target: str = ""


def safe_output_path(out_dir: str | Path, key: str, ext: str) -> Path:
    """``out_dir/<key>.<ext>`` for a valid clip key; ShardError for anything that could escape ``out_dir``."""
    parse_key(key)  # keys are [0-9a-z]+_digits: no separators, no dots, no '..'
    if ext not in ("mp4", "txt", "json", "png", "jpg"):
        raise ShardError(f"refusing to write extension {ext!r}")
    base = Path(out_dir).resolve()
    path = (base / f"{key}.{ext}").resolve()
    if path.parent != base:
        raise ShardError(f"{key}.{ext} would land outside {base}")
    return path


def write_new_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` without following a link planted at that name."""
    if path.is_symlink():
        raise ShardError(f"{path} is a symbolic link; refusing to write through it")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def extract_clip(sample, out_dir: str | Path) -> Path:
    """Write a sample's mp4 as ``out_dir/<key>.mp4``; returns the path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = safe_output_path(out, sample.key, "mp4")
    write_new_file(path, sample.mp4)
    return path


def export_pairs(
    root: str, folder: str | Path, subsets: Iterable[str] = ("tpt",), limit: int | None = None
) -> ExportResult:
    """Write ``<key>.mp4`` + ``<key>.txt`` for every sample of ``subsets`` (each key once) into ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    result, seen = ExportResult(skipped=[], target=str(out)), set()
    for subset in subsets:
        for shard in list_shards(root, subset):
            for sample in iter_samples(shard, members=("mp4", "txt")):
                if limit is not None and result.written >= limit:
                    return result
                if sample.key in seen:
                    continue
                if "mp4" not in sample.members or "txt" not in sample.members:
                    result.skipped.append(f"{sample.key}: lacks mp4 or txt")
                    continue
                try:
                    write_new_file(safe_output_path(out, sample.key, "mp4"), sample.mp4)
                    write_new_file(safe_output_path(out, sample.key, "txt"), sample.members["txt"])
                except ShardError as e:
                    result.skipped.append(str(e))
                    continue
                seen.add(sample.key)
                result.written += 1
    return result


def export_csv(
    root: str, csv_path: str | Path, subsets: Iterable[str] = ("tpt",), limit: int | None = None
) -> ExportResult:
    """Write a ``clip id,instruction`` CSV (the paper's release format) for ``subsets``, each key once. An
    instruction a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) starts with an apostrophe."""
    path = Path(csv_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    result, seen = ExportResult(skipped=[], target=str(path)), set()
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_HEADER)
        for subset in subsets:
            for shard in list_shards(root, subset):
                for sample in iter_samples(shard, members=("txt",)):
                    if limit is not None and result.written >= limit:
                        return result
                    if sample.key in seen:
                        continue
                    try:
                        parse_key(sample.key)
                        text = sample.instruction
                    except ShardError as e:
                        result.skipped.append(f"{sample.key}: {e}")
                        continue
                    seen.add(sample.key)
                    writer.writerow((sample.key, csv_cell(" ".join(text.split()))))
                    result.written += 1
    return result
