"""`ophora sample`: render videos from instructions with a (fine-tuned) CogVideoX."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ophora.clip_geometry import COGVIDEOX
from ophora.cli.common import console, fail, print_table


def sample(
    model: str = typer.Option(..., "--model", help="Diffusers CogVideoX folder (or hub id when online)."),
    out: str = typer.Option(..., "--out", help="Folder or URL (s3://, gs://; staged locally, published at the "
                                               "end) for videos/, manifest.jsonl, summary.json, gallery/."),
    prompts: Optional[str] = typer.Option(None, "--prompts",
                                          help="Prompt file (.csv/.tsv, .jsonl, .txt) or 'cataract-phases'."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="One instruction (instead of --prompts)."),
    lora: Optional[Path] = typer.Option(None, "--lora", help="LoRA folder (or an ophora LoRA export)."),
    lora_scale: float = typer.Option(1.0, "--lora-scale", help="Strength of the LoRA."),
    seed: int = typer.Option(0, "--seed", help="Base seed; video j of prompt i gets seed + i*N + j."),
    num_videos: int = typer.Option(1, "--num-videos-per-prompt", min=1, help="Videos per prompt (N)."),
    steps: int = typer.Option(50, "--steps", min=1, help="Denoising steps."),
    frames: int = typer.Option(COGVIDEOX.num_frames, "--frames", min=1, help="Frames per video (4k+1)."),
    height: int = typer.Option(COGVIDEOX.height, "--height", min=16, help="Video height in pixels."),
    width: int = typer.Option(COGVIDEOX.width, "--width", min=16, help="Video width in pixels."),
    fps: float = typer.Option(COGVIDEOX.fps, "--fps", min=0.1, help="Frame rate of the written mp4."),
    guidance: float = typer.Option(6.0, "--guidance", help="Classifier-free guidance scale."),
    dynamic_cfg: bool = typer.Option(True, "--dynamic-cfg/--no-dynamic-cfg", help="Dynamic CFG schedule."),
    scheduler: str = typer.Option("dpm", "--scheduler", help="dpm (the paper's) or ddim; trailing spacing."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 on GPU, fp32 on CPU), fp32, bf16, fp16."),
    vae_slicing: bool = typer.Option(True, "--vae-slicing/--no-vae-slicing", help="Decode one video at a time."),
    vae_tiling: bool = typer.Option(False, "--vae-tiling", help="Decode in spatial tiles (less memory)."),
    cpu_offload: str = typer.Option("none", "--cpu-offload", help="none, model or sequential."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the transformer."),
    ray: bool = typer.Option(False, "--ray", help="Spread videos over a Ray actor pool (one actor per GPU)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Actors with --ray (default: GPUs)."),
    id_column: str = typer.Option("id", "--id-column", help="CSV/JSONL field with the prompt id."),
    prompt_column: str = typer.Option("prompt", "--prompt-column", help="CSV/JSONL field with the text."),
    phase_column: str = typer.Option("phase", "--phase-column", help="CSV/JSONL field with the phase."),
    gallery: bool = typer.Option(True, "--gallery/--no-gallery", help="Write the HTML gallery."),
) -> None:
    """Render videos from surgical instructions.

    Example: ophora sample --model cogvideox-p2ft --prompts cataract-phases --out samples --seed 42
    """
    from ophora.inference.pipeline import GeometryError
    from ophora.inference.prompts import PromptError, read_prompts
    from ophora.inference.sample import sample_videos
    from ophora.storage import relocate, staged

    if (prompts is None) == (prompt is None):
        fail("give exactly one of --prompts FILE or --prompt TEXT")
    try:
        chosen = [prompt] if prompt is not None else read_prompts(prompts, id_column, prompt_column, phase_column)
        with staged(out) as local:
            summary = relocate(sample_videos(
                model, chosen, local, lora=lora, seed=seed, num_videos_per_prompt=num_videos, steps=steps,
                frames=frames, height=height, width=width, fps=fps, guidance=guidance, dynamic_cfg=dynamic_cfg,
                scheduler=scheduler, dtype=dtype, vae_slicing=vae_slicing, vae_tiling=vae_tiling,
                cpu_offload=cpu_offload, compile=compile_, lora_scale=lora_scale, use_ray=ray, num_workers=workers,
                progress=True), local, out)
    except (PromptError, GeometryError, FileNotFoundError, ValueError, OSError) as e:
        fail(str(e))
    print_table("ophora sample", [("prompts", summary["prompts"]), ("videos", summary["videos"]),
                                  ("refused prompts", summary["refused"]), ("failed videos", summary["failed"]),
                                  ("seconds per video", summary["seconds_per_video"]),
                                  ("seconds total", summary["seconds_total"])], ("", "value"))
    for problem in summary["problems"]:
        console.print(f"[yellow]{problem}[/]")
    console.print(f"manifest: {summary['manifest']}")
    if summary.get("gallery"):
        console.print(f"gallery: {summary['gallery']}")
    if summary["failed"] or summary["videos"] == 0:
        raise typer.Exit(1)
