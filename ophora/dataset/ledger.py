"""The source ledger: what happened to every input of a run, and what resume reads.

One row per source and attempt, appended as Parquet part files under ``OUT/ledger/`` (one file per writing task,
so concurrent writers never clash). The latest row of a source (by ``updated_at``) is its state:

- ``done``      every clip of the source went through; ``clips_written`` of them landed in shards
- ``rejected``  the input is unusable (``stage`` and ``reason`` say why: "probe: no video stream", ...)
- ``failed``    an error broke the source's processing (``reason`` holds the error); resume retries it

``drops_json`` maps "stage: reason" to how many clip windows of the source that stage dropped for that reason;
``dropped_json`` lists each dropped window as ``[window index, start s, end s, "stage: reason (details)"]``.
``clip_seconds`` is how much of the source's duration its clips cover (overlapping clips count once) and
``lost_json`` says where the rest went, in seconds by "stage: reason" (:func:`footage_yield`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from ophora.dataset.shards import LEDGER_DIR

STATUSES = ("done", "rejected", "failed")

LEDGER_SCHEMA = pa.schema(
    [
        ("source_uri", pa.string()),
        ("source_id", pa.string()),
        ("status", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("duration", pa.float64()),
        ("clips_written", pa.int64()),
        ("clips_dropped", pa.int64()),
        ("drops_json", pa.string()),
        ("keys_json", pa.string()),
        ("dropped_json", pa.string()),
        ("clip_seconds", pa.float64()),
        ("lost_json", pa.string()),
        ("updated_at", pa.float64()),
    ]
)

# Source time no window covers: the stretches around scene boundaries (the boundary's own interval of uncertainty
# and windows.cut_margin on either side).
MARGINS = "scenes: boundaries and cut margins"


def reason_category(reason: str) -> str:
    """ "stage: category (details)" -> "stage: category", so counts add up across sources."""
    return reason.split(" (", 1)[0].strip()


def union_spans(spans: Iterable[tuple[float, float]]) -> list[list[float]]:
    """Sorted, disjoint [lo, hi] spans covering the same seconds as ``spans``."""
    out: list[list[float]] = []
    for lo, hi in sorted((float(a), float(b)) for a, b in spans if b > a):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


def minus_spans(spans: list[list[float]], taken: list[list[float]]) -> list[list[float]]:
    """``spans`` with every stretch of ``taken`` removed (both sorted, disjoint)."""
    out = []
    for lo, hi in spans:
        for a, b in taken:
            if b <= lo or a >= hi:
                continue
            if a > lo:
                out.append([lo, a])
            lo = max(lo, b)
        if hi > lo:
            out.append([lo, hi])
    return out


def footage_yield(
    duration: float,
    clips: Iterable[tuple[float, float]],
    dropped: Iterable[tuple[float, float, str]],
    rejected: str = "",
) -> dict[str, Any]:
    """Where a source's seconds went: ``clip_s`` covered by its clips (overlaps once), ``share`` of its duration,
    and ``lost_s`` by "stage: reason" for the rest. Every second counts once: a dropped window's seconds a clip
    also covers are not lost, and of dropped windows that overlap the earlier-listed one takes the time; what
    no window covers is :data:`MARGINS`. A rejected source loses its whole duration to its reason."""
    total = max(0.0, float(duration or 0.0))
    if rejected:
        return {
            "duration_s": round(total, 3),
            "clip_s": 0.0,
            "share": 0.0,
            "lost_s": {reason_category(rejected): round(total, 3)} if total else {},
        }
    whole = [[0.0, total]] if total else []
    taken = union_spans((max(0.0, a), min(total, b)) for a, b in clips)
    clip_s = sum(b - a for a, b in taken)
    lost: dict[str, float] = {}
    for start, end, reason in dropped:
        mine = minus_spans(union_spans([(max(0.0, start), min(total, end))]), taken)
        if mine:
            key = reason_category(reason)
            lost[key] = lost.get(key, 0.0) + sum(b - a for a, b in mine)
            taken = union_spans([*map(tuple, taken), *map(tuple, mine)])
    rest = sum(b - a for a, b in minus_spans(whole, taken))
    if rest > 1e-6:
        lost[MARGINS] = rest
    return {
        "duration_s": round(total, 3),
        "clip_s": round(clip_s, 3),
        "share": round(clip_s / total, 4) if total else 0.0,
        "lost_s": {k: round(v, 3) for k, v in sorted(lost.items(), key=lambda kv: -kv[1])},
    }


def ledger_row(
    source_uri: str,
    source_id: str | None,
    status: str,
    *,
    stage: str = "",
    reason: str = "",
    duration: float | None = None,
    keys: Iterable[str] = (),
    drops: dict[str, int] | None = None,
    dropped: Iterable[tuple[int, float, float, str]] = (),
    footage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ledger row; ``keys`` are the clip keys written for the source, ``drops`` "stage: reason" -> count,
    ``dropped`` (window index, start, end, reason) per dropped window, ``footage`` its :func:`footage_yield`."""
    if status not in STATUSES:
        raise ValueError(f"ledger status must be one of {STATUSES}, not {status!r}")
    keys = sorted(keys)
    drops = dict(drops or {})
    return {
        "source_uri": source_uri,
        "source_id": source_id or "",
        "status": status,
        "stage": stage,
        "reason": reason,
        "duration": float(duration) if duration is not None else None,
        "clips_written": len(keys),
        "clips_dropped": int(sum(drops.values())),
        "drops_json": json.dumps(drops, sort_keys=True),
        "keys_json": json.dumps(keys),
        "dropped_json": json.dumps([list(d) for d in sorted(dropped)]),
        "clip_seconds": footage["clip_s"] if footage else None,
        "lost_json": json.dumps(footage["lost_s"], sort_keys=True) if footage else None,
        "updated_at": time.time(),
    }


