"""JSON from files other people made (shard metadata, .info.json and .json3 sidecars, gallery sidecars): parsed
with limits on size and nesting, so a hostile document ends in one clear error instead of a RecursionError, a
memory spike or a crash far from where it was read."""

from __future__ import annotations

import json
from typing import Any

MAX_BYTES = 8 << 20  # metadata and sidecars are kilobytes; 8 MiB leaves room for long yt-dlp .info.json files
MAX_DEPTH = 64  # real documents nest a handful of levels; Python's parser recurses once per level


class JSONRefused(ValueError):
    """A document that is not JSON, or breaks the size, nesting or type limits; the message names it."""


def depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads(
    data: bytes | str, name: str, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH, want: type | None = None
) -> Any:
    """Parse ``data`` (UTF-8 bytes or text) as JSON; ``want`` (dict or list) is the type the top level must have.
    Raises JSONRefused naming ``name`` and the problem."""
    if len(data) > max_bytes:
        raise JSONRefused(f"{name}: {len(data)} bytes is more than the {max_bytes} a JSON document may have here")
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        value = json.loads(text)
    except UnicodeDecodeError as e:
        raise JSONRefused(f"{name}: not UTF-8 ({e.reason} at byte {e.start})") from None
    except RecursionError:
        raise JSONRefused(f"{name}: nested deeper than {max_depth} levels") from None
    except ValueError as e:
        raise JSONRefused(f"{name}: not JSON ({e})") from None
    if depth(value) > max_depth:
        raise JSONRefused(f"{name}: nested deeper than {max_depth} levels")
    if want is not None and not isinstance(value, want):
        kind = {dict: "an object", list: "a list"}.get(want, want.__name__)
        raise JSONRefused(f"{name}: not {kind} but {type(value).__name__}")
    return value
