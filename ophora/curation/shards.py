"""THE shard contract (DESIGN.md §3): clip keys, sample members, metadata schema, the writer and the safe reader.

Everything that writes or reads Ophora shards goes through this module: the curation job, the inspector, the
trainer and the tests. The shards are plain WebDataset tars, so they also open with ``webdataset``,
``ray.data.read_webdataset`` and ``tarfile``.

Layout of a curation output directory::

    OUT/tpt/shard-<writer>-<seq>.tar     every accepted clip
    OUT/p2ft/shard-<writer>-<seq>.tar    the privacy-clean, high-quality subset (also in tpt/)
    OUT/index/*.parquet                  one row per (clip, subset): INDEX_COLUMNS
    OUT/ledger/*.parquet                 one row per source (owned by ledger.py)
    OUT/summary.json                     the run's machine-readable summary

A sample is ``<key>.mp4`` (H.264 yuv420p), ``<key>.txt`` (the instruction, UTF-8) and ``<key>.json``
(:class:`ClipMeta`). Precomputed-latent shards (training) use ``<key>.latents.npy`` and ``<key>.prompt_embeds.npy``
(float16 ``.npy``, loaded with ``allow_pickle=False``) next to the same ``.txt`` and ``.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import IO, Any, Iterable, Iterator

import fsspec
from pydantic import BaseModel, ConfigDict, Field

PIPELINE_VERSION = "0.1.0"
SUBSETS = ("tpt", "p2ft")
INDEX_DIR = "index"
LEDGER_DIR = "ledger"
SUMMARY_FILE = "summary.json"
SHARD_SUFFIX = ".tar"
TMP_SUFFIX = ".tmp"

RAW_MEMBERS = ("mp4", "txt", "json")
LATENT_MEMBERS = ("latents.npy", "prompt_embeds.npy", "txt", "json")
# Members a reader will hand out; anything else (notably .pyd/.pickle) is refused, never decoded.
ALLOWED_MEMBERS = frozenset(RAW_MEMBERS + LATENT_MEMBERS + ("png", "jpg", "webp"))

INDEX_COLUMNS = ("key", "subset", "shard", "source_id", "start", "end", "duration", "phase", "instruction",
                 "scores_json")

_KEY_RE = re.compile(r"^(?P<source>[0-9a-z]{4,64})_(?P<index>\d{6})$")
_SOURCE_ID_CHARS = 16


class ShardError(ValueError):
    """A shard or a sample breaks the contract; the message names the shard and member."""


# ---------------------------------------------------------------- keys

def source_id_from_bytes_digest(hexdigest: str) -> str:
    """The source id for a content digest (hex): its first 16 characters, lower case."""
    return hexdigest.lower()[:_SOURCE_ID_CHARS]


def source_id_from_stable_id(stable_id: str) -> str:
    """The source id for a stable id from the source's metadata (e.g. a YouTube id in ``.info.json``)."""
    return source_id_from_bytes_digest(hashlib.sha256(("id:" + stable_id).encode()).hexdigest())


def source_id_for_file(fileobj: IO[bytes], chunk: int = 1 << 20) -> str:
    """The source id of a file's content (sha256, streamed in ``chunk`` bytes; the file is never held in RAM)."""
    h = hashlib.sha256()
    while True:
        block = fileobj.read(chunk)
        if not block:
            break
        h.update(block)
    return source_id_from_bytes_digest(h.hexdigest())


def clip_key(source_id: str, clip_index: int) -> str:
    """``<source id>_<clip index>``: deterministic, dot-free (WebDataset splits keys at the first dot)."""
    key = f"{source_id}_{clip_index:06d}"
    if not _KEY_RE.match(key):
        raise ShardError(f"invalid clip key {key!r}: source id must be 4-64 chars of [0-9a-z]")
    return key


def parse_key(key: str) -> tuple[str, int]:
    """(source id, clip index) of a clip key; ShardError when it is not one."""
    m = _KEY_RE.match(key)
    if not m:
        raise ShardError(f"not a clip key: {key!r}")
    return m["source"], int(m["index"])


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


