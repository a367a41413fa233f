"""THE shard contract (docs/design.md §3): clip keys, sample members, metadata schema, the writer and the safe reader.

Everything that writes or reads Ophora shards goes through this module: the curation job, the inspector, the
trainer and the tests. The shards are plain WebDataset tars, so they also open with ``webdataset``,
``ray.data.read_webdataset`` and ``tarfile``.

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

import hashlib
import io
import os
import re
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import fsspec
from pydantic import BaseModel, ConfigDict, Field

from ophora.bounded_json import JSONRefused
from ophora.bounded_json import loads as bounded_loads

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

# What a reader holds of one member at most: a 49-frame 480x720 clip is a few MB, its json a few KB. A member
# whose header claims more is refused before a byte of it is read (readers take ``max_member_bytes`` to change it).
MAX_MEMBER_BYTES = 256 << 20
MAX_META_BYTES = 1 << 20

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
    """Split a tar member name into (key, extension) or raise ShardError for anything unsafe or foreign (paths,
    dots, control characters, bytes that are not UTF-8)."""
    if name.startswith("/") or "\\" in name or "/" in name or name in ("", ".", ".."):
        raise ShardError(f"{shard}: unsafe member name {ascii(name)}")
    if not name.isprintable():  # lone surrogates (undecodable bytes) are not printable either
        raise ShardError(f"{shard}: member name {ascii(name)} holds control characters or bytes that are not UTF-8")
    key, dot, ext = name.partition(".")
    if not dot or ".." in name:
        raise ShardError(f"{shard}: unsafe or extension-less member {ascii(name)}")
    if ext not in ALLOWED_MEMBERS:
        raise ShardError(f"{shard}: member {ascii(name)} has a refused extension {ascii(ext)} (never decoded)")
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

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, *_):
        self.abort() if exc_type else self.close()


def encode_sample(meta: ClipMeta, mp4: bytes) -> dict[str, bytes]:
    """The members of a raw sample: mp4 bytes, the instruction as txt, the metadata as json."""
    return {"mp4": mp4, "txt": meta.instruction.encode("utf-8"), "json": meta.model_dump_json().encode("utf-8")}


# ---------------------------------------------------------------- reader


@dataclass
class Sample:
    """One sample as read from a shard: its key, its shard and its raw members (extension -> bytes)."""

    key: str
    shard: str
    members: dict[str, bytes] = field(default_factory=dict)

    @property
    def meta(self) -> dict[str, Any]:
        """The json member as a dict; ShardError naming it when it is not UTF-8 JSON, not an object, too large or
        too deeply nested (KeyError when the sample has none)."""
        try:
            return bounded_loads(self.members["json"], f"{self.key}.json", max_bytes=MAX_META_BYTES, want=dict)
        except JSONRefused as e:
            raise ShardError(f"{self.shard}: {e}") from None

    @property
    def instruction(self) -> str:
        """The txt member's text ('' when absent); ShardError when it is not UTF-8."""
        try:
            return self.members.get("txt", b"").decode("utf-8")
        except UnicodeDecodeError as e:
            raise ShardError(f"{self.shard}: {self.key}.txt is not UTF-8 ({e.reason} at byte {e.start})") from None

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


def _local(fs) -> bool:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return "file" in protocols or "local" in protocols


def not_a_shard(path: str) -> str | None:
    """Why a local path named like a shard is no shard file (a link, a FIFO, a device, a folder), else None.
    Readers never open such a path: a FIFO blocks whoever opens it, a link reads some other file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "vanished"
    if stat.S_ISLNK(mode):
        return "a symbolic link (shards are never followed)"
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a folder"
            if stat.S_ISDIR(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a device or other special file"
        )
        return f"{kind}, not a regular file"
    return None


def _named_shards(root: str, subset: str) -> tuple[Any, list[str]]:
    fs, path = fsspec.core.url_to_fs(root)
    return fs, sorted(fs.glob(f"{path.rstrip('/')}/{subset}/*{SHARD_SUFFIX}"))


def list_shards(root: str, subset: str) -> list[str]:
    """The complete shards of a subset (sorted; ``.tmp`` files are never listed, nor anything that is not a
    regular file: see :func:`refused_shards`)."""
    fs, found = _named_shards(root, subset)
    if _local(fs):
        return [p for p in found if not_a_shard(p) is None]
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return [f"{proto}://{p}" for p in found]


def refused_shards(root: str, subset: str) -> list[tuple[str, str]]:
    """(path, why) of the names in a subset that look like shards but are links, FIFOs or other non-files."""
    fs, found = _named_shards(root, subset)
    if not _local(fs):
        return []
    return [(p, why) for p in found if (why := not_a_shard(p)) not in (None, "vanished")]


def open_shard(shard: str) -> tuple[IO[bytes], int]:
    """(binary file, size in bytes) of a shard. A local shard is opened without following a link and without
    blocking, and must be a regular file; ShardError otherwise."""
    fs, path = fsspec.core.url_to_fs(shard)
    if not _local(fs):
        return fs.open(path, "rb"), int(fs.size(path))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ShardError(f"{shard}: cannot open ({not_a_shard(path) or e.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ShardError(f"{shard}: not a regular file")
    return os.fdopen(fd, "rb"), info.st_size


def iter_samples(
    shard: str,
    members: Iterable[str] | None = None,
    strict: bool = True,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    on_refused: Callable[[str], None] | None = None,
) -> Iterator[Sample]:
    """Stream the samples of one shard (local path or URL) without loading the shard into memory.

    ``members`` limits which extensions are read into memory (others are skipped unread). Unsafe names, links,
    directories and refused extensions are reported to ``on_refused`` and skipped when it is given, else raise
    ShardError when ``strict`` (the default), else are skipped. A member whose header claims more bytes than the
    shard has left or than ``max_member_bytes``, and a truncated tar, raise ShardError naming the shard: nothing
    after them can be read."""
    want = set(members) if members is not None else None
    current: Sample | None = None
    seen: set[str] = set()
    fh, size = open_shard(shard)
    try:
        with fh, tarfile.open(fileobj=fh, mode="r|") as tar:
            for ti in tar:
                left = size - ti.offset_data
                if ti.size > left:  # skipping it would read past the end ~size/16 KiB times: a hang
                    raise ShardError(
                        f"{shard}: broken tar (member {_shown(ti.name)} declares {ti.size} bytes, "
                        f"only {max(left, 0)} are left: cut short, or a hostile header)"
                    )
                if ti.size > max_member_bytes:
                    raise ShardError(
                        f"{shard}: member {_shown(ti.name)} declares {ti.size} bytes, over "
                        f"max_member_bytes={max_member_bytes} (nothing after it is read)"
                    )
                try:
                    if not ti.isreg():
                        raise ShardError(f"{shard}: member {_shown(ti.name)} is not a regular file")
                    key, ext = check_member_name(ti.name, shard)
                except ShardError as e:
                    if on_refused is not None:
                        on_refused(str(e))
                    elif strict:
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


def _shown(name: str) -> str:
    """A member name as a message may quote it: undecodable bytes escaped, nothing a terminal would act on."""
    return ascii(name)


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
