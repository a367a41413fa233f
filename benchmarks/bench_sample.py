"""Seconds per video of `ophora sample` on the miniature CogVideoX (CPU here; a GPU when there is one).

    python benchmarks/bench_sample.py --videos 4 --steps 4 --frames 9 --height 64 --width 96

Builds the random tiny model in a temporary folder, renders the bundled cataract-phase prompts and prints one
JSON line: model load seconds, render seconds per video (mean / min / max), encode seconds per video, wall time.
Numbers from the tiny model say how much the sampler's own overhead costs, not how fast CogVideoX-2b is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4, help="videos to render (cataract phases, in order)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--model", default=None, help="a CogVideoX folder instead of the tiny random model")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from ophora.inference.prompts import read_prompts
    from ophora.inference.sample import read_manifest, sample_videos

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        t0 = time.perf_counter()
        if model is None:
            from ophora.training.models import make_tiny_model

            model = str(make_tiny_model(Path(tmp) / "tiny", seed=0))
        build = time.perf_counter() - t0
        prompts = read_prompts("cataract-phases")[: args.videos]
        t1 = time.perf_counter()
        summary = sample_videos(
            model,
            prompts,
            Path(tmp) / "out",
            seed=0,
            steps=args.steps,
            frames=args.frames,
            height=args.height,
            width=args.width,
            gallery=False,
        )
        wall = time.perf_counter() - t1
        rows = [r for r in read_manifest(Path(tmp) / "out") if r["status"] == "ok"]
    render = [r["render_seconds"] for r in rows]
    encode = [r["encode_seconds"] for r in rows]
    print(
        json.dumps(
            {
                "benchmark": "sample",
                "model": "tiny-random" if args.model is None else args.model,
                "videos": len(rows),
                "steps": args.steps,
                "frames": args.frames,
                "size": f"{args.height}x{args.width}",
                "device": "cuda" if torch.cuda.is_available() else "cpu",
                "threads": torch.get_num_threads(),
                "cpu": platform.processor() or platform.machine(),
                "model_build_seconds": round(build, 2),
                "render_seconds_per_video": {
                    "mean": round(statistics.mean(render), 3),
                    "min": round(min(render), 3),
                    "max": round(max(render), 3),
                }
                if render
                else None,
                "encode_seconds_per_video": round(statistics.mean(encode), 3) if encode else None,
                "wall_seconds_incl_model_load": round(wall, 2),
                "failed": summary["failed"],
            }
        )
    )


if __name__ == "__main__":
    main()
