"""Names in the shard contract: source ids, clip keys, member names and extensions, and :class:`ShardError` for
anything that breaks them. Import them from :mod:`ophora.dataset.shards`, the contract's public module."""

from __future__ import annotations

import hashlib
import re
from typing import IO

SHARD_SUFFIX = ".tar"
TMP_SUFFIX = ".tmp"

RAW_MEMBERS = ("mp4", "txt", "json")
LATENT_MEMBERS = ("latents.npy", "prompt_embeds.npy", "txt", "json")
# Members a reader will hand out; anything else (notably .pyd/.pickle) is refused, never decoded.
ALLOWED_MEMBERS = frozenset(RAW_MEMBERS + LATENT_MEMBERS + ("png", "jpg", "webp"))

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
