"""Benchmark: the curate job next to one plain decode pass of the same files.

    python benchmarks/bench_curate.py [--corpus runs/bench-curate-corpus] [--minutes 2 --videos 5] [--stages all]

Generates (once) a synthetic corpus of about ``videos x minutes`` of video capped at 720p, times
``ffmpeg -i X -f null -`` over every file (the floor: decoding each frame once), then times ``run_curation`` on
an embedded Ray over the same files (Ray start-up reported apart). Prints a table and writes JSON next to the
output (``--json``). Numbers depend on the machine; the goal is curation <= 2x the decode pass.

``--stages backbone`` (the default) times probe -> scenes -> windows -> clip -> write, every optional stage skipped;
``--stages all`` times the whole offline chain (speech, filters, refine with ``--set refine.backend=...``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def decode_pass(videos: list[Path]) -> float:
    """Seconds to decode every file once with ffmpeg (default threading), sequentially."""
    start = time.perf_counter()
    for v in videos:
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(v), "-map", "0:v:0", "-f", "null", "-"], check=True
        )
    return time.perf_counter() - start


def ensure_corpus(corpus: Path, videos: int, minutes: float, seed: int) -> list[dict]:
    from ophora.synthetic.corpus import generate_corpus, load_truth

    if not (corpus / "corpus.json").exists():
        generate_corpus(corpus, videos=videos, seed=seed, minutes=minutes, max_height=720, progress=True)
    return load_truth(corpus)


def as_720p30(corpus: Path, truths: list[dict]) -> list[Path]:
    """The corpus's videos re-encoded once to 1280x720 at 30 fps H.264 (2 s GOP, AAC audio), the shape of a
    typical uploaded surgery video; the synthetic generator mixes sizes, rates and codecs."""
    out = []
    for t in truths:
        src = corpus / t["file"]
        dst = corpus / "720p30" / (Path(t["file"]).stem + ".mp4")
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_suffix(".tmp.mp4")
            subprocess.run(
                [
                    "ffmpeg",
                    "-nostdin",
                    "-v",
                    "error",
                    "-y",
                    "-i",
                    str(src),
                    "-vf",
                    "scale=1280:720:force_original_aspect_ratio=increase,crop=1280:720,fps=30",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-g",
                    "60",
                    "-pix_fmt",
                    "yuv420p",
                    "-c:a",
                    "aac",
                    str(tmp),
                ],
                check=True,
            )
            tmp.replace(dst)
        out.append(dst)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="runs/bench-curate-corpus")
    ap.add_argument("--videos", type=int, default=5)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", default="runs/bench-curate-out")
    ap.add_argument("--profile", default="offline")
    ap.add_argument("--stages", choices=("backbone", "all"), default="backbone")
    ap.add_argument(
        "--set", dest="sets", action="append", default=[], help="config override, e.g. refine.backend=extractive"
    )
    ap.add_argument("--json", default="")
    ap.add_argument("--native", action="store_true", help="use the generator's mixed formats as they are")
    args = ap.parse_args(argv)

    import ray
    from rich.console import Console
    from rich.table import Table

    from ophora.curation.config import OPTIONAL_STAGES, CurateConfig, parse_override
    from ophora.curation.pipeline import run_curation

    overrides = dict(parse_override(o) for o in args.sets)
    if args.stages == "backbone":
        overrides.setdefault("skip", list(OPTIONAL_STAGES))
    config = CurateConfig.load(args.profile, overrides=overrides)

    corpus = Path(args.corpus)
    truths = ensure_corpus(corpus, args.videos, args.minutes, args.seed)
    if args.native:
        files = [corpus / t["file"] for t in truths]
        formats = sorted({f"{t['width']}x{t['height']}@{t['fps']:g} {t['video_codec']}" for t in truths})
    else:
        files, formats = as_720p30(corpus, truths), ["1280x720@30 h264"]
    source_seconds = sum(t["duration"] for t in truths)

    decode_s = decode_pass(files)
    shutil.rmtree(args.out, ignore_errors=True)
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_start_s = time.perf_counter() - t0
    summary = run_curation(config, [str(f) for f in files], args.out, quiet=True)
    ray.shutdown()
    decode_after_s = decode_pass(files)  # again after: a shared machine's load drifts during the run
    decode_s = (decode_s + decode_after_s) / 2
    curate_s = summary["wall_seconds"]
    result = {
        "machine": f"{os.cpu_count()} CPUs",
        "stages": summary["stages"],
        "videos": len(files),
        "formats": formats,
        "source_seconds": round(source_seconds, 1),
        "decode_pass_s": round(decode_s, 2),
        "decode_pass_after_s": round(decode_after_s, 2),
        "ray_start_s": round(ray_start_s, 2),
        "curate_s": round(curate_s, 2),
        "ratio_curate_to_decode": round(curate_s / decode_s, 2),
        "clips": summary["clips_written"],
        "clips_per_s": round(summary["clips_written"] / curate_s, 3),
        "source_s_per_s": round(source_seconds / curate_s, 3),
        "decode_source_s_per_s": round(source_seconds / decode_s, 3),
        "done": summary["done"],
        "rejected": summary["rejected"],
        "failed": summary["failed"],
    }
    table = Table(title="ophora curate benchmark")
    table.add_column("measure")
    table.add_column("value")
    for k, v in result.items():
        table.add_row(k, str(v))
    Console().print(table)
    target = Path(args.json or Path(args.out) / "bench_curate.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
