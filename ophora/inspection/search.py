"""``ophora shards grep``: find clips whose instruction or scrubbed narration mentions a text or pattern."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ophora.dataset.shards import ShardError
from ophora.inspection.catalog import clip_facts, iter_all

FIELDS = ("instruction", "narration")


@dataclass
class Match:
    """A clip that matched: its key, the subsets it was found in, which field matched and a snippet around it."""

    key: str
    field: str
    snippet: str
    subsets: list[str] = field(default_factory=list)


def _snippet(text: str, start: int, end: int, width: int = 40) -> str:
    lo, hi = max(0, start - width), min(len(text), end + width)
    head, tail = ("…" if lo else ""), ("…" if hi < len(text) else "")
    return f"{head}{text[lo:start]}[{text[start:end]}]{text[end:hi]}{tail}"


def grep(
    root: str,
    pattern: str,
    regex: bool = False,
    ignore_case: bool = True,
    fields: Iterable[str] = FIELDS,
    subsets: Iterable[str] | None = None,
    limit: int | None = None,
    problems: list[str] | None = None,
) -> list[Match]:
    """Clips whose fields match ``pattern`` (plain text unless ``regex``), one Match per clip, first matching
    field wins. Streams only the txt and json members of each shard. A clip or shard that cannot be read is a line
    in ``problems`` (when given; else ShardError) and the search goes on."""
    fields = tuple(fields)
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"grep searches {FIELDS}, not {sorted(unknown)}")
    rx = re.compile(pattern if regex else re.escape(pattern), re.IGNORECASE if ignore_case else 0)
    found: dict[str, Match] = {}
    for subset, sample in iter_all(root, subsets=subsets, members=("txt", "json"), problems=problems):
        if sample.key in found:
            found[sample.key].subsets.append(subset)
            continue
        if limit is not None and len(found) >= limit:
            continue
        try:
            texts = _texts(sample)
        except ShardError as e:
            if problems is None:
                raise
            problems.append(str(e))
            continue
        for name in fields:
            m = rx.search(texts.get(name, ""))
            if m:
                found[sample.key] = Match(sample.key, name, _snippet(texts[name], m.start(), m.end()), [subset])
                break
    return list(found.values())


def _texts(sample) -> dict[str, str]:
    if "json" not in sample.members:
        return {"instruction": sample.instruction}
    facts = clip_facts(sample)
    return {"instruction": facts.instruction, "narration": facts.narration}
