"""dedup (part 2 of 2): drop near-duplicate clip windows across a whole run with Ray Data, no driver-side set.

Input: the window rows after :class:`~ophora.curation.stages.dedup.DedupStage` (they carry
``dedup_signature``). Three shuffles, each spread over the cluster:

1. every signature emits one record per LSH band key (``band``, window id, quality, signature);
2. ``groupby("band")``: each bucket compares its members (:func:`~ophora.curation.stages.dedup.bucket_losers`)
   and emits (loser, winner) pairs;
3. ``groupby(window id)`` over the rows united with the loser markers: a row with a marker gets
   ``drop = "dedup: near duplicate of <winner>"`` (the ledger records it like any other drop).

A loser is any window with a better near duplicate, so in a chain A~B~C (A best, C not near A) both B and C go.
The input is materialised first (rows are metadata only before the clip stage), so the upstream stages run once.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

from ophora.curation.stages.dedup import (SIGNATURE, DedupConfig, band_keys, bucket_losers, window_id,
                                          window_quality)

WID, WINNER, MARKER = "_dedup_wid", "_dedup_winner", "_dedup_marker"
_HELPERS = (WID, WINNER, MARKER)


def _live(row: dict[str, Any]) -> bool:
    return bool(row.get(SIGNATURE)) and not (row.get("drop") or row.get("reject") or row.get("error"))


def _band_records(row: dict[str, Any], bands: int, score: str) -> list[dict[str, Any]]:
    if not _live(row):
        return []
    wid, q = window_id(row), window_quality(row, score)
    return [{"band": k, "wid": wid, "quality": q, "sig": row[SIGNATURE]} for k in band_keys(row[SIGNATURE], bands)]


def _bucket(group: pd.DataFrame, max_bits: int) -> pd.DataFrame:
    members = list(zip(group["wid"], group["quality"].astype(float), group["sig"]))
    pairs = bucket_losers(members, max_bits) if len(members) > 1 else []
    return pd.DataFrame(pairs, columns=["wid", "winner"], dtype=object)


def _tag_rows(batch: pa.Table) -> pa.Table:
    rows = batch.to_pylist()
    return (batch.append_column(WID, pa.array([window_id(r) for r in rows], pa.string()))
            .append_column(WINNER, pa.array([""] * len(rows), pa.string()))
            .append_column(MARKER, pa.array([False] * len(rows), pa.bool_())))


def _marker_rows(batch: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    n = len(batch)
    columns = []
    for f in schema:
        if f.name == WID:
            columns.append(pa.array(batch["wid"].astype(str).tolist(), pa.string()))
        elif f.name == WINNER:
            columns.append(pa.array(batch["winner"].astype(str).tolist(), pa.string()))
        elif f.name == MARKER:
            columns.append(pa.array([True] * n, pa.bool_()))
        else:
            columns.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _resolve(group: pa.Table) -> pa.Table:
    marker = group.column(MARKER).to_pylist()
    winners = sorted({w for w, m in zip(group.column(WINNER).to_pylist(), marker) if m and w})
    rows = group.filter(pa.array([not m for m in marker]))
    if winners and rows.num_rows:
        drops = [d or f"dedup: near duplicate of {winners[0]}" for d in rows.column("drop").to_pylist()]
        rows = rows.set_column(rows.schema.get_field_index("drop"), "drop", pa.array(drops, pa.string()))
    return rows.drop_columns(list(_HELPERS))


def dedup_dataset(ds, config: DedupConfig | None = None, num_cpus: float = 0.25, partitions: int | None = None):
    """The rows of ``ds`` with ``drop`` set on every window that has a better near duplicate in the run.

    ``ds`` holds window rows with ``drop`` and ``dedup_signature`` columns (the DedupStage output); rows without a
    signature or already settled pass unchanged. Row order is not kept. ``partitions`` sets the shuffles' partition
    count (None: Ray Data's default; a small number on a small machine). Ray must be initialised by the caller."""
    cfg = config or DedupConfig()
    ds = ds.materialize()
    losers = (ds.flat_map(_band_records, fn_kwargs={"bands": cfg.bands, "score": cfg.quality_score},
                          num_cpus=num_cpus)
              .groupby("band", num_partitions=partitions)
              .map_groups(_bucket, batch_format="pandas", fn_kwargs={"max_bits": cfg.max_bits}, num_cpus=num_cpus))
    tagged = ds.map_batches(_tag_rows, batch_format="pyarrow", num_cpus=num_cpus)
    schema = pa.schema(list(ds.schema().base_schema) + [pa.field(WID, pa.string()), pa.field(WINNER, pa.string()),
                                                        pa.field(MARKER, pa.bool_())])
    markers = losers.map_batches(_marker_rows, batch_format="pandas", fn_kwargs={"schema": schema},
                                 num_cpus=num_cpus)
    return tagged.union(markers).groupby(WID, num_partitions=partitions).map_groups(_resolve, batch_format="pyarrow", num_cpus=num_cpus)
