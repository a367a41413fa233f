"""The whole `ophora curate` chain on a synthetic corpus, scored against its ground truth: narration words placed
in the right clip, narration coverage, instructions naming their phase, fallback share, planted identifying words
stored (must be 0) and clips in a subset the truth does not expect (must be 0), plus the run's wall time.

    python benchmarks/bench_narration.py --corpus runs/bench-narration-corpus --set refine.backend=extractive
    python benchmarks/bench_narration.py --set windows.num_frames=33      # shorter clips: more scenes hold one

Sidecar subtitles are ignored (``transcribe.use_sidecars=false``) so every video goes through faster-whisper.
Prints a table and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="runs/bench-narration-corpus")
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", default="runs/bench-narration-out")
    ap.add_argument("--profile", default="offline")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override (repeatable)")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from ophora.curation.config import CurateConfig, parse_override
    from ophora.curation.pipeline import run_curation
    from ophora.synthetic.corpus import generate_corpus
    from ophora.synthetic.narration_eval import evaluate

    corpus = Path(args.corpus)
    if not (corpus / "corpus.json").exists():
        generate_corpus(corpus, videos=args.videos, seed=args.seed, minutes=args.minutes, max_height=480)
    overrides = {"transcribe.use_sidecars": False, **dict(parse_override(o) for o in args.sets)}
    config = CurateConfig.load(args.profile, overrides=overrides)
    shutil.rmtree(args.out, ignore_errors=True)
    summary = run_curation(config, [str(corpus / "videos")], args.out, quiet=True)
    report = evaluate(args.out, corpus)
    windows_refined = summary["clips_written"] + sum(
        n for k, n in summary["drops"].items() if k.startswith(("refine", "dedup"))
    )
    result = {
        "profile": args.profile,
        "overrides": overrides,
        "refine_backend": config.refine.backend,
        "source_seconds": summary["source_seconds"],
        "wall_seconds": summary["wall_seconds"],
        "clips": summary["clips_written"],
        "clips_by_subset": summary["clips_by_subset"],
        "windows_refined": windows_refined,
        **{k: v for k, v in report.items() if k not in ("phi_leaks", "subsets_wrong", "clips")},
        "phi_leaks": len(report["phi_leaks"]),
        "subsets_wrong": len(report["subsets_wrong"]),
        "phi_scrubbed": summary["phi_scrubbed"],
        "drops": summary["drops"],
    }
    table = Table(title="ophora curate against the corpus's ground truth")
    table.add_column("measure")
    table.add_column("value")
    for k, v in result.items():
        table.add_row(k, json.dumps(v) if isinstance(v, (dict, list)) else str(v))
    Console().print(table)
    target = Path(args.json or Path(args.out) / "bench_narration.json")
    target.write_text(json.dumps({**result, "details": report}, indent=2, default=str) + "\n")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
