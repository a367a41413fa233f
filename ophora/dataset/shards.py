"""THE shard contract (docs/design.md §3): clip keys, sample members, metadata schema, the writer and the safe reader.

Everything that writes or reads Ophora shards goes through this module: the curation job, the inspector, the
trainer and the tests. The shards are plain WebDataset tars, so they also open with ``webdataset``,
``ray.data.read_webdataset`` and ``tarfile``. Import everything from here: the names (source ids, clip keys,
member names) are defined in ``shards_names.py`` and the safe reader in ``shards_reader.py``, both re-exported.

Layout of a curation output directory::

    OUT/tpt/<source id>-<token>-<seq>.tar   every accepted clip (token: fresh per write call)
    OUT/p2ft/<source id>-<token>-<seq>.tar  the privacy-clean, high-quality subset (also in tpt/)
    OUT/index/<source id>.parquet           one row per (clip, subset): INDEX_COLUMNS
    OUT/ledger/*.parquet                    one row per source (owned by ledger.py)
    OUT/summary.json                        the run's machine-readable summary

A sample is ``<key>.mp4`` (H.264 yuv420p), ``<key>.txt`` (the instruction, UTF-8) and ``<key>.json``
(:class:`ClipMeta`). Precomputed-latent shards (training) use ``<key>.latents.npy`` and ``<key>.prompt_embeds.npy``
(float16 ``.npy``, loaded with ``allow_pickle=False``) next to the same ``.txt`` and ``.json``.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from collections.abc import Iterable
from typing import Any

import fsspec
from pydantic import BaseModel, ConfigDict, Field

from ophora.dataset.shards_names import (
    ALLOWED_MEMBERS,
    LATENT_MEMBERS,
    RAW_MEMBERS,
    SHARD_SUFFIX,
    TMP_SUFFIX,
    ShardError,
    check_member_name,
    clip_key,
    parse_key,
    source_id_for_file,
    source_id_from_bytes_digest,
    source_id_from_stable_id,
)
from ophora.dataset.shards_reader import (
    MAX_MEMBER_BYTES,
    MAX_META_BYTES,
    Sample,
    iter_samples,
    iter_subset,
    list_shards,
    not_a_shard,
    open_shard,
    refused_shards,
)

__all__ = [
    "ALLOWED_MEMBERS",
    "INDEX_COLUMNS",
    "INDEX_DIR",
    "LATENT_MEMBERS",
    "LEDGER_DIR",
    "MAX_MEMBER_BYTES",
    "MAX_META_BYTES",
    "PIPELINE_VERSION",
    "RAW_MEMBERS",
    "SHARD_SUFFIX",
    "SUBSETS",
    "SUMMARY_FILE",
    "TMP_SUFFIX",
    "ClipMeta",
    "Sample",
    "ShardError",
    "ShardWriter",
    "check_member_name",
    "clip_key",
    "decide_subsets",
    "encode_sample",
    "iter_samples",
    "iter_subset",
    "list_shards",
    "not_a_shard",
    "open_shard",
    "parse_key",
    "read_index",
    "refused_shards",
    "source_id_for_file",
    "source_id_from_bytes_digest",
    "source_id_from_stable_id",
]

PIPELINE_VERSION = "0.1.0"
SUBSETS = ("tpt", "p2ft")
INDEX_DIR = "index"
LEDGER_DIR = "ledger"
SUMMARY_FILE = "summary.json"

INDEX_COLUMNS = (
    "key",
    "subset",
    "shard",
    "source_id",
    "start",
    "end",
    "duration",
    "phase",
    "instruction",
    "scores_json",
)

# ---------------------------------------------------------------- metadata schema


class ClipMeta(BaseModel):
    """``<key>.json``: everything about a clip except its pixels and its instruction text."""

    model_config = ConfigDict(extra="forbid")

    key: str
    source_id: str
    source_uri: str
    clip_index: int = Field(ge=0)
    scene_index: int = Field(ge=0)
    start: float = Field(ge=0, description="seconds into the source")
    end: float = Field(gt=0, description="seconds into the source")
    fps: float = Field(gt=0)
    num_frames: int = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    instruction: str = ""
    narration: str = Field("", description="aligned narration after PHI scrubbing")
    words: list[dict[str, Any]] = Field(default_factory=list, description="[{word, start, end}] in clip time")
    language: str | None = None
    phase: str | None = None
    subsets: list[str] = Field(default_factory=lambda: ["tpt"])
    p2ft_reasons: list[str] = Field(default_factory=list, description="why the clip is kept out of p2ft/")
    scores: dict[str, float] = Field(default_factory=dict)
    flags: dict[str, bool] = Field(default_factory=dict)
    models: dict[str, str] = Field(default_factory=dict, description="stage -> model id@version")
    refine: dict[str, Any] = Field(default_factory=dict)
    pipeline_version: str = PIPELINE_VERSION


def decide_subsets(p2ft_reasons: Iterable[str], identifying: bool) -> list[str]:
    """The subsets a clip belongs to. Identifying content keeps it out of every subset; any other
    ``p2ft_reasons`` (text overlay, face, low quality...) keeps it in ``tpt`` only. A stage marks a clip for
    P²FT exclusion by appending a reason to ``p2ft_reasons``; it never writes ``subsets`` itself."""
    if identifying:
        return []
    return ["tpt"] if list(p2ft_reasons) else ["tpt", "p2ft"]


# ---------------------------------------------------------------- writer


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime, ti.uname, ti.gname = size, 0o644, 0, "ophora", "ophora"
    return ti


class ShardWriter:
    """Writes samples to ``<root>/<subset>/<prefix>-<seq>.tar``, a new shard every ``max_count`` samples or
    ``max_bytes`` bytes. Each shard is written under a ``.tmp`` name (locally, then uploaded for object stores)
    and only renamed into place when complete, so readers never see a torn tar. ``prefix`` must be unique per
    concurrent writer (the pipeline derives it from the write task), which is how writers avoid clashing."""

    def __init__(self, root: str, subset: str, prefix: str, max_count: int = 1000, max_bytes: int = 1 << 30):
        if subset not in SUBSETS and not subset.isidentifier():
            raise ShardError(f"unknown subset {subset!r}")
        self.fs, self.root = fsspec.core.url_to_fs(root)
        self.subset, self.prefix = subset, prefix
        self.max_count, self.max_bytes = max_count, max_bytes
        self.written: list[tuple[str, list[str]]] = []  # (final shard path, keys)
        self._seq, self._tar, self._tmp, self._keys, self._bytes = 0, None, None, [], 0
        self.fs.makedirs(f"{self.root}/{subset}", exist_ok=True)

    def shard_name(self, seq: int) -> str:
        return f"{self.prefix}-{seq:06d}{SHARD_SUFFIX}"

    def _open(self) -> None:
        local = isinstance(self.fs, fsspec.implementations.local.LocalFileSystem)
        final = f"{self.root}/{self.subset}/{self.shard_name(self._seq)}"
        self._final = final
        if local:
            self._tmp = final + TMP_SUFFIX
        else:
            fd, self._tmp = tempfile.mkstemp(suffix=SHARD_SUFFIX + TMP_SUFFIX)
            os.close(fd)
        self._local = local
        self._tar = tarfile.open(self._tmp, "w", format=tarfile.PAX_FORMAT)
        self._keys, self._bytes = [], 0

    def write(self, key: str, members: dict[str, bytes]) -> str:
        """Add one sample (``{"mp4": b..., "txt": b..., "json": b...}``); returns the shard's final path."""
        parse_key(key)
        if self._tar is None:
            self._open()
        for ext in sorted(members):
            data = members[ext]
            name = f"{key}.{ext}"
            check_member_name(name, self.shard_name(self._seq))
            self._tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))
            self._bytes += len(data) + 1024
        self._keys.append(key)
        final = self._final
        if len(self._keys) >= self.max_count or self._bytes >= self.max_bytes:
            self._finish()
        return final

    def _finish(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        if self._local:
            os.replace(self._tmp, self._final)
        else:
            self.fs.put_file(self._tmp, self._final)
            os.unlink(self._tmp)
        self.written.append((self._final, list(self._keys)))
        self._tar, self._seq = None, self._seq + 1

    def close(self) -> list[tuple[str, list[str]]]:
        """Finish the open shard; returns every (shard path, keys) this writer completed."""
        self._finish()
        return self.written

    def abort(self) -> None:
        """Drop the open shard's temporary file (used when the task fails)."""
        if self._tar is not None:
            self._tar.close()
            self._tar = None
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, *_):
        self.abort() if exc_type else self.close()


def encode_sample(meta: ClipMeta, mp4: bytes) -> dict[str, bytes]:
    """The members of a raw sample: mp4 bytes, the instruction as txt, the metadata as json."""
    return {"mp4": mp4, "txt": meta.instruction.encode("utf-8"), "json": meta.model_dump_json().encode("utf-8")}


# ---------------------------------------------------------------- reader

# ---------------------------------------------------------------- index


def read_index(root: str):
    """The clip index (one row per clip and subset, INDEX_COLUMNS) as a pandas DataFrame; empty when the run
    wrote none. Raises ValueError naming the part file when a part lacks contract columns."""
    import pandas as pd
    import pyarrow.parquet as pq

    fs, path = fsspec.core.url_to_fs(root)
    frames = []
    for part in sorted(fs.glob(f"{path.rstrip('/')}/{INDEX_DIR}/*.parquet")):
        with fs.open(part, "rb") as fh:
            df = pq.read_table(fh).to_pandas()
        missing = [c for c in INDEX_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{part}: index part lacks columns {missing}")
        frames.append(df)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in INDEX_COLUMNS})
    return pd.concat(frames, ignore_index=True)
