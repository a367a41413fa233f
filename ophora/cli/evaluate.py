"""`ophora evaluate`: FID, FVD and CLIPScore of generated videos against reference clips, per phase."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ophora.cli.common import console, fail, job_config, print_table


def _kwargs(text: Optional[str], flag: str) -> dict | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        fail(f"{flag}: not JSON ({e.msg})")
    if not isinstance(value, dict):
        fail(f"{flag}: must be a JSON object")
    return value


def evaluate(
    generated: Path = typer.Argument(..., help="Folder of generated mp4 (+ json sidecars), e.g. SAMPLES/videos."),
    reference: str = typer.Option(..., "--reference", help="Curation output root, a .tar shard, or mp4 folder."),
    out: Path = typer.Option(Path("evaluation"), "--out", help="Folder for evaluation.json and evaluation.png."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="A YAML evaluate config (flags win over it)."),
    sets: Optional[list[str]] = typer.Option(
        None, "--set", help="Override one field, e.g. --set fvd_frames=8 (repeatable; wins over flags and --config)."
    ),
    print_config: bool = typer.Option(False, "--print-config", help="Print the effective config and exit."),
    subset: Optional[str] = typer.Option(None, "--subset", help="Reference subset (default tpt)."),
    max_reference: Optional[int] = typer.Option(None, "--max-reference", min=2, help="Reference clips to use."),
    fid_net: Optional[str] = typer.Option(
        None, "--fid-net", help="TorchScript / inception_v3 state dict path, random-inception (default), or none."
    ),
    fvd_net: Optional[str] = typer.Option(
        None, "--fvd-net", help="TorchScript I3D / s3d state dict path, random-i3d (default), or none."
    ),
    fid_size: Optional[int] = typer.Option(None, "--fid-size", help="FID input side (default 299)."),
    fvd_size: Optional[int] = typer.Option(None, "--fvd-size", help="FVD input side (default 224)."),
    fid_range: Optional[str] = typer.Option(None, "--fid-range", help="imagenet, 0-1, -1-1 or 0-255."),
    fvd_range: Optional[str] = typer.Option(None, "--fvd-range", help="imagenet, 0-1, -1-1 or 0-255."),
    fid_kwargs: Optional[str] = typer.Option(None, "--fid-call-kwargs", help='JSON, e.g. {"return_features": true}'),
    fvd_kwargs: Optional[str] = typer.Option(None, "--fvd-call-kwargs", help="JSON keyword arguments for the net."),
    clip_model: Optional[str] = typer.Option(
        None, "--clip-model", help="open_clip architecture (default ViT-B-32), or none."
    ),
    clip_pretrained: Optional[str] = typer.Option(
        None, "--clip-pretrained", help="CLIP weights file (default: random init, seeded)."
    ),
    frames_per_video: Optional[int] = typer.Option(
        None, "--frames-per-video", min=1, help="Frames per video for FID/CLIP [8]."
    ),
    fvd_frames: Optional[int] = typer.Option(None, "--fvd-frames", min=1, help="Frames per clip for FVD [16]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of randomly initialised networks [0]."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu (default) or cuda."),
    audit_k: Optional[int] = typer.Option(
        None, "--audit-k", min=0, help="Memorisation audit: nearest training clips per video [5] (0: no audit)."
    ),
    audit_threshold: Optional[float] = typer.Option(
        None,
        "--audit-threshold",
        help="Flag frames at most this feature distance from a "
        "training frame (default: calibrated on the training "
        "clips).",
    ),
) -> None:
    """Score generated videos against reference clips: frame FID, FVD and CLIPScore, overall and per phase.

    Only known published detector weights (checked by SHA-256) give figures comparable to published ones;
    anything else, the default random networks included, is labelled "not comparable" everywhere. With the
    training clips as reference, a memorisation audit lists each video's nearest training clips.
    Example: ophora evaluate samples/videos --reference curated/
    """
    from ophora.inference.config import EvaluateConfig
    from ophora.inference.evaluate import evaluate as run_evaluation
    from ophora.inference.features import FeatureNetError

    fid_call_kwargs = _kwargs(fid_kwargs, "--fid-call-kwargs")
    fvd_call_kwargs = _kwargs(fvd_kwargs, "--fvd-call-kwargs")
    flags = {k: v for k, v in locals().items() if k in EvaluateConfig.model_fields}
    cfg = job_config(EvaluateConfig, config, flags, sets, "evaluate", print_config)
    if cfg is None:
        return
    try:
        results = run_evaluation(generated, reference, out, progress=True, **cfg.run_kwargs())
    except (FeatureNetError, FileNotFoundError, ValueError, OSError) as e:
        fail(str(e))
    fmt = lambda v: "n/a" if v is None else f"{v:.4g}"  # noqa: E731
    rows = [
        (
            "overall",
            results["overall"]["generated"],
            results["overall"]["reference"],
            *(fmt(results["overall"].get(m)) for m in ("fid", "fvd", "clip_score")),
        )
    ]
    rows += [
        (phase, r["generated"], r["reference"], *(fmt(r.get(m)) for m in ("fid", "fvd", "clip_score")))
        for phase, r in results["per_phase"].items()
    ]
    head = [
        f"{name} ({results['labels'].get(key, 'not computed')})"
        for name, key in (("FID", "fid"), ("FVD", "fvd"), ("CLIPScore", "clip_score"))
    ]
    print_table("ophora evaluate", rows, ("phase", "generated", "reference", *head))
    if not results["comparable_to_published"]:
        console.print(
            "[yellow]figures marked 'not comparable' come from networks that are not the published "
            "detectors (random or unknown weights): compare them only with each other[/]"
        )
    audit = results.get("memorisation")
    if audit and audit.get("nearest"):
        from ophora.inference.memorisation import summary_table

        print_table(*summary_table(audit))
    for problem in results["generated"]["problems"] + results["reference"]["problems"]:
        console.print(f"[yellow]{problem}[/]")
    console.print(f"results: {out / 'evaluation.json'}")
    if results["generated"]["videos"] == 0 or results["reference"]["videos"] == 0:
        raise typer.Exit(1)
