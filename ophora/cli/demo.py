"""`ophora demo`: the whole chain, offline, on a synthetic corpus — the first thing a new user runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from ophora.cli.common import console


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for everything the demo makes."),
    videos: int = typer.Option(4, "--videos", min=1, help="Synthetic videos to generate."),
    minutes: float = typer.Option(0.75, "--minutes", min=0.1, help="Length of each synthetic video."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic corpus."),
) -> None:
    """Run the offline demo: make a synthetic narrated-surgery corpus and show what is in it.

    Nothing is downloaded. Example: ophora demo --out demo-out
    """
    from ophora.curation.synthetic import generate_corpus

    out.mkdir(parents=True, exist_ok=True)
    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    console.rule("[bold]1/1 synthetic corpus")
    manifest = generate_corpus(out / "corpus", videos=videos, seed=seed, minutes=minutes, max_height=480,
                               progress=True)
    steps["synth"] = time.perf_counter() - t0
    summary = {"out": str(out), "steps_seconds": steps, "corpus": str(out / "corpus" / "corpus.json"),
               "videos": len(manifest.get("videos", []))}
    (out / "demo-summary.json").write_text(json.dumps(summary, indent=2))
    console.rule("[bold green]demo done")
    console.print(f"corpus: {out / 'corpus'}  (ground truth in {out / 'corpus' / 'truth'})")
    console.print(f"summary: {out / 'demo-summary.json'}")
