"""Trainer overhead and data-loader headroom on the tiny CogVideoX (CPU).

1. Step time of the Ray Train job (1 worker, the whole machine) vs a bare single-process diffusers+torch loop on
   the same batches (held in memory, so the bare loop pays no decoding), run once before and once after the
   trainer (the machine may be shared): ratio, goal <= 1.05. The trainer's loader decodes the next batch while
   the step computes (a background thread with --loader-workers 0).
2. Data-loader clips/s (ffmpeg clips decoded by PyAV, as the trainer reads them) vs the clips/s a step consumes.

    python benchmarks/bench_train.py --steps 25 --cpus 1 --out bench-train.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # ophora and tests.fixtures from this tree


def trainer_step_times(cfg, shards_root: str, out: Path) -> tuple[dict[str, list[float]], int]:
    """Per-step wall and compute (wall minus data wait) times of the real Ray Train job, from its TensorBoard
    scalars, and the torch threads its worker ran with."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ophora.training.trainer import run_training

    summary = run_training(cfg, shards_root, out, "tpt")
    acc = EventAccumulator(str(out / "tensorboard" / "tpt"))
    acc.Reload()
    times = {name: [e.value for e in acc.Scalars(f"train/{name}")] for name in ("step_time_s", "compute_s")}
    return times, summary["torch_threads"]


def bare_step_times(cfg, batches: list[dict]) -> list[float]:
    """The same objective, optimizer and clipping in one process, with no Ray, no DDP, no data stream."""
    import torch
    from diffusers.optimization import get_scheduler

    from ophora.training.models import load_parts
    from ophora.training.objective import diffusion_loss, encode_text, encode_video

    torch.manual_seed(cfg.seed)
    parts = load_parts(cfg.model)
    model = parts.transformer.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay)
    sched = get_scheduler(
        cfg.optim.lr_scheduler,
        opt,
        num_warmup_steps=cfg.optim.warmup_steps,
        num_training_steps=cfg.max_steps,
        num_cycles=cfg.optim.lr_num_cycles,
    )
    times = []
    for batch in batches:
        t0 = time.perf_counter()
        latents = encode_video(parts.vae, batch["pixels"]).float()
        embeds = encode_text(parts.tokenizer, parts.text_encoder, batch["text"], cfg.data.max_text_tokens).float()
        loss = diffusion_loss(model, model.config, parts.scheduler, latents, embeds)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.optim.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return times


def loader_clips_per_s(cfg, shards: list[str], clips: int) -> float:
    from ophora.training.data import ClipStream

    stream = iter(ClipStream(shards, cfg.data, cfg.batch_size, cfg.seed, 0, 1, "raw"))
    t0 = time.perf_counter()
    n = sum(len(b["keys"]) for b in itertools.islice(stream, max(1, clips // cfg.batch_size)))
    return n / (time.perf_counter() - t0)


def decode_clips_per_s(shards: list[str], frames: int, height: int, width: int) -> dict[str, float]:
    """PyAV in-process decoding (what the trainer uses) vs one ffmpeg process per clip piping raw RGB."""
    import subprocess

    from ophora.dataset.shards import iter_samples
    from ophora.training.data import decode_clip
    from ophora.video import CONTAINER_FORMATS

    clips = [s.mp4 for shard in shards for s in iter_samples(shard, members=("mp4",))]
    t0 = time.perf_counter()
    for mp4 in clips:
        decode_clip(mp4, frames, height, width)
    pyav = len(clips) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for mp4 in clips:
        # the same open policy as ophora.video (real containers only), on the pipe instead of a file
        raw = subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-protocol_whitelist",
                "pipe",
                "-format_whitelist",
                ",".join(CONTAINER_FORMATS),
                "-i",
                "pipe:0",
                "-frames:v",
                str(frames),
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "pipe:1",
            ],
            input=mp4,
            capture_output=True,
            check=True,
        ).stdout
        assert len(raw) == frames * height * width * 3
    ffmpeg = len(clips) / (time.perf_counter() - t0)
    return {"pyav_clips_per_s": round(pyav, 1), "ffmpeg_subprocess_clips_per_s": round(ffmpeg, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5, help="first steps left out of the medians")
    ap.add_argument("--cpus", type=int, default=0, help="CPUs for the one Ray worker (default: all)")
    ap.add_argument("--loader-workers", type=int, default=0, help="DataLoader processes decoding ahead")
    ap.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    args = ap.parse_args()

    import os

    import ray
    import torch

    from ophora.clip_geometry import TINY
    from ophora.training.config import load_config
    from ophora.training.data import ClipStream, find_shards
    from ophora.training.data_geometry import with_geometry
    from ophora.training.models import make_tiny_model
    from tests.fixtures.shards import write_clip_shards

    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    cpus = args.cpus or os.cpu_count() or 2
    make_tiny_model(work / "model")
    write_clip_shards(work / "shards", {"tpt": 8}, per_shard=4)
    cfg = load_config(
        "tiny",
        {
            "model": str(work / "model"),
            "max_steps": args.steps,
            "log_every": 1,
            "checkpoint_every": args.steps,
            "scaling.num_workers": 1,
            "scaling.cpus_per_worker": cpus,
            "data.loader_workers": args.loader_workers,
        },
    )
    shards = find_shards(str(work / "shards"), "tpt")
    data = with_geometry(cfg.data, TINY)  # what the trainer reads from these shards
    batches = list(itertools.islice(iter(ClipStream(shards, data, cfg.batch_size, cfg.seed, 0, 1, "raw")), args.steps))
    torch.set_num_threads(cpus if args.cpus else torch.get_num_threads())
    before = bare_step_times(cfg, batches)[args.warmup :]  # the machine is shared: bare runs before and after
    load_before = os.getloadavg()[0]
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    times, threads = trainer_step_times(cfg, str(work / "shards"), work / "run")
    trainer, compute = times["step_time_s"][args.warmup :], times["compute_s"][args.warmup :]
    ray.shutdown()
    torch.set_num_threads(threads)  # the same intra-op threads the Ray worker ran with
    after = bare_step_times(cfg, batches)[args.warmup :]
    bare = before + after
    loader = loader_clips_per_s(cfg.model_copy(update={"data": data}), shards, clips=32)
    decoders = decode_clips_per_s(shards, TINY.num_frames, TINY.height, TINY.width)

    t_med, b_med = statistics.median(trainer), statistics.median(bare)
    result = {
        "steps_timed": len(trainer),
        "batch_size": cfg.batch_size,
        "cpus": cpus,
        "torch_threads": threads,
        "load_average_1m_start": round(load_before, 2),
        "load_average_1m_end": round(os.getloadavg()[0], 2),
        "machine_cpus": os.cpu_count(),
        "bare_before_s_median": round(statistics.median(before), 4),
        "bare_after_s_median": round(statistics.median(after), 4),
        "trainer_step_s_median": round(t_med, 4),
        "bare_step_s_median": round(b_med, 4),
        "trainer_over_bare": round(t_med / b_med, 3),
        "goal_ratio": 1.05,
        "trainer_compute_s_median": round(statistics.median(compute), 4),
        "trainer_compute_over_bare": round(statistics.median(compute) / b_med, 3),
        "loader_workers": cfg.data.loader_workers,
        "loader_clips_per_s": round(loader, 2),
        "step_consumes_clips_per_s": round(cfg.batch_size / t_med, 2),
        "loader_headroom": round(loader / (cfg.batch_size / t_med), 2),
        **decoders,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
