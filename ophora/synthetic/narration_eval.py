"""How well a curated OUT's narration and instructions match a synthetic corpus's ground truth.

Reads only what curation stored (the clips' ``.json`` and ``.txt`` through the shard contract, and the ledger) and
the corpus's ``truth/``. Used by the tests, the demo and ``benchmarks/bench_narration.py``:

- **alignment**: a stored word (clip time -> source time) is placed right when the truth line it was spoken in
  overlaps the clip's window (sentence completion may reach past the window, never into a line that does not touch
  it); a word no truth line was spoken at is placed wrong;
- **coverage**: of the words of the truth lines spoken inside a clip's window, the share found in its narration
  (ASR errors count here);
- **instructions**: the share that name their scene's phase action, and the share written by the fallback;
- **PHI**: planted identifying words found in any stored text (narration, words, instruction, ledger), which
  must be none, and clean words scrubbed away;
- **subsets**: every clip's subsets against what the truth expects of its scene.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from ophora.curation.cataract_actions import phase_of
from ophora.dataset.shards import decide_subsets

_TOL = 0.35  # seconds: ASR word times against the truth line's span
_WORD = re.compile(r"[a-z0-9']+")
_FILLERS = {"um", "uh", "er", "hmm", "mm"}


_UNITS = "zero one two three four five six seven eight nine".split()
_TENS = dict(zip("twenty thirty forty fifty sixty seventy eighty ninety".split(), range(2, 10)))
_SPELLINGS = {"ok": ["okay"], "alright": ["all", "right"]}


def words_of(text: str) -> list[str]:
    """Lower-case words of ``text``, disfluencies left out (whisper drops them by design)."""
    return [w for w in _WORD.findall(text.lower()) if w not in _FILLERS]


def normalized_words(text: str) -> list[str]:
    """The words of ``text`` as word error rates are scored (the practice of Whisper's evaluation): numbers as
    digits, one token per digit ("817774", "eight one seven ..." and "8 1 7 ..." agree; "twenty five" is "2 5"),
    one spelling of "okay" and "all right"."""
    words, out, i = words_of(text), [], 0
    while i < len(words):
        w = words[i]
        if w in _TENS:
            unit = words[i + 1] if i + 1 < len(words) and words[i + 1] in _UNITS[1:] else None
            w, i = f"{_TENS[w]}{_UNITS.index(unit) if unit else 0}", i + (unit is not None)
        elif w in _UNITS:
            w = str(_UNITS.index(w))
        out.extend(w if w.isdigit() else _SPELLINGS.get(w, [w]))
        i += 1
    return out


def word_errors(reference: str, hypothesis: str, normalize: bool = True) -> tuple[int, int]:
    """(edits, reference words) between two texts, after :func:`normalized_words` (or only :func:`words_of`):
    the word error rate is their ratio, summed over a corpus."""
    split = normalized_words if normalize else words_of
    ref, hyp = split(reference), split(hypothesis)
    d = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, d[0] = d[:], i
        for j in range(1, len(hyp) + 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (ref[i - 1] != hyp[j - 1]))
    return d[len(hyp)], len(ref)


def _line_at(truth: dict, t: float) -> dict | None:
    for line in truth["narration"]:
        if line["start"] - _TOL <= t <= line["end"] + _TOL:
            return line
    return None


def _scene_of(truth: dict, start: float, end: float) -> dict:
    mid = (start + end) / 2
    return next((s for s in truth["scenes"] if s["start"] <= mid < s["end"]), truth["scenes"][-1])


def clip_records(out: str) -> list[dict[str, Any]]:
    """Every clip of ``out``'s ``tpt/`` subset: its metadata plus ``"text"`` (the ``.txt`` instruction)."""
    from ophora.dataset.shards import iter_subset

    return [{**s.meta, "text": s.instruction} for s in iter_subset(out, "tpt", members=["json", "txt"])]


def evaluate(out: str, corpus_dir: str | Path) -> dict[str, Any]:
    """The numbers above for a curated ``out`` of the synthetic corpus at ``corpus_dir``."""
    from ophora.dataset.ledger import read_ledger
    from ophora.synthetic.corpus import load_truth

    truths = {Path(t["file"]).name: t for t in load_truth(corpus_dir)}
    clips = clip_records(out)
    placed = right = covered = spoken = named = fallback = 0
    subsets_wrong, phi_leaks = [], []
    for c in clips:
        truth = truths[Path(c["source_uri"]).name]
        start, end = c["start"], c["end"]
        for w in c.get("words", []):
            if w["word"].startswith("["):  # a scrubbed span: nothing of the narration's own words
                continue
            line = _line_at(truth, start + (w["start"] + w["end"]) / 2)
            placed += 1
            right += bool(line and line["start"] < end and line["end"] > start)
        stored = Counter(words_of(c.get("narration", "")))
        for line in truth["narration"]:
            if min(end, line["end"]) - max(start, line["start"]) >= 0.5 * (line["end"] - line["start"]):
                want = Counter(words_of(line["text"]))
                spoken += sum(want.values())
                covered += sum((want & stored).values())
        scene = _scene_of(truth, start, end)
        if scene["phase"] and phase_of(c.get("instruction", "")) == scene["phase"]:
            named += 1
        fallback += bool(c.get("refine", {}).get("fallback"))
        expect = ["tpt", "p2ft"][: int(scene["expect_tpt"]) + int(scene["expect_p2ft"])]
        if c["subsets"] != expect or decide_subsets(c.get("p2ft_reasons", []), False) != c["subsets"]:
            subsets_wrong.append((c["key"], scene["kind"], c["subsets"], expect, c.get("p2ft_reasons", [])))
        texts = " ".join(
            [
                c.get("narration", ""),
                c.get("instruction", ""),
                c["text"],
                " ".join(w["word"] for w in c.get("words", [])),
            ]
        )
        phi_leaks += [(c["key"], p) for p in truth["phi_words"] if _contains(texts, p)]
    ledger = read_ledger(out)
    ledger_text = " ".join(str(v) for v in ledger.to_numpy().ravel()) if len(ledger) else ""
    phi_leaks += [("ledger", p) for t in truths.values() for p in t["phi_words"] if _contains(ledger_text, p)]
    n = max(len(clips), 1)
    return {
        "clips": len(clips),
        "alignment_placed_right": round(right / max(placed, 1), 4),
        "words_placed": placed,
        "narration_coverage": round(covered / max(spoken, 1), 4),
        "instructions_naming_phase": round(named / n, 4),
        "instructions_from_fallback": round(fallback / n, 4),
        "phi_leaks": phi_leaks,
        "subsets_wrong": subsets_wrong,
    }


def _contains(text: str, secret: str) -> bool:
    """Whether ``secret`` (a name, a number...) appears in ``text`` as a whole word or number, ignoring case."""
    return re.search(rf"(?<![\w]){re.escape(secret)}(?![\w])", text, re.I) is not None


def instruction_table(out: str, limit: int = 12) -> list[tuple[str, str, str]]:
    """(key, narration, instruction) of up to ``limit`` clips, for a person to read the two side by side."""
    rows = [(c["key"], c.get("narration", ""), c.get("instruction", "")) for c in clip_records(out)]
    return sorted(rows)[:limit]


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True)
