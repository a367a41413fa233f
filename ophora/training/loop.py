"""The per-worker training function: ordinary PyTorch, read top to bottom. Ray appears only at the edges
(rank and device, the latest checkpoint, ``ray.train.report``).

``train_worker(job)`` receives a plain dict built by trainer.py: ``config`` (TrainConfig as a dict, with the
shards' clip geometry filled in), ``geometry``, ``shards``, ``kind`` ('raw' or 'latents'), ``source`` (where the
weights start), ``out_dir``, ``stage``.
"""

from __future__ import annotations

import contextlib
import json
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ophora.clip_geometry import ClipGeometry
from ophora.training.checkpoint import load_checkpoint, save_checkpoint
from ophora.training.config import TrainConfig
from ophora.training.data import ClipStream, make_loader
from ophora.training.elastic import ReaderLayout, own_positions, resume_layout
from ophora.training.models import load_parts, model_signature
from ophora.training.objective import diffusion_loss, encode_text, encode_video
from ophora.training.precision import Precision
from ophora.training.validation import Validator

# ---------------------------------------------------------------- small named pieces


def add_lora(transformer, cfg: TrainConfig) -> None:
    """Freeze the transformer and add trainable LoRA layers (peft) to its attention projections."""
    from peft import LoraConfig

    transformer.requires_grad_(False)
    transformer.add_adapter(
        LoraConfig(
            r=cfg.lora.rank, lora_alpha=cfg.lora.alpha, init_lora_weights=True, target_modules=cfg.lora.target_modules
        )
    )


def apply_parallelism(transformer, cfg: TrainConfig, device):
    """DDP (default) or FSDP2 (each transformer block and the root sharded); returns the module to call."""
    transformer.to(device)
    if not torch.distributed.is_initialized() or torch.distributed.get_world_size() == 1:
        return transformer
    if cfg.parallel == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        for block in transformer.transformer_blocks:
            fully_shard(block)
        return fully_shard(transformer)
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(transformer, device_ids=ids)


def gradient_sync(model, sync: bool):
    """Skip the gradient all-reduce on micro-steps that only accumulate."""
    if sync:
        return contextlib.nullcontext()
    if hasattr(model, "no_sync"):
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(False)
        return _ResyncOnExit(model)
    return contextlib.nullcontext()


class _ResyncOnExit(contextlib.AbstractContextManager):
    def __init__(self, model):
        self.model = model

    def __exit__(self, *_):
        self.model.set_requires_gradient_sync(True)


def full_transformer(model, transformer, cfg: TrainConfig, source: str, rank: int):
    """The trained transformer whole on rank 0 (None elsewhere). Under FSDP2 every rank must call this: the
    shards are gathered collectively into a fresh copy; otherwise rank 0's own module is returned as it is."""
    from ophora.training.models import load_transformer

    if cfg.parallel == "fsdp2" and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if rank != 0:
            return None
        transformer = load_transformer(source)
        if cfg.lora.rank:
            add_lora(transformer, cfg)
        transformer.load_state_dict(full)
        return transformer
    return transformer if rank == 0 else None


def export_weights(model, transformer, cfg: TrainConfig, source: str, dest: Path, rank: int) -> None:
    """Rank 0 writes the export in diffusers layout (every rank takes part in gathering under FSDP2)."""
    from ophora.training.export import export_trained

    whole = full_transformer(model, transformer, cfg, source, rank)
    if whole is not None:
        export_trained(whole, source, dest, lora=bool(cfg.lora.rank))


def make_optimizer(params: list[torch.Tensor], cfg: TrainConfig, device) -> torch.optim.Optimizer:
    """AdamW with the config's settings; the fused kernel wherever the parameters live on an accelerator."""
    return torch.optim.AdamW(
        params,
        lr=cfg.optim.lr,
        betas=cfg.optim.betas,
        weight_decay=cfg.optim.weight_decay,
        eps=cfg.optim.eps,
        fused=device.type == "cuda",
    )


def batch_inputs(batch: dict[str, Any], parts, cfg: TrainConfig, device, empty_embeds=None):
    """(latents, prompt embeddings) of one batch: encoded on the fly from raw clips, or read from precomputed
    latent shards; instructions are dropped to '' with probability ``data.caption_dropout``."""
    texts = [("" if random.random() < cfg.data.caption_dropout else t) for t in batch["text"]]
    if "pixels" in batch:
        latents = encode_video(parts.vae, batch["pixels"]).float()
        embeds = encode_text(parts.tokenizer, parts.text_encoder, texts, cfg.data.max_text_tokens).float()
        return latents, embeds
    latents, embeds = batch["latents"].to(device), batch["prompt_embeds"].to(device)
    if empty_embeds is not None:
        dropped = torch.tensor([t == "" for t in texts], device=device).view(-1, 1, 1)
        embeds = torch.where(dropped, empty_embeds.to(embeds), embeds)
    return latents, embeds


