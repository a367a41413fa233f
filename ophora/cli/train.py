"""`ophora train`: progressive video-instruction tuning of CogVideoX on Ray Train (TPT -> P²FT).

This module only parses arguments and calls ophora.training; heavy imports stay inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ophora.cli.common import config_error, console, fail, parse_set, print_table

app = typer.Typer(
    help="Fine-tune CogVideoX on clip-instruction shards (TPT, then P²FT).\n\n"
    "Example: ophora train progressive --shards curated/ --out runs/ --model THUDM/CogVideoX-2b",
    no_args_is_help=True,
    invoke_without_command=True,
)

CONFIG_HELP = "bundled config name (tpt, p2ft, tiny) or a YAML path"
SET_HELP = "override a config field, e.g. --set optim.lr=1e-5 (repeatable; values are YAML)"


def _config(name: str, sets: list[str], model: Optional[str]):
    from pydantic import ValidationError

    from ophora.training.config import load_config

    over = dict(parse_set(pair) for pair in sets)
    if model:
        over["model"] = model
    try:
        return load_config(name, over)
    except (ValueError, OSError, ValidationError) as e:
        fail(f"config {name}: {config_error(e)}")


def _report(summary: dict, out: str) -> None:
    from ophora.training.trainer import summary_rows

    print_table(f"train {summary.get('stage', '')} summary", summary_rows(summary), ("field", "value"))
    console.print(f"summary JSON: {out.rstrip('/')}/summary.json")


def _on_storage(cfg, out: str):
    """A run whose --out is a URL keeps its checkpoints there too (unless storage_path says otherwise), so a
    rerun from any machine resumes; the run folder itself is staged locally and published at the end."""
    from ophora.storage import is_url

    if is_url(out) and not cfg.storage_path:
        return cfg.model_copy(update={"storage_path": f"{out.rstrip('/')}/ray"})
    return cfg


def _guarded(fn, *args, **kwargs):
    from ophora.training.checkpoint import CheckpointMismatch
    from ophora.training.data import DataError
    from ophora.training.trainer import TrainingError

    try:
        return fn(*args, **kwargs)
    except (DataError, TrainingError, CheckpointMismatch, FileNotFoundError) as e:
        fail(str(e), code=1)


def _run_stage(stage, shards, out, config, model, init_from, sets) -> None:
    if stage not in ("tpt", "p2ft") or shards is None or out is None:
        fail("give --stage tpt|p2ft, --shards DIR and --out DIR (or a subcommand; see --help)")
    from ophora.storage import relocate, staged
    from ophora.training.trainer import run_training

    cfg = _on_storage(_config(config or stage, sets, model), out)
    with staged(out) as local:
        summary = relocate(_guarded(run_training, cfg, shards, local, stage, init_from=init_from), local, out)
    _report(summary, out)


STAGE_OPT = typer.Option(None, "--stage", help="tpt (all clips) or p2ft (privacy-clean subset)")
SHARDS_OPT = typer.Option(None, "--shards", help="curation output folder or URL (s3://, gs://) holding tpt/ and p2ft/")
OUT_OPT = typer.Option(
    None, "--out", help="run folder or URL (s3://, gs://): checkpoints, export/, tensorboard/, summary.json"
)
CONFIG_OPT = typer.Option(None, "--config", help=CONFIG_HELP + " (default: the stage's)")
MODEL_OPT = typer.Option(None, "--model", help="diffusers folder or hub id (overrides the config's)")
INIT_OPT = typer.Option(None, "--init-from", help="start from these weights (e.g. a TPT export)")
SET_OPT = typer.Option([], "--set", help=SET_HELP)


@app.callback()
def stage_run(
    ctx: typer.Context,
    stage: Optional[str] = STAGE_OPT,
    shards: Optional[str] = SHARDS_OPT,
    out: Optional[str] = OUT_OPT,
    config: Optional[str] = CONFIG_OPT,
    model: Optional[str] = MODEL_OPT,
    init_from: Optional[str] = INIT_OPT,
    sets: list[str] = SET_OPT,
) -> None:
    """Run one stage: `ophora train --stage tpt --shards DATA --out RUN` (rerun resumes from RUN's latest
    checkpoint), or use a subcommand."""
    if ctx.invoked_subcommand is None:  # always None when called as `ophora train run`
        _run_stage(stage, shards, out, config, model, init_from, sets)


# `ophora train run --stage ...` is the callback above under a subcommand's name (same options, same run)
app.command(
    "run",
    help="Run one stage (same as `ophora train --stage ...`); rerunning the same --out resumes.\n\n"
    "Example: ophora train run --stage tpt --shards curated/ --out runs/tpt --model THUDM/CogVideoX-2b",
)(stage_run)


@app.command()
def progressive(
    shards: str = typer.Option(..., "--shards", help="curation output folder or URL with tpt/ and p2ft/"),
    out: str = typer.Option(..., "--out", help="run folder or URL; stages go to OUT/tpt and OUT/p2ft"),
    tpt_config: str = typer.Option("tpt", "--tpt-config", help=CONFIG_HELP),
    p2ft_config: str = typer.Option("p2ft", "--p2ft-config", help=CONFIG_HELP),
    model: Optional[str] = typer.Option(None, "--model", help="starting model for TPT"),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP + "; applies to both stages"),
) -> None:
    """TPT on tpt/, then P²FT on p2ft/ starting from TPT's exported weights.

    Example: ophora train progressive --shards curated/ --out runs/ --model THUDM/CogVideoX-2b
    """
    from ophora.storage import relocate, staged
    from ophora.training.trainer import run_progressive

    tpt = _config(tpt_config, sets, model)
    p2ft = _config(p2ft_config, sets, None)
    if not tpt.storage_path and not p2ft.storage_path:  # one storage folder per stage on a URL
        tpt, p2ft = _on_storage(tpt, f"{out.rstrip('/')}/tpt"), _on_storage(p2ft, f"{out.rstrip('/')}/p2ft")
    with staged(out) as local:
        both = relocate(_guarded(run_progressive, tpt, p2ft, shards, local), local, out)
    for stage in ("tpt", "p2ft"):
        _report(both[stage], f"{out.rstrip('/')}/{stage}")


@app.command()
def precompute(
    shards: str = typer.Option(..., "--shards", help="curation output folder or URL (raw mp4 shards)"),
    out: str = typer.Option(..., "--out", help="where the latent shards go (folder or URL; same layout)"),
    model: str = typer.Option(..., "--model", help="diffusers folder or hub id of CogVideoX"),
    config: str = typer.Option("tpt", "--config", help=CONFIG_HELP + " (frames, size, text length)"),
    subsets: list[str] = typer.Option(["tpt", "p2ft"], "--subset", help="subsets to encode"),
    gpus: float = typer.Option(0.0, "--gpus", help="GPUs per encoder actor (0 = CPU)"),
    actors: int = typer.Option(1, "--actors", help="encoder actors"),
) -> None:
    """Encode VAE latents (scaled) and T5 embeddings once, into shards the trainer reads instead of mp4.

    Example: ophora train precompute --shards curated/ --out latents/ --model THUDM/CogVideoX-2b --gpus 1
    """
    from ophora.training.precompute import precompute_latents

    cfg = _config(config, [], model)
    summary = _guarded(precompute_latents, cfg, shards, out, subsets=subsets, num_gpus=gpus, actors=actors)
    print_table("precompute summary", [(k, v) for k, v in summary.items()], ("field", "value"))
    import fsspec

    with fsspec.open(f"{out.rstrip('/')}/precompute-summary.json", "w") as fh:  # a folder or an object-store URL
        fh.write(json.dumps(summary, indent=2))


@app.command("dry-run")
def dry_run(
    config: str = typer.Option("tpt", "--config", help=CONFIG_HELP),
    shards: Optional[str] = typer.Option(
        None, "--shards", help="read the clip geometry from these shards (default: the config's, else the paper's)"
    ),
    stage: str = typer.Option("tpt", "--stage", help="subset the shards are read from"),
    model: Optional[str] = MODEL_OPT,
    sets: list[str] = SET_OPT,
) -> None:
    """Build everything a run builds except the model weights — resources, batch arithmetic, clip geometry, the
    learning-rate schedule, the transformer's shapes with LoRA and checkpointing — and print it as JSON.

    Example: ophora train dry-run --config p2ft
    """
    from pydantic import ValidationError

    from ophora.training.dry_run import dry_run as run_dry

    cfg = _config(config, sets, model)
    try:
        facts = _guarded(run_dry, cfg, shards, stage)
    except (ValueError, ValidationError) as e:
        fail(str(e), code=1)
    print(json.dumps(facts, indent=2, default=str))


@app.command("make-tiny-model")
def make_tiny_model(
    out: Path = typer.Argument(..., help="folder for the diffusers-layout model"),
    seed: int = typer.Option(0, help="initialisation seed"),
    rotary: bool = typer.Option(True, help="5b-style rotary (else 2b-style sinusoidal) positions"),
):
    """Build a miniature CogVideoX (9 frames of 64x96; random transformer and T5, a VAE that passes pictures
    through) for tests and demos.

    Example: ophora train make-tiny-model tiny-model/
    """
    from ophora.training.models import make_tiny_model as build

    path = build(out, seed=seed, rotary=rotary)
    console.print(f"tiny CogVideoX written to {path}")
