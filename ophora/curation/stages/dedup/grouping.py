"""dedup (part 2 of 2): drop near-duplicate clip windows across a whole run with Ray Data, no driver-side set.

Input: the window rows right after :class:`~ophora.curation.stages.dedup.DedupStage` (they carry
``dedup_signature``). One lazy pass over the input and two shuffles, each spread over the cluster:

1. each row goes on as itself plus one small record per LSH band key of its signature;
2. ``groupby(band)``: a band bucket compares its members (:func:`~ophora.curation.stages.dedup.bucket_losers`)
   and emits a marker (loser, winner) per near-duplicate pair; a row passes through its own bucket unchanged;
3. ``groupby(window id)``: a row with a marker gets ``drop = "dedup: near duplicate (of <winner>)"`` (the ledger
   records it like any other drop).

A loser is any window with a better near duplicate, so in a chain A~B~C (A best, C not near A) both B and C go.
Dedup is a barrier: no window passes before every window's signature is known (that is what "across the run"
costs). The upstream stages still run once: the input is read by one operator only.
"""

from __future__ import annotations

import pyarrow as pa

from ophora.curation.stages.dedup import SIGNATURE, DedupConfig, band_keys, bucket_losers, window_id, window_quality

WID, WINNER, MARKER, BAND, QUALITY = "_dedup_wid", "_dedup_winner", "_dedup_marker", "_dedup_band", "_dedup_quality"
_HELPERS = [WID, WINNER, MARKER, BAND, QUALITY]
_ROW_BUCKET = "row:"


def _live(row: dict) -> bool:
    return bool(row.get(SIGNATURE)) and not (row.get("drop") or row.get("reject") or row.get("error"))


def _records(schema: pa.Schema, n: int, **values: list) -> pa.Table:
    """``n`` records of ``schema``: the given columns filled, every other column null."""
    return pa.Table.from_arrays(
        [pa.array(values[f.name], f.type) if f.name in values else pa.nulls(n, f.type) for f in schema], schema=schema
    )


def _fan_out(batch: pa.Table, bands: int, score: str) -> pa.Table:
    rows = batch.to_pylist()
    wids = [window_id(r) for r in rows]
    n = len(rows)
    out = (
        batch.append_column(WID, pa.array(wids, pa.string()))
        .append_column(WINNER, pa.array([""] * n, pa.string()))
        .append_column(MARKER, pa.array([False] * n, pa.bool_()))
        .append_column(BAND, pa.array([_ROW_BUCKET + w for w in wids], pa.string()))
        .append_column(QUALITY, pa.array([0.0] * n, pa.float64()))
    )
    recs = [
        (k, w, window_quality(r, score), r[SIGNATURE])
        for r, w in zip(rows, wids)
        if _live(r)
        for k in band_keys(r[SIGNATURE], bands)
    ]
    if not recs:
        return out
    m = len(recs)
    bands_tbl = _records(
        out.schema,
        m,
        **{
            BAND: [r[0] for r in recs],
            WID: [r[1] for r in recs],
            QUALITY: [r[2] for r in recs],
            SIGNATURE: [r[3] for r in recs],
            WINNER: [""] * m,
            MARKER: [False] * m,
        },
    )
    return pa.concat_tables([out, bands_tbl])


def _bucket(group: pa.Table, max_bits: int) -> pa.Table:
    if group.column(BAND)[0].as_py().startswith(_ROW_BUCKET):
        return group  # a row on its way to step 3
    members = list(
        zip(group.column(WID).to_pylist(), group.column(QUALITY).to_pylist(), group.column(SIGNATURE).to_pylist())
    )
    pairs = bucket_losers(members, max_bits) if len(members) > 1 else []
    n = len(pairs)
    return _records(
        group.schema,
        n,
        **{
            WID: [p[0] for p in pairs],
            WINNER: [p[1] for p in pairs],
            MARKER: [True] * n,
            BAND: [""] * n,
            QUALITY: [0.0] * n,
        },
    )


def _resolve(group: pa.Table) -> pa.Table:
    marker = group.column(MARKER).to_pylist()
    winners = sorted({w for w, m in zip(group.column(WINNER).to_pylist(), marker) if m and w})
    rows = group.filter(pa.array([not m for m in marker]))
    if winners and rows.num_rows:
        drops = [d or f"dedup: near duplicate (of {winners[0]})" for d in rows.column("drop").to_pylist()]
        rows = rows.set_column(rows.schema.get_field_index("drop"), "drop", pa.array(drops, pa.string()))
    return rows.drop_columns(_HELPERS)


def dedup_dataset(ds, config: DedupConfig | None = None, num_cpus: float = 0.25, partitions: int | None = None):
    """The rows of ``ds`` with ``drop`` set on every window that has a better near duplicate in the run (lazy).

    ``ds`` holds window rows with ``drop`` and ``dedup_signature`` columns (the DedupStage output); rows without a
    signature or already settled pass unchanged. Row order is not kept. ``partitions`` sets the shuffles' partition
    count (None: Ray Data's default; a small number on a small machine)."""
    cfg = config or DedupConfig()
    return (
        ds.map_batches(
            _fan_out,
            batch_format="pyarrow",
            num_cpus=num_cpus,
            fn_kwargs={"bands": cfg.bands, "score": cfg.quality_score},
        )
        .groupby(BAND, num_partitions=partitions)
        .map_groups(_bucket, batch_format="pyarrow", num_cpus=num_cpus, fn_kwargs={"max_bits": cfg.threshold_bits})
        .groupby(WID, num_partitions=partitions)
        .map_groups(_resolve, batch_format="pyarrow", num_cpus=num_cpus)
    )