def append_rows(root: str, rows: list[dict[str, Any]]) -> str | None:
    """Append rows as a new Parquet part file; returns its path (None when there is nothing to write)."""
    if not rows:
        return None
    fs, path = fsspec.core.url_to_fs(root)
    fs.makedirs(f"{path}/{LEDGER_DIR}", exist_ok=True)
    target = f"{path}/{LEDGER_DIR}/part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
    table = pa.Table.from_pylist(rows, schema=LEDGER_SCHEMA)
    with fs.open(target, "wb") as fh:
        pq.write_table(table, fh)
    return target


def read_ledger(root: str, latest: bool = True):
    """The ledger as a pandas DataFrame (LEDGER_SCHEMA columns); with ``latest`` one row per source_uri."""
    import pandas as pd

    fs, path = fsspec.core.url_to_fs(root)
    parts = sorted(fs.glob(f"{path}/{LEDGER_DIR}/*.parquet"))
    if not parts:
        return pd.DataFrame({f.name: pd.Series(dtype=f.type.to_pandas_dtype()) for f in LEDGER_SCHEMA})
    frames = []
    for p in parts:
        with fs.open(p, "rb") as fh:
            table = pq.read_table(fh)
        for f in LEDGER_SCHEMA:  # parts written before a column existed
            if f.name not in table.column_names:
                table = table.append_column(f, pa.nulls(table.num_rows, f.type))
        frames.append(table.select(LEDGER_SCHEMA.names).cast(LEDGER_SCHEMA).to_pandas())
    df = pd.concat(frames, ignore_index=True)
    if latest:
        df = df.sort_values("updated_at").groupby("source_uri", as_index=False).tail(1)
    return df.sort_values("source_uri").reset_index(drop=True)


def drop_counts(df) -> Counter:
    """Sum of ``drops_json`` over ledger rows: "stage: reason" -> clips dropped."""
    total: Counter = Counter()
    for s in df["drops_json"].dropna():
        total.update(json.loads(s))
    return total