# ---------------------------------------------------------------- member safety

def check_member_name(name: str, shard: str = "?") -> tuple[str, str]:
    """Split a tar member name into (key, extension) or raise ShardError for anything unsafe or foreign."""
    if name.startswith("/") or "\\" in name or "/" in name or name in ("", ".", ".."):
        raise ShardError(f"{shard}: unsafe member name {name!r}")
    key, dot, ext = name.partition(".")
    if not dot or ".." in name:
        raise ShardError(f"{shard}: unsafe or extension-less member {name!r}")
    if ext not in ALLOWED_MEMBERS:
        raise ShardError(f"{shard}: member {name!r} has a refused extension {ext!r} (never decoded)")
    return key, ext


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

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, *_):
        self.abort() if exc_type else self.close()


def encode_sample(meta: ClipMeta, mp4: bytes) -> dict[str, bytes]:
    """The members of a raw sample: mp4 bytes, the instruction as txt, the metadata as json."""
    return {"mp4": mp4, "txt": meta.instruction.encode("utf-8"),
            "json": meta.model_dump_json().encode("utf-8")}


# ---------------------------------------------------------------- reader

@dataclass
class Sample:
    """One sample as read from a shard: its key, its shard and its raw members (extension -> bytes)."""

    key: str
    shard: str
    members: dict[str, bytes] = field(default_factory=dict)

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads(self.members["json"].decode("utf-8"))

    @property
    def instruction(self) -> str:
        return self.members.get("txt", b"").decode("utf-8")

    @property
    def mp4(self) -> bytes:
        return self.members["mp4"]

    def clip_meta(self) -> ClipMeta:
        """The json member validated against :class:`ClipMeta` (raises pydantic.ValidationError)."""
        return ClipMeta.model_validate_json(self.members["json"])

    def npy(self, ext: str):
        """A float ``.npy`` member as a numpy array, never unpickled."""
        import numpy as np

        return np.load(io.BytesIO(self.members[ext]), allow_pickle=False)


def list_shards(root: str, subset: str) -> list[str]:
    """The complete shards of a subset (sorted; ``.tmp`` files are never listed)."""
    fs, path = fsspec.core.url_to_fs(root)
    pattern = f"{path.rstrip('/')}/{subset}/*{SHARD_SUFFIX}"
    found = sorted(fs.glob(pattern))
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return [p if proto in ("file", "local") else f"{proto}://{p}" for p in found]


def iter_samples(shard: str, members: Iterable[str] | None = None, strict: bool = True) -> Iterator[Sample]:
    """Stream the samples of one shard (local path or URL) without loading the shard into memory.

    ``members`` limits which extensions are read into memory (others are skipped unread). Unsafe names, links,
    directories and refused extensions raise ShardError when ``strict`` (the default), else are skipped. A
    truncated tar raises ShardError naming the shard."""
    want = set(members) if members is not None else None
    current: Sample | None = None
    seen: set[str] = set()
    try:
        with fsspec.open(shard, "rb") as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
            for ti in tar:
                try:
                    if not ti.isreg():
                        raise ShardError(f"{shard}: member {ti.name!r} is not a regular file")
                    key, ext = check_member_name(ti.name, shard)
                except ShardError:
                    if strict:
                        raise
                    continue
                if current is None or key != current.key:
                    if current is not None:
                        yield current
                    if key in seen:
                        raise ShardError(f"{shard}: members of key {key!r} are not contiguous")
                    seen.add(key)
                    current = Sample(key=key, shard=shard)
                if want is None or ext in want:
                    data = tar.extractfile(ti)
                    current.members[ext] = data.read() if data is not None else b""
    except (tarfile.TarError, EOFError) as e:
        raise ShardError(f"{shard}: broken tar ({e})") from e
    if current is not None:
        yield current


def iter_subset(root: str, subset: str, members: Iterable[str] | None = None) -> Iterator[Sample]:
    """Every sample of a subset, shard by shard in sorted order."""
    for shard in list_shards(root, subset):
        yield from iter_samples(shard, members=members)


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
