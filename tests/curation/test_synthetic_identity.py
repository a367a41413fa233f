"""The synthetic world's identities come from Faker alone: many locales, deterministic per seed, and nothing that
the generator can draw is written anywhere else in ophora/ (so no detector can know the generator's answers)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ophora.synthetic.identity import LOCALES, _faker, make_identity

OPHORA = Path(__file__).resolve().parents[2] / "ophora"
GENERATOR = {"identity.py"}


def _names(kind: str) -> set[str]:
    """Every first or last name Faker can draw in the generator's locales."""
    out: set[str] = set()
    for locale in LOCALES:
        for provider in _faker(locale).providers:
            for attr in [a for a in dir(provider) if a.startswith(kind) and a.endswith("names")]:
                value = getattr(provider, attr, None)
                if isinstance(value, (dict, list, tuple)):
                    out.update(str(v) for v in value)
    return {n for n in out if len(n) > 2}


def test_identities_span_many_locales_and_repeat_for_a_seed():
    people = [make_identity(np.random.default_rng(s)) for s in range(60)]
    assert len({p.locale for p in people}) >= 8 and len({p.name for p in people}) == 60
    assert [make_identity(np.random.default_rng(s)) for s in range(5)] == people[:5]


def test_no_identity_the_generator_can_draw_is_written_in_ophora_outside_the_generator():
    first, last = _names("first"), _names("last")
    lower_first = {n.lower() for n in first}
    assert len(first) > 1000 and len(last) > 1000
    pair = re.compile(r"(?=\b([A-ZÀ-Þ][\w'’-]+) ([A-ZÀ-Þ][\w'’-]+)\b)")
    for path in sorted(p for p in OPHORA.rglob("*") if p.suffix in (".py", ".yaml", ".txt", ".csv", ".json")):
        if path.name in GENERATOR:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        pairs = [f"{a} {b}" for a, b in pair.findall(text) if a in first and b in last and a != b]
        assert pairs == [], f"{path}: full names the generator draws: {pairs[:5]}"
        # any case: a hand-written list of given names (as the old scrubber had, 249 of them) shows here; a few
        # ordinary words that are also names ("may", "mark", "iris", "else") do not reach the bar
        given = {w.lower() for w in re.findall(r"\b[^\W\d_]{3,}\b", text)} & lower_first
        assert len(given) <= 15, f"{path}: looks like a list of names: {sorted(given)[:20]}"
