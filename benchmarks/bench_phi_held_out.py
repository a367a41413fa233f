"""The PHI scrubber on lines written by someone who had not read it (benchmarks/phi_held_out.yaml).

    python benchmarks/bench_phi_held_out.py              # leaks and wrongly scrubbed words, each listed
    python benchmarks/bench_phi_held_out.py --json out.json

bench_privacy.py plants Faker identities in templates; those templates and the scrubber were written by the same
team. This set was written by a helper told not to open ophora/: spoken narration as ASR writes it, names from many
cultures and names that are English words, numbers said as words, institutions, OCR of overlays and recorder bars;
and clean surgical lines with eponyms, brands and capitalised settings.

A planted identifier leaks when one of its words (or digit runs) is still in the scrubbed line and nowhere else in the
original line. A clean word is wrongly scrubbed when it is missing from the scrubbed line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HELD_OUT = ROOT / "benchmarks" / "phi_held_out.yaml"
_WORD = re.compile(r"[A-Za-z]{2,}|\d+")


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def leaks(text: str, phi: list[str], scrubbed: str) -> list[str]:
    """The words of ``phi`` still in ``scrubbed`` that the rest of ``text`` does not hold."""
    rest = text
    for p in phi:
        rest = rest.replace(p, " ")
    background, left = set(words(rest)), set(words(scrubbed))
    return [w for p in phi for w in words(p) if w in left and w not in background]


def main(argv: list[str] | None = None) -> int:
    from ophora.curation import phi

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args(argv)
    data = yaml.safe_load(HELD_OUT.read_text(encoding="utf-8"))
    bad = data["identifying"]
    out_bad = phi.scrub_many([x["text"] for x in bad])
    leaked = [(x["text"], s, w) for x, (s, _) in zip(bad, out_bad) if (w := leaks(x["text"], x["phi"], s))]
    planted = sum(len(words(p)) for x in bad for p in x["phi"])
    clean = data["clean"]
    out_clean = phi.scrub_many([x["text"] for x in clean])
    lost = [(x["text"], s, m) for x, (s, _) in zip(clean, out_clean) if (m := set(words(x["text"])) - set(words(s)))]
    clean_words = sum(len(set(words(x["text"]))) for x in clean)
    lost_words = sum(len(m) for _, _, m in lost)
    n_leaked = sum(len(w) for _, _, w in leaked)
    print(f"identifying lines: {len(bad)}, planted words {planted}, leaked {n_leaked} in {len(leaked)} lines")
    for text, s, w in leaked:
        print(f"    leaked {w}: {text!r} -> {s!r}")
    print(f"clean lines: {len(clean)}, words {clean_words}, wrongly scrubbed {lost_words} in {len(lost)} lines")
    for text, s, m in lost:
        print(f"    lost {sorted(m)}: {text!r} -> {s!r}")
    result = {
        "identifying_lines": len(bad),
        "planted_words": planted,
        "leaked_words": n_leaked,
        "lines_with_a_leak": len(leaked),
        "clean_lines": len(clean),
        "clean_words": clean_words,
        "wrongly_scrubbed_words": lost_words,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
