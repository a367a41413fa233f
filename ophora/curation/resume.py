"""What a rerun with the same ``--out`` knows and cleans: the sources already settled, and leftovers of crashes.

The rule that keeps keys unique: only sources whose latest ledger row is ``done`` own shards and index files.
Everything else in ``tpt/``, ``p2ft/`` and ``index/`` (a ``.tmp`` left by a kill, the complete shards of a source
whose ledger row was never written, a retried write's first attempt) is removed before new work starts, and the
source is processed again from scratch under the same keys. One run writes to an OUT at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from ophora.dataset.ledger import read_ledger
from ophora.dataset.shards import INDEX_COLUMNS, INDEX_DIR, SUBSETS

SETTLED = ("done", "rejected")

INDEX_SCHEMA = pa.schema(
    [(c, pa.float64() if c in ("start", "end", "duration") else pa.string()) for c in INDEX_COLUMNS]
)


@dataclass
class OutState:
    """The settled sources of an output directory: URIs to skip and the source ids already claimed."""

    settled_uris: set[str] = field(default_factory=set)
    claims: dict[str, str] = field(default_factory=dict)  # source id -> URI of the done source that owns it
    removed: list[str] = field(default_factory=list)  # leftovers deleted while preparing


def _rm(fs, path: str, removed: list[str]) -> None:
    try:
        fs.rm(path)
        removed.append(path)
    except FileNotFoundError:
        pass


def index_path(out: str, source_id: str) -> str:
    return f"{out.rstrip('/')}/{INDEX_DIR}/{source_id}.parquet"


def write_index(out: str, source_id: str, rows: list[dict]) -> None:
    """One Parquet file of index rows per done source, written under a temporary name and renamed."""
    fs, root = fsspec.core.url_to_fs(out)
    fs.makedirs(f"{root}/{INDEX_DIR}", exist_ok=True)
    final = index_path(root, source_id)
    tmp = final + ".tmp"
    with fs.open(tmp, "wb") as fh:
        pq.write_table(pa.Table.from_pylist(rows, schema=INDEX_SCHEMA), fh)
    fs.mv(tmp, final)


def remove_source_shards(out: str, source_id: str, keep: set[str] = frozenset()) -> list[str]:
    """Delete every shard file (complete or ``.tmp``) of a source except the relative paths in ``keep``."""
    fs, root = fsspec.core.url_to_fs(out)
    removed: list[str] = []
    for subset in SUBSETS:
        for p in fs.glob(f"{root}/{subset}/{source_id}-*"):
            if f"{subset}/{os.path.basename(p)}" not in keep:
                _rm(fs, p, removed)
    return removed


def prepare_out(out: str, force: bool) -> OutState:
    """Read the ledger and clean ``out`` for a run: with ``force`` every shard and index file goes (the ledger
    stays as history; its new rows win); else only what no done source owns."""
    fs, root = fsspec.core.url_to_fs(out)
    fs.makedirs(root, exist_ok=True)
    state = OutState()
    if not force:
        ledger = read_ledger(out)
        for r in ledger.itertuples():
            if r.status in SETTLED:
                state.settled_uris.add(r.source_uri)
            if r.status == "done" and r.source_id:
                state.claims.setdefault(r.source_id, r.source_uri)
    owned_index = {index_path(root, s) for s in state.claims}
    keep_shards: set[str] = set()
    for p in fs.glob(f"{root}/{INDEX_DIR}/*"):
        if p in owned_index:
            with fs.open(p, "rb") as fh:
                keep_shards.update(pq.read_table(fh, columns=["shard"]).column("shard").to_pylist())
        else:
            _rm(fs, p, state.removed)
    for subset in SUBSETS:
        for p in fs.glob(f"{root}/{subset}/*"):
            if f"{subset}/{os.path.basename(p)}" not in keep_shards:
                _rm(fs, p, state.removed)
    return state
