"""`ophora sample`: render videos from instructions with a (fine-tuned) CogVideoX."""

from __future__ import annotations

from typing import Optional

import typer

from ophora.cli.common import console, fail, job_config, print_table
from ophora.clip_geometry import COGVIDEOX


def sample(
    model: Optional[str] = typer.Option(None, "--model", help="Diffusers CogVideoX folder (or hub id when online)."),
    out: Optional[str] = typer.Option(
        None,
        "--out",
        help="Folder or URL (s3://, gs://; staged locally, published "
        "at the end) for videos/, manifest.jsonl, summary.json, "
        "gallery/.",
    ),
    prompts: Optional[str] = typer.Option(
        None, "--prompts", help="Prompt file (.csv/.tsv, .jsonl, .txt) or 'cataract-phases'."
    ),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="One instruction (instead of --prompts)."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="A YAML sample config (flags win over it)."),
    sets: Optional[list[str]] = typer.Option(
        None, "--set", help="Override one field, e.g. --set steps=30 (repeatable; wins over flags and --config)."
    ),
    print_config: bool = typer.Option(False, "--print-config", help="Print the effective config and exit."),
    lora: Optional[str] = typer.Option(None, "--lora", help="LoRA folder (or an ophora LoRA export)."),
    lora_scale: Optional[float] = typer.Option(None, "--lora-scale", help="Strength of the LoRA [1.0]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Base seed; video j of prompt i gets seed + i*N + j [0]."),
    num_videos_per_prompt: Optional[int] = typer.Option(
        None, "--num-videos-per-prompt", min=1, help="Videos per prompt (N) [1]."
    ),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Denoising steps [50]."),
    frames: Optional[int] = typer.Option(
        None, "--frames", min=1, help=f"Frames per video (4k+1) [{COGVIDEOX.num_frames}]."
    ),
    height: Optional[int] = typer.Option(
        None, "--height", min=16, help=f"Video height in pixels [{COGVIDEOX.height}]."
    ),
    width: Optional[int] = typer.Option(None, "--width", min=16, help=f"Video width in pixels [{COGVIDEOX.width}]."),
    fps: Optional[float] = typer.Option(
        None, "--fps", min=0.1, help=f"Frame rate of the written mp4 [{COGVIDEOX.fps:g}]."
    ),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Classifier-free guidance scale [6]."),
    dynamic_cfg: Optional[bool] = typer.Option(
        None, "--dynamic-cfg/--no-dynamic-cfg", help="Dynamic CFG schedule [on]."
    ),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="dpm (the paper's) or ddim; trailing spacing."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto (bf16 on GPU, fp32 on CPU), fp32, bf16, fp16."),
    vae_slicing: Optional[bool] = typer.Option(
        None, "--vae-slicing/--no-vae-slicing", help="Decode one video at a time [on]."
    ),
    vae_tiling: Optional[bool] = typer.Option(None, "--vae-tiling", help="Decode in spatial tiles (less memory)."),
    cpu_offload: Optional[str] = typer.Option(None, "--cpu-offload", help="none, model or sequential."),
    compile: Optional[bool] = typer.Option(None, "--compile", help="torch.compile the transformer."),
    use_ray: Optional[bool] = typer.Option(
        None, "--ray", help="Spread videos over a Ray actor pool (one actor per GPU)."
    ),
    num_workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Actors with --ray (default: GPUs)."),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="CSV/JSONL field with the prompt id [id]."),
    prompt_column: Optional[str] = typer.Option(
        None, "--prompt-column", help="CSV/JSONL field with the text [prompt]."
    ),
    phase_column: Optional[str] = typer.Option(None, "--phase-column", help="CSV/JSONL field with the phase [phase]."),
    gallery: Optional[bool] = typer.Option(None, "--gallery/--no-gallery", help="Write the HTML gallery [on]."),
) -> None:
    """Render videos from surgical instructions.

    Example: ophora sample --model cogvideox-p2ft --prompts cataract-phases --out samples --seed 42
    """
    from ophora.inference.config import SampleConfig
    from ophora.inference.pipeline import GeometryError
    from ophora.inference.prompts import PromptError, read_prompts
    from ophora.inference.sample import sample_videos
    from ophora.storage import relocate, staged

    flags = {k: v for k, v in locals().items() if k in SampleConfig.model_fields}
    cfg = job_config(SampleConfig, config, flags, sets, "sample", print_config)
    if cfg is None:
        return
    if not cfg.model or not out:
        fail("give --model (or model: in --config) and --out")
    if (prompts is None) == (prompt is None):
        fail("give exactly one of --prompts FILE or --prompt TEXT")
    try:
        chosen = (
            [prompt]
            if prompt is not None
            else read_prompts(prompts, cfg.id_column, cfg.prompt_column, cfg.phase_column)
        )
        with staged(out) as local:
            summary = relocate(sample_videos(cfg.model, chosen, local, progress=True, **cfg.run_kwargs()), local, out)
    except (PromptError, GeometryError, FileNotFoundError, ValueError, OSError) as e:
        fail(str(e))
    print_table(
        "ophora sample",
        [
            ("prompts", summary["prompts"]),
            ("videos", summary["videos"]),
            ("refused prompts", summary["refused"]),
            ("failed videos", summary["failed"]),
            ("seconds per video", summary["seconds_per_video"]),
            ("seconds total", summary["seconds_total"]),
        ],
        ("", "value"),
    )
    for problem in summary["problems"]:
        console.print(f"[yellow]{problem}[/]")
    console.print(f"manifest: {summary['manifest']}")
    if summary.get("gallery"):
        console.print(f"gallery: {summary['gallery']}")
    if summary["failed"] or summary["videos"] == 0:
        raise typer.Exit(1)
