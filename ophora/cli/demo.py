"""`ophora demo`: the whole chain, offline, on a synthetic corpus — the first thing a new user runs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import typer

from ophora.cli.common import console, fail, print_table

STEPS = ("synth", "curate", "inspect", "train", "sample", "evaluate")


def _step(name: str, index: int, timings: dict[str, float], fn: Callable[[], Any]) -> Any:
    console.rule(f"[bold]{index}/{len(STEPS)} {name}")
    t0 = time.perf_counter()
    result = fn()
    timings[name] = round(time.perf_counter() - t0, 1)
    console.print(f"[dim]{name}: {timings[name]} s[/]")
    return result


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for everything the demo makes."),
    videos: int = typer.Option(4, "--videos", min=1, help="Synthetic videos to generate."),
    minutes: float = typer.Option(0.75, "--minutes", min=0.2, help="Length of each synthetic video, in minutes."),
    seed: int = typer.Option(0, "--seed", help="Seed of the corpus, the model and the samples."),
    train_steps: int = typer.Option(30, "--train-steps", min=1, help="Steps of each tiny training stage."),
    sample_steps: int = typer.Option(8, "--sample-steps", min=1, help="Denoising steps per sampled video."),
) -> None:
    """Run the whole chain offline: synthetic corpus -> curate -> stats and gallery -> tiny TPT -> tiny P²FT ->
    sample the 12 cataract-phase prompts -> evaluate -> one gallery page of generated videos.

    Nothing is downloaded: the curation uses the `offline` profile (models that ship in packages) and the model is a
    randomly initialised miniature CogVideoX, so the videos show the plumbing, not a trained surgeon.
    Example: ophora demo --out demo-out
    """
    from ophora.curation.config import CurateConfig
    from ophora.curation.narration_eval import evaluate as evaluate_narration
    from ophora.curation.narration_eval import instruction_table
    from ophora.curation.pipeline import run_curation
    from ophora.curation.synthetic import generate_corpus
    from ophora.inference.evaluate import evaluate
    from ophora.inference.sample import sample_videos
    from ophora.inspection.gallery import build_gallery, shard_items
    from ophora.inspection.stats import collect_stats, plot_stats, stats_tables
    from ophora.training.config import load_config
    from ophora.training.models import make_tiny_model
    from ophora.training.trainer import run_progressive

    out = out.resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"cannot create {out}: {e.strerror}")
    corpus, curated, runs, samples = out / "corpus", out / "curated", out / "runs", out / "samples"
    timings: dict[str, float] = {}

    _step("synth", 1, timings, lambda: generate_corpus(corpus, videos=videos, seed=seed, minutes=minutes,
                                                      max_height=480, progress=True))

    def curate() -> dict[str, Any]:
        summary = run_curation(CurateConfig.load("offline"), [str(corpus / "videos")], str(curated))
        if not summary.get("clips_written"):
            fail(f"curation wrote no clips; see {curated / 'summary.json'}", code=1)
        return summary

    curation = _step("curate", 2, timings, curate)

    def inspect() -> Path:
        stats = collect_stats(str(curated))
        from rich.console import Console

        for table in stats_tables(stats):
            Console().print(table)
        print_table("What the surgeon said -> the instruction written (PHI scrubbed)",
                    [(n[:110], i) for _, n, i in instruction_table(str(curated), limit=10)],
                    ("narration", "instruction"))
        plot_stats(stats, out / "plots")
        build_gallery(shard_items(str(curated)), out / "gallery-curated", title="Ophora demo — curated clips")
        return out / "gallery-curated" / "index.html"

    curated_gallery = _step("inspect", 3, timings, inspect)
    _show_scrubbing(seed)
    narration = evaluate_narration(str(curated), corpus)
    print_table("Curation against the corpus's ground truth", [
        ("narration words placed in the right clip", f"{narration['alignment_placed_right']:.1%}"),
        ("instructions naming their phase's action", f"{narration['instructions_naming_phase']:.1%}"),
        ("instructions from the rule-based fallback", f"{narration['instructions_from_fallback']:.1%}"),
        ("planted identifying words stored", len(narration["phi_leaks"])),
        ("clips in a subset the truth does not expect", len(narration["subsets_wrong"]))], ("what", "measured"))

    def train() -> dict[str, Any]:
        model = make_tiny_model(out / "tiny-model", seed=seed)
        common = {"model": str(model), "max_steps": train_steps, "checkpoint_every": max(1, train_steps // 2)}
        tpt = load_config("tiny", common)
        p2ft = load_config("tiny", {**common, "optim.lr": tpt.optim.lr / 2})
        return run_progressive(tpt, p2ft, curated, runs)

    trained = _step("train", 4, timings, train)
    tiny = load_config("tiny").data

    sampled = _step("sample", 5, timings, lambda: sample_videos(
        trained["p2ft"]["export"], "cataract-phases", samples, seed=seed, steps=sample_steps,
        frames=tiny.num_frames, height=tiny.height, width=tiny.width, fps=tiny.fps, progress=True))
    # Random feature nets at small input sizes: the demo shows the plumbing; real FID/FVD need real weights.
    evaluation = _step("evaluate", 6, timings, lambda: evaluate(
        samples / "videos", curated, out / "evaluation", frames_per_video=4, fvd_frames=tiny.num_frames,
        fid_size=96, fvd_size=64))

    summary = {"out": str(out), "seconds": timings, "curation": curation, "against_truth": narration,
               "training": trained,
               "sampling": sampled,
               "evaluation": evaluation, "curated_gallery": str(curated_gallery),
               "samples_gallery": sampled.get("gallery")}
    (out / "demo-summary.json").write_text(json.dumps(summary, indent=2, default=str))
    console.rule("[bold green]demo done")
    print_table("Where to look", [
        ("curated clips (gallery)", curated_gallery),
        ("curation summary", curated / "summary.json"),
        ("dataset plots", out / "plots"),
        ("training runs (TensorBoard)", runs),
        ("generated phase videos (gallery)", sampled.get("gallery")),
        ("evaluation", out / "evaluation" / "evaluation.json"),
        ("everything, for programs", out / "demo-summary.json"),
    ], ("what", "where"))
    console.print(f"total {sum(timings.values()):.0f} s: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))


def _show_scrubbing(seed: int) -> None:
    """A narration line naming people no rule lists (Faker draws them now, in a random locale), before and after
    the PHI scrubber: the clear text is printed here only, never stored."""
    import numpy as np

    from ophora.curation import phi
    from ophora.curation.synthetic_identity import make_identity

    who = make_identity(np.random.default_rng([seed, 2024]))
    said = [f"{who.surgeon.name} will take over the closing.", f"Thanks to {who.referrer.name} for the referral.",
            f"{who.name} was born on {who.dob_spoken}, record number {who.mrn_spoken}."]
    print_table(f"PHI scrubbing of names no rule lists (Faker, {who.locale}; {phi.engine().id})",
                [(line, stored) for line, (stored, _) in zip(said, phi.scrub_many(said))], ("said", "stored"))
