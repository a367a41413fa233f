"""write: clips into WebDataset shards (through shards.ShardWriter), one small record per row out.

Each call writes the batch's clips grouped by source into shards named ``<source id>-<token>-<seq>.tar`` (the
token is fresh per call, so concurrent writers and retried calls never share a name) and closes them before
returning: every shard a record names is complete. The driver turns records into index rows and ledger rows;
the write stage never touches the ledger, so it can run with any concurrency.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import defaultdict
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from ophora.curation.stages.base import Stage, stage_resources
from ophora.curation.stages.common import batch_to_rows, read_meta
from ophora.curation.stages.frame_filter import is_identifying
from ophora.curation.stages.privacy import NOT_EXAMINED, privacy_examined
from ophora.dataset.shards import ClipMeta, ShardWriter, clip_key, decide_subsets, encode_sample

RECORD_SCHEMA = pa.schema(
    [
        ("source_uri", pa.string()),
        ("source_id", pa.string()),
        ("window_index", pa.int64()),
        ("windows_total", pa.int64()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("duration", pa.float64()),
        ("outcome", pa.string()),  # written | dropped | rejected | failed
        ("reason", pa.string()),  # "stage: reason" for dropped / rejected / failed
        ("key", pa.string()),
        ("index_json", pa.string()),  # [index row per subset] (shards.INDEX_COLUMNS; shard relative to OUT)
        ("phi_json", pa.string()),  # every window: what PHI scrubbing replaced in its narration, by kind
        ("p2ft_json", pa.string()),  # written clips: why they are kept out of p2ft/ (["stage: reason", ...])
    ]
)


def clip_meta(row: dict[str, Any], key: str) -> ClipMeta:
    """The ``<key>.json`` of a window row: the row's facts plus what later stages put in ``meta_json``."""
    extra = read_meta(row)
    reasons = list(extra.pop("p2ft_reasons", []))
    if not privacy_examined(extra):  # p2ft/ holds only clips the privacy stage examined and found clean
        reasons.append(f"write: {NOT_EXAMINED}")
    return ClipMeta(
        key=key,
        source_id=row["source_id"],
        source_uri=row["source_uri"],
        clip_index=row["window_index"],
        scene_index=row["scene_index"],
        start=row["start"],
        end=row["end"],
        p2ft_reasons=reasons,
        subsets=decide_subsets(reasons, is_identifying(row)),
        **extra,
    )


def _record(
    row: dict[str, Any],
    outcome: str,
    reason: str = "",
    key: str = "",
    index: list | None = None,
    meta: ClipMeta | None = None,
):
    return {
        "source_uri": row["source_uri"],
        "source_id": row["source_id"],
        "window_index": row["window_index"],
        "windows_total": row["windows_total"],
        "start": row["start"],
        "end": row["end"],
        "duration": row["duration"],
        "outcome": outcome,
        "reason": reason,
        "key": key,
        "index_json": json.dumps(index or []),
        "phi_json": row.get("phi_json") or "{}",  # dropped windows too: their narration was scrubbed as well
        "p2ft_json": json.dumps(meta.p2ft_reasons if meta else []),
    }


class WriteConfig(BaseModel):
    """The ``write`` section: shard writing."""

    model_config = ConfigDict(extra="forbid")

    max_count: int = Field(1000, gt=0, description="samples per shard at most")
    max_bytes: int = Field(1 << 30, gt=0, description="bytes per shard at most")


class Write(Stage):
    """``__call__(batch) -> records``: writes every clip of the batch and returns one record per row."""

    name = "write"
    sections = {"write": WriteConfig}
    resources = stage_resources(0.1, (1, 1), 64)
    holds_model = False  # cheap to build: Ray tasks in pooled workers, not an actor process of its own

    def setup(self) -> None:
        if not self.run.out:
            raise ValueError("the write stage needs the run's OUT (RunFacts.out)")
        self.out = self.run.out

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch_to_rows(batch)
        records, clips = [], defaultdict(list)
        for row in rows:
            if row["error"]:
                records.append(_record(row, "failed", row["error"]))
            elif row["reject"]:
                records.append(_record(row, "rejected", row["reject"]))
            elif row["drop"]:
                records.append(_record(row, "dropped", row["drop"]))
            elif row["window_index"] < 0:
                records.append(_record(row, "failed", "write: a source row reached the writer unsplit"))
            else:
                clips[row["source_id"]].append(row)
        for source_id, source_rows in clips.items():
            records.extend(self._write_source(source_id, source_rows))
        return pa.Table.from_pylist(records, schema=RECORD_SCHEMA)

    def _write_source(self, source_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        prefix = f"{source_id}-{uuid.uuid4().hex[:8]}"
        writers: dict[str, ShardWriter] = {}
        records = []
        try:
            for row in rows:
                key = clip_key(source_id, row["window_index"])
                meta = clip_meta(row, key)
                if not meta.subsets:
                    records.append(_record(row, "dropped", "write: identifying content, kept out of every subset"))
                    continue
                sample = encode_sample(meta, row["mp4"])
                index = []
                for subset in meta.subsets:
                    if subset not in writers:
                        writers[subset] = ShardWriter(self.out, subset, prefix, self.cfg.max_count, self.cfg.max_bytes)
                    shard = writers[subset].write(key, sample)
                    index.append(
                        {
                            "key": key,
                            "subset": subset,
                            "shard": f"{subset}/{os.path.basename(shard)}",
                            "source_id": source_id,
                            "start": meta.start,
                            "end": meta.end,
                            "duration": meta.end - meta.start,
                            "phase": meta.phase or "",
                            "instruction": meta.instruction,
                            "scores_json": json.dumps(meta.scores),
                        }
                    )
                records.append(_record(row, "written", key=key, index=index, meta=meta))
            for w in writers.values():
                w.close()
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        return records
