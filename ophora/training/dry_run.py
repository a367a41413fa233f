"""A dry run of a training config: everything a run builds except the model's weights, on any machine.

It resolves the Ray Train resources and backend, the batch arithmetic, the clip geometry (the shards' when given,
else the paper's), the learning-rate schedule (built on a real optimizer), the loss scaler, and the transformer
itself on PyTorch's ``meta`` device (shapes without memory) with LoRA and gradient checkpointing applied: a
config that would fail on a GPU cluster at start-up fails here instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ophora.clip_geometry import COGVIDEOX, ClipGeometry
from ophora.training.config import TrainConfig, load_config

ADAM_BYTES_PER_PARAM = 16  # fp32 weight + gradient + two AdamW moments


def dry_run(config: TrainConfig | str | Path, shards_root: str | None = None, stage: str = "tpt") -> dict[str, Any]:
    """The facts of a run of ``config`` (see the module doc); raises what the real run would raise."""
    import torch
    from diffusers import CogVideoXTransformer3DModel
    from diffusers.optimization import get_scheduler
    from ray.train import ScalingConfig
    from ray.train.torch import TorchConfig

    from ophora.training.data_geometry import geometry_of_configs, resolve_geometry
    from ophora.training.loop import add_lora
    from ophora.training.model_configs import component_config
    from ophora.training.precision import Precision

    cfg = config if isinstance(config, TrainConfig) else load_config(config)
    s = cfg.scaling
    backend = s.backend if s.backend != "auto" else ("nccl" if s.use_gpu else "gloo")
    per_worker = {"CPU": s.cpus_per_worker, **({"GPU": s.gpus_per_worker} if s.use_gpu else {})}
    ScalingConfig(num_workers=s.num_workers, use_gpu=s.use_gpu, resources_per_worker=per_worker)
    TorchConfig(backend=backend)

    transformer_cfg = component_config(cfg.model, "transformer")
    model = geometry_of_configs(transformer_cfg, component_config(cfg.model, "vae"))
    if shards_root:
        from ophora.training.data import detect_kind, find_shards

        shards = find_shards(shards_root, stage)
        kind = detect_kind(shards) if cfg.data.kind == "auto" else cfg.data.kind
        geometry, where = resolve_geometry(cfg.data, shards, kind, model), f"shards under {shards_root}/{stage}"
    else:
        geometry, where = _stated_or_paper(cfg), "the config, else the paper's (no shards given)"
        problem = model.problem(geometry)
        if problem:
            raise ValueError(f"the model cannot take {geometry.describe()}: {problem}")

    with torch.device("meta"):
        transformer = CogVideoXTransformer3DModel.from_config(transformer_cfg)
    total = sum(p.numel() for p in transformer.parameters())
    if cfg.lora.rank:
        add_lora(transformer, cfg)
    if cfg.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    trainable = [p for p in transformer.parameters() if p.requires_grad]
    trainable_count = sum(p.numel() for p in trainable)

    probe = torch.nn.Parameter(torch.zeros(1))  # the schedule needs an optimizer, not the model's weights
    optimizer = torch.optim.AdamW([probe], lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay)
    scheduler = get_scheduler(
        cfg.optim.lr_scheduler,
        optimizer,
        num_warmup_steps=cfg.optim.warmup_steps,
        num_training_steps=cfg.max_steps,
        num_cycles=cfg.optim.lr_num_cycles,
    )
    marks = sorted({0, cfg.optim.warmup_steps // 2, cfg.optim.warmup_steps, cfg.max_steps // 2, cfg.max_steps - 1})
    lr_at = _lr_at(scheduler, marks, cfg.max_steps)
    precision = Precision(cfg.mixed_precision, torch.device("cpu"))  # the scaler a worker builds (CPU here)

    patch = transformer_cfg.get("patch_size", 2)
    latent = (
        (geometry.num_frames - 1) // model.temporal_compression + 1,
        model.latent_channels,
        geometry.height // model.spatial_compression,
        geometry.width // model.spatial_compression,
    )
    tokens = latent[0] * (latent[2] // patch) * (latent[3] // patch)
    frozen = total - trainable_count if cfg.lora.rank else 0
    return {
        "model": cfg.model,
        "stage": stage,
        "resources": {
            "workers": s.num_workers,
            "per_worker": per_worker,
            "backend": backend,
            "cluster_needs": {k: v * s.num_workers for k, v in per_worker.items()},
            "loader_workers_per_worker": cfg.data.loader_workers,
            "readers": s.num_workers * max(cfg.data.loader_workers, 1),
        },
        "batch": {
            "per_worker": cfg.batch_size,
            "grad_accum": cfg.grad_accum,
            "global": cfg.global_batch,
            "clips_seen": cfg.global_batch * cfg.max_steps,
        },
        "geometry": {
            **geometry.as_dict(),
            "from": where,
            "latent_shape": list(latent),
            "video_tokens": tokens,
            "text_tokens": cfg.data.max_text_tokens,
        },
        "schedule": {
            "name": cfg.optim.lr_scheduler,
            "warmup_steps": cfg.optim.warmup_steps,
            "max_steps": cfg.max_steps,
            "lr_at_step": lr_at,
        },
        "precision": {
            "mixed_precision": cfg.mixed_precision,
            "loss_scaler": precision.scaler is not None,
            "gradient_checkpointing": cfg.gradient_checkpointing,
            "parallel": cfg.parallel,
        },
        "transformer": {
            "parameters": total,
            "trainable": trainable_count,
            "lora_rank": cfg.lora.rank,
            "training_state_gb_per_worker": round((trainable_count * ADAM_BYTES_PER_PARAM + frozen * 2) / 1e9, 2),
        },
        "validation": {"every": cfg.validation.every, "prompts": cfg.validation.prompts, "steps": cfg.validation.steps},
    }


def _stated_or_paper(cfg: TrainConfig) -> ClipGeometry:
    d = cfg.data
    return ClipGeometry(
        d.num_frames or COGVIDEOX.num_frames,
        d.fps or COGVIDEOX.fps,
        d.height or COGVIDEOX.height,
        d.width or COGVIDEOX.width,
    )


def _lr_at(scheduler, marks: list[int], max_steps: int) -> dict[int, float]:
    """The learning rate after each of ``marks`` optimizer steps (diffusers' schedules are LambdaLR: read the
    multiplier directly instead of stepping tens of thousands of times)."""
    base = scheduler.base_lrs[0]
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if lambdas:
        return {m: base * lambdas[0](m) for m in marks}
    out, step = {}, 0
    for mark in marks:
        while step < mark:
            scheduler.optimizer.step()
            scheduler.step()
            step += 1
        out[mark] = scheduler.get_last_lr()[0]
    return out
