"""`ophora demo`: the whole chain, offline, on a synthetic corpus — the first thing a new user runs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    train_steps: int = typer.Option(
        1200, "--train-steps", min=1, help="TPT steps of the tiny model (P²FT runs a quarter of them)."
    ),
    sample_steps: int = typer.Option(
        10, "--sample-steps", min=1, help="Denoising steps per sampled video (validation renders at most as many)."
    ),
    fid_size: int = typer.Option(
        299, "--fid-size", min=75, help="Side of the frames the random Inception scores (299: its native input)."
    ),
) -> None:
    """Run the whole chain offline: synthetic corpus -> curate -> stats and gallery -> latents -> tiny TPT with
    validation videos -> tiny P²FT -> sample the 12 cataract-phase prompts with the trained and the untrained
    model -> evaluate both against the curated clips, with a memorisation audit -> a gallery of generated videos.

    Nothing is downloaded: the curation uses the `offline` profile (models that ship in packages) and the model is a
    miniature CogVideoX (random transformer, pass-through VAE) trained here, on CPU, in a few minutes: its videos
    are blurry 64x96 eyes, not a surgeon's view, but they come from what it learnt from the curated clips.
    Example: ophora demo --out demo-out
    """
    from ophora.clip_geometry import TINY
    from ophora.curation.config import CurateConfig
    from ophora.curation.pipeline import run_curation
    from ophora.inspection.gallery import build_gallery, shard_items
    from ophora.inspection.stats import collect_stats, plot_stats, stats_tables
    from ophora.synthetic.corpus import generate_corpus
    from ophora.synthetic.narration_eval import evaluate as evaluate_narration
    from ophora.synthetic.narration_eval import instruction_table

    out = out.resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"cannot create {out}: {e.strerror}")
    corpus, curated = out / "corpus", out / "curated"
    timings: dict[str, float] = {}

    _step(
        "synth",
        1,
        timings,
        lambda: generate_corpus(corpus, videos=videos, seed=seed, minutes=minutes, max_height=480, progress=True),
    )

    def curate() -> dict[str, Any]:
        # the clips are cut at the tiny model's geometry (6 s windows, as the paper's): training reads it from them
        tiny_clips = {
            "windows.num_frames": TINY.num_frames,
            "windows.fps": TINY.fps,
            "clip.height": TINY.height,
            "clip.width": TINY.width,
        }
        summary = run_curation(
            CurateConfig.load("offline", overrides=tiny_clips), [str(corpus / "videos")], str(curated)
        )
        if not summary.get("clips_written"):
            fail(f"curation wrote no clips; see {curated / 'summary.json'}", code=1)
        return summary

    curation = _step("curate", 2, timings, curate)

    def inspect() -> Path:
        stats = collect_stats(str(curated))
        from rich.console import Console

        for table in stats_tables(stats):
            Console().print(table)
        print_table(
            "What the surgeon said -> the instruction written (PHI scrubbed)",
            [(n[:110], i) for _, n, i in instruction_table(str(curated), limit=10)],
            ("narration", "instruction"),
        )
        plot_stats(stats, out / "plots")
        build_gallery(shard_items(str(curated)), out / "gallery-curated", title="Ophora demo — curated clips")
        return out / "gallery-curated" / "index.html"

    curated_gallery = _step("inspect", 3, timings, inspect)
    _show_scrubbing(seed)
    narration = evaluate_narration(str(curated), corpus)
    print_table(
        "Curation against the corpus's ground truth",
        [
            ("narration words placed in the right clip", f"{narration['alignment_placed_right']:.1%}"),
            ("instructions naming their phase's action", f"{narration['instructions_naming_phase']:.1%}"),
            ("instructions from the rule-based fallback", f"{narration['instructions_from_fallback']:.1%}"),
            ("planted identifying words stored", len(narration["phi_leaks"])),
            ("clips in a subset the truth does not expect", len(narration["subsets_wrong"])),
        ],
        ("what", "measured"),
    )

    trained = _step("train", 4, timings, lambda: _train(out, curated, seed, train_steps, sample_steps))
    sampled = _step("sample", 5, timings, lambda: _sample(out, trained, seed, sample_steps))
    evaluation = _step("evaluate", 6, timings, lambda: _evaluate(out, curated, sampled, fid_size))
    _show_results(evaluation, trained)

    summary = {
        "out": str(out),
        "seconds": timings,
        "curation": curation,
        "against_truth": narration,
        "training": trained,
        "sampling": sampled["trained"],
        "sampling_untrained": sampled["untrained"],
        "evaluation": evaluation["trained"],
        "evaluation_untrained": evaluation["untrained"],
        "fid_against_curated": evaluation["fid"],
        "memorisation": evaluation["trained"]["memorisation"],
        "curated_gallery": str(curated_gallery),
        "samples_gallery": evaluation["gallery"],
    }
    (out / "demo-summary.json").write_text(json.dumps(summary, indent=2, default=str))
    console.rule("[bold green]demo done")
    print_table(
        "Where to look",
        [
            ("curated clips (gallery)", curated_gallery),
            ("curation summary", curated / "summary.json"),
            ("dataset plots", out / "plots"),
            ("training runs (tensorboard --logdir)", out / "runs"),
            ("validation videos during training", trained["tpt"]["validation_dir"]),
            ("generated phase videos (gallery, FIDs on top)", evaluation["gallery"]),
            ("evaluation", out / "evaluation" / "evaluation.json"),
            ("everything, for programs", out / "demo-summary.json"),
        ],
        ("what", "where"),
    )
    console.print(f"total {sum(timings.values()):.0f} s: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))


def _train(out: Path, curated: Path, seed: int, steps: int, sample_steps: int) -> dict[str, Any]:
    """The tiny model, the curated clips' latents (encoded once), TPT with validation videos, then P²FT."""
    from ophora.training.config import load_config
    from ophora.training.models import make_tiny_model
    from ophora.training.precompute import precompute_latents
    from ophora.training.trainer import run_progressive

    model = make_tiny_model(out / "tiny-model", seed=seed)
    validation_steps = min(sample_steps, load_config("demo").validation.steps)
    tpt = load_config(
        "demo",
        {
            "model": str(model),
            "max_steps": steps,
            "seed": seed,
            "checkpoint_every": steps,
            "validation.every": max(1, steps // 2),
            "validation.steps": validation_steps,
        },
    )
    p2ft = tpt.model_copy(
        update={
            "max_steps": max(1, steps // 4),
            "checkpoint_every": max(1, steps // 4),
            "optim": tpt.optim.model_copy(update={"lr": tpt.optim.lr / 2}),
        }
    )
    precompute_latents(tpt, curated, out / "latents")
    trained = run_progressive(tpt, p2ft, out / "latents", out / "runs")
    return {**trained, "untrained_model": str(model)}


def _sample(out: Path, trained: dict[str, Any], seed: int, steps: int) -> dict[str, Any]:
    """The 12 cataract-phase prompts rendered by the trained model and, to compare, by the untrained one."""
    from ophora.clip_geometry import TINY
    from ophora.inference.sample import sample_videos
    from ophora.training.config import load_config

    demo = load_config("demo").validation
    common = dict(
        seed=seed,
        steps=steps,
        frames=TINY.num_frames,
        height=TINY.height,
        width=TINY.width,
        fps=TINY.fps,
        guidance=demo.guidance,
        scheduler=demo.scheduler,
        dynamic_cfg=False,
        max_sequence_length=load_config("demo").data.max_text_tokens,
        progress=True,
    )
    return {
        "trained": sample_videos(trained["p2ft"]["export"], "cataract-phases", out / "samples", **common),
        "untrained": sample_videos(
            trained["untrained_model"], "cataract-phases", out / "samples-untrained", gallery=False, **common
        ),
    }


def _evaluate(out: Path, curated: Path, sampled: dict[str, Any], fid_size: int = 299) -> dict[str, Any]:
    """FID of both sample sets against the curated clips, with the same seeded random Inception for both at
    ``fid_size`` px (its native 299 by default; the two FIDs compare with each other, not with published ones),
    and the memorisation audit of the trained model's videos. FVD and CLIPScore are left out: a random S3D or
    CLIP says nothing."""
    from ophora.inference.evaluate import evaluate
    from ophora.inference.features import load_feature_net
    from ophora.inference.sample import write_gallery

    settings = dict(
        fid_net=load_feature_net("random-inception", "image", size=fid_size),
        fvd_net=None,
        clip_model=None,
        frames_per_video=4,
        reference_cache={},
    )  # the curated clips are scored once for both
    trained = evaluate(out / "samples" / "videos", curated, out / "evaluation", **settings)
    untrained = evaluate(
        out / "samples-untrained" / "videos", curated, out / "evaluation-untrained", audit_k=None, **settings
    )
    fid = {"untrained": untrained["overall"].get("fid"), "trained": trained["overall"].get("fid")}
    title = (
        f"Ophora demo — phase videos of the tiny model after training: FID against the curated clips "
        f"{fid['trained']:.0f}, untrained {fid['untrained']:.0f} (random Inception: not comparable to "
        f"published FIDs)"
    )
    return {
        "trained": trained,
        "untrained": untrained,
        "fid": fid,
        "gallery": write_gallery(out / "samples", title=title),
    }


def _show_results(evaluation: dict[str, Any], trained: dict[str, Any]) -> None:
    from ophora.inference.memorisation import summary_table

    fmt = lambda v: "n/a" if v is None else f"{v:.4g}"  # noqa: E731
    rows = [
        (name, fmt(r["overall"].get("fid")), r["generated"]["videos"], r["reference"]["videos"])
        for name, r in (("untrained tiny model", evaluation["untrained"]), ("after TPT + P²FT", evaluation["trained"]))
    ]
    print_table(
        "Generated phase videos against the curated clips (random Inception: compare the rows with each "
        "other, not with published FIDs)",
        rows,
        ("model", "FID", "videos", "curated clips"),
    )
    console.print(
        f"validation videos rendered during training: {trained['tpt']['validation_dir']} and "
        f"{trained['p2ft']['validation_dir']} (TensorBoard shows them as frame grids)"
    )
    audit = evaluation["trained"].get("memorisation")
    if audit and audit.get("nearest"):
        print_table(*summary_table(audit))


def _show_scrubbing(seed: int) -> None:
    """A narration line naming people no rule lists (Faker draws them now, in a random locale), before and after
    the PHI scrubber: the clear text is printed here only, never stored."""
    import numpy as np

    from ophora.curation import phi
    from ophora.synthetic.identity import make_identity

    who = make_identity(np.random.default_rng([seed, 2024]))
    said = [
        f"{who.surgeon.name} will take over the closing.",
        f"Thanks to {who.referrer.name} for the referral.",
        f"{who.name} was born on {who.dob_spoken}, record number {who.mrn_spoken}.",
    ]
    print_table(
        f"PHI scrubbing of names no rule lists (Faker, {who.locale}; {phi.engine().id})",
        [(line, stored) for line, (stored, _) in zip(said, phi.scrub_many(said))],
        ("said", "stored"),
    )