def memory_mb(device) -> float:
    """Peak accelerator memory, or this process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- the function Ray runs on every worker


def train_worker(job: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    cfg = TrainConfig.model_validate(job["config"])  # the trainer filled in the shards' clip geometry
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.seed + rank)
    random.seed(cfg.seed + rank)
    out_dir = Path(job["out_dir"])
    validating = cfg.validation.every > 0

    # 1. Model: frozen VAE/T5 in the compute dtype, the trainable transformer in fp32 master weights.
    raw = job["kind"] == "raw"
    frozen_dtype = "fp32" if cfg.mixed_precision == "no" or device.type == "cpu" else cfg.mixed_precision
    renders = validating and rank == 0  # rank 0 also needs the VAE and T5 to render validation videos
    parts = load_parts(
        job["source"], frozen_dtype, need_vae=raw or renders, need_text=raw or renders or cfg.data.caption_dropout > 0
    )
    for frozen in (parts.vae, parts.text_encoder):
        if frozen is not None:
            frozen.to(device)
    transformer = parts.transformer
    if cfg.lora.rank:
        add_lora(transformer, cfg)
    if cfg.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    signature = {**model_signature(transformer), "lora_rank": cfg.lora.rank}
    model = apply_parallelism(transformer, cfg, device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    precision = Precision(cfg.mixed_precision, device)

    # 2. Optimizer, schedule, EMA.
    optimizer = make_optimizer(trainable, cfg, device)
    lr_scheduler = get_scheduler(
        cfg.optim.lr_scheduler,
        optimizer,
        num_warmup_steps=cfg.optim.warmup_steps,
        num_training_steps=cfg.max_steps,
        num_cycles=cfg.optim.lr_num_cycles,
    )
    ema = EMAModel(trainable, decay=cfg.ema_decay) if cfg.ema_decay else None

    # 3. Resume: weights, optimizer, schedule, loss scale, RNG and every reader's data position, if any.
    step, positions, history, resumed_from, saved_layout = 0, {}, [], None, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(
                Path(folder),
                rank=rank,
                model=model,
                optimizer=optimizer,
                lr_scheduler=lr_scheduler,
                ema=ema,
                signature=signature,
            )
        step, positions, history = state["step"], state["positions"], state["loss_history"]
        precision.load_state_dict(state.get("scaler") or {})
        saved_layout = ReaderLayout.from_json(state["layout"]) if state.get("layout") else None
        resumed_from = step

    # 4. Data: this worker's readers continue from their positions; other reader counts finish the old epochs.
    loaders = max(cfg.data.loader_workers, 1)
    layout, positions = resume_layout(saved_layout, positions, world * loaders)
    stream = ClipStream(job["shards"], cfg.data, cfg.batch_size, cfg.seed, rank, world, job["kind"], positions, layout)
    positions = own_positions(positions, rank, loaders)  # the checkpoint file this rank writes speaks for these
    batches = iter(make_loader(stream, cfg.data.loader_workers))
    empty_embeds = None
    if cfg.data.caption_dropout > 0:
        empty_embeds = encode_text(parts.tokenizer, parts.text_encoder, [""], cfg.data.max_text_tokens)
    keys_log = _keys_log(out_dir, job["stage"], rank) if job.get("record_keys") else None
    writer = _tensorboard(out_dir, job["stage"]) if rank == 0 else None
    validator = Validator(cfg, ClipGeometry(**job["geometry"]), out_dir, job["stage"]) if renders else None
    samples_seen, bad, validation, skipped_steps = 0, {"samples": 0, "shards": 0}, {}, 0
    run_start = time.perf_counter()

    # 5. The loop: grad_accum micro-steps, clip, step; report every log_every, checkpoint every checkpoint_every,
    #    validation videos every validation.every.
    while step < cfg.max_steps:
        step_start, data_wait, losses = time.perf_counter(), 0.0, []
        for micro in range(cfg.grad_accum):
            t0 = time.perf_counter()
            batch = next(batches)
            data_wait += time.perf_counter() - t0
            positions[batch["reader"]] = (batch["epoch"], batch["position"])
            bad = batch["bad"]
            samples_seen += len(batch["keys"])
            if keys_log:
                keys_log.write(
                    json.dumps(
                        {
                            "step": step + 1,
                            "epoch": batch["epoch"],
                            "keys": batch["keys"],
                            "sample_epochs": batch["sample_epochs"],
                        }
                    )
                    + "\n"
                )
            latents, embeds = batch_inputs(batch, parts, cfg, device, empty_embeds)
            with gradient_sync(model, sync=micro == cfg.grad_accum - 1):
                loss = diffusion_loss(model, transformer.config, parts.scheduler, latents, embeds, precision.dtype)
                precision.backward(loss / cfg.grad_accum)
            losses.append(loss.detach())
        grad_norm, skipped = precision.step(optimizer, trainable, cfg.optim.max_grad_norm)
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        skipped_steps += skipped
        if ema is not None and not skipped:
            ema.step(trainable)
        step += 1
        step_time = time.perf_counter() - step_start

        last = step == cfg.max_steps
        if validating and (step % cfg.validation.every == 0 or last):
            validation = (
                _validate(
                    validator,
                    model,
                    transformer,
                    parts,
                    cfg,
                    job["source"],
                    rank,
                    ema,
                    trainable,
                    precision,
                    step,
                    writer,
                )
                or validation
            )  # rank 0's latest result
        if step % cfg.log_every and step % cfg.checkpoint_every and not last:
            continue
        loss_value = torch.stack(losses).mean()
        torch.distributed.all_reduce(loss_value, op=torch.distributed.ReduceOp.AVG) if world > 1 else None
        history.append(float(loss_value))
        metrics = {
            "step": step,
            "loss": float(loss_value),
            "lr": lr_scheduler.get_last_lr()[0],
            "grad_norm": grad_norm,
            "skipped_steps": skipped_steps,
            "loss_scale": precision.state_dict().get("scale"),
            "step_time_s": step_time,
            "data_wait_s": data_wait,
            "compute_s": step_time - data_wait,
            "samples_per_s": cfg.batch_size * cfg.grad_accum * world / step_time,
            "memory_mb": memory_mb(device),
            "torch_threads": torch.get_num_threads(),
            "bad_samples": bad["samples"],
            "bad_shards": bad["shards"],
            "samples_seen_this_attempt": samples_seen,
            "resumed_from_step": resumed_from,
            "readers": layout.readers,
            "elapsed_s": time.perf_counter() - run_start,
            **{f"validation_{k}": v for k, v in validation.items()},
        }
        if writer is not None:
            for name in (
                "loss",
                "lr",
                "grad_norm",
                "samples_per_s",
                "step_time_s",
                "data_wait_s",
                "compute_s",
                "memory_mb",
            ):
                writer.add_scalar(f"train/{name}", metrics[name], step)
            writer.flush()
            _progress_line(job["stage"], metrics, cfg.max_steps)
        if keys_log:
            keys_log.flush()
        if step % cfg.checkpoint_every == 0 or last:
            with tempfile.TemporaryDirectory() as tmp:
                save_checkpoint(
                    Path(tmp),
                    rank=rank,
                    model=model,
                    optimizer=optimizer,
                    lr_scheduler=lr_scheduler,
                    ema=ema,
                    step=step,
                    signature=signature,
                    positions=positions,
                    history=history,
                    extra={"stage": job["stage"], "layout": layout.to_json(), "scaler": precision.state_dict()},
                )
                ray.train.report(
                    {**metrics, "loss_history": history}, checkpoint=ray.train.Checkpoint.from_directory(tmp)
                )
        else:
            ray.train.report(metrics)

    # 6. Export the trained weights (rank 0) in diffusers layout, and LoRA weights when training LoRA.
    if ema is not None:
        ema.copy_to(trainable)
    export_weights(model, transformer, cfg, job["source"], out_dir / "export", rank)
    if writer is not None:
        writer.close()
    if keys_log:
        keys_log.close()
    torch.distributed.barrier() if world > 1 else None


def _validate(validator, model, transformer, parts, cfg, source, rank, ema, trainable, precision, step, writer):
    """Render the validation prompts on rank 0 with the EMA weights when EMA is on (swapped in and back out on
    every rank: under FSDP2 every rank helps gather the weights). Returns rank 0's result, else None."""
    if ema is not None:
        ema.store(trainable)
        ema.copy_to(trainable)
    try:
        whole = full_transformer(model, transformer, cfg, source, rank)
        if whole is None or validator is None:
            return None
        return validator.render(parts, whole, step, writer, autocast=precision.autocast)
    finally:
        if ema is not None:
            ema.restore(trainable)


def _keys_log(out_dir: Path, stage: str, rank: int):
    """An append-only audit of which clip keys this rank trained on, step by step (tests and debugging)."""
    folder = out_dir / "keys" / stage
    folder.mkdir(parents=True, exist_ok=True)
    return open(folder / f"rank-{rank}.jsonl", "a", encoding="utf-8")


def _tensorboard(out_dir: Path, stage: str):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(out_dir / "tensorboard" / stage))


def _progress_line(stage: str, m: dict[str, Any], max_steps: int) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(
        f"[bold]{stage}[/] step {m['step']}/{max_steps}  loss {m['loss']:.4f}  lr {m['lr']:.2e}  "
        f"|g| {m['grad_norm']:.3f}  {m['samples_per_s']:.2f} clips/s  data {m['data_wait_s']:.2f}s  "
        f"compute {m['compute_s']:.2f}s  mem {m['memory_mb']:.0f} MB  bad {m['bad_samples']}"
    )
