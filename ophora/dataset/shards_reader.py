"""The safe shard reader: lists a subset's shards, opens one without following links or blocking, and streams its
samples under member-size limits. Import it from :mod:`ophora.dataset.shards`, the contract's public module."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import fsspec

from ophora.bounded_json import JSONRefused
from ophora.bounded_json import loads as bounded_loads
from ophora.dataset.shards_names import SHARD_SUFFIX, ShardError, check_member_name

if TYPE_CHECKING:
    from ophora.dataset.shards import ClipMeta

# What a reader holds of one member at most: a 49-frame 480x720 clip is a few MB, its json a few KB. A member
# whose header claims more is refused before a byte of it is read (readers take ``max_member_bytes`` to change it).
MAX_MEMBER_BYTES = 256 << 20
MAX_META_BYTES = 1 << 20


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
        from ophora.dataset.shards import ClipMeta

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
