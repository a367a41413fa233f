"""Benchmark: the curate job next to one plain decode pass of the same files.

    python benchmarks/bench_curate.py [--corpus runs/bench-curate-corpus] [--minutes 2 --videos 5] [--stages all]

Generates (once) a synthetic corpus of about ``videos x minutes`` of video, re-encoded to 720p30 H.264, times
``ffmpeg -i X -map 0:v:0 -f null -`` over every file (the floor: decoding each frame once), then times
``ophora curate`` over the same files as a user runs it (a fresh process; Ray's start and stop included), with its
process tree sampled: CPU-seconds by stage (each stage's ffmpeg included), Ray's own, and the peak RSS. Prints a
table and writes JSON next to the output (``--json``). Numbers depend on the machine.

``--scale 4,16`` also runs the corpus 4 and 16 times over (distinct stream copies) and prints the fixed cost of a
run and the cost per source-minute.

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


def copies(files: list[Path], times: int, root: Path) -> list[Path]:
    """``times`` distinct files per source (stream copies with a different title: other bytes, other source ids,
    the same frames), made once."""
    out = []
    for k in range(times):
        for f in files:
            dst = root / f"x{times}" / f"{f.stem}-{k}{f.suffix}"
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(
                    ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(f), "-map", "0", "-c", "copy"]
                    + ["-metadata", f"title=copy {k}", str(dst)],
                    check=True,
                )
            out.append(dst)
    return out


def long_source(src: Path, seconds: float, minutes: float, root: Path) -> Path:
    """``src`` (``seconds`` long) joined to itself (stream copy) until it lasts ``minutes``, made once."""
    dst = root / f"long-{minutes:g}min{src.suffix}"
    if not dst.exists():
        times = max(1, round(minutes * 60 / seconds))
        listing = root / "long.txt"
        listing.write_text(f"file '{src.resolve()}'\n" * times)
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
            + ["-map", "0", "-c", "copy", str(dst)],
            check=True,
        )
    return dst


def curate_cli(files: list[Path], out: str, profile: str, sets: list[str]) -> dict:
    """``ophora curate`` as a user runs it (a fresh process: Ray's start and stop included), its process tree
    sampled: wall seconds, CPU-seconds by stage and the tree's peak RSS."""
    from process_tree import run_sampled

    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "ophora.cli", "curate", *map(str, files), "--out", out, "--profile", profile, "-q"]
    for o in sets:
        cmd += ["--set", o]
    wall, tree = run_sampled(cmd, stdout=subprocess.DEVNULL)
    summary = json.loads((Path(out) / "summary.json").read_text())
    return {"wall_s": round(wall, 2), "in_run_s": summary["wall_seconds"], "clips": summary["clips_written"], **tree}


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
    ap.add_argument("--scale", default="", help="also run the corpus this many times over, e.g. 4,16")
    ap.add_argument(
        "--long", type=float, default=0, help="also curate one source this many minutes long, for peak memory"
    )
    ap.add_argument("--json", default="")
    ap.add_argument("--native", action="store_true", help="use the generator's mixed formats as they are")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ophora.curation.config import OPTIONAL_STAGES

    sets = list(args.sets)
    if args.stages == "backbone" and not any(o.startswith("skip=") for o in sets):
        sets.append("skip=[" + ",".join(OPTIONAL_STAGES) + "]")

    corpus = Path(args.corpus)
    truths = ensure_corpus(corpus, args.videos, args.minutes, args.seed)
    if args.native:
        files = [corpus / t["file"] for t in truths]
        formats = sorted({f"{t['width']}x{t['height']}@{t['fps']:g} {t['video_codec']}" for t in truths})
    else:
        files, formats = as_720p30(corpus, truths), ["1280x720@30 h264"]
    source_seconds = sum(t["duration"] for t in truths)

    decode_s = decode_pass(files)
    run = curate_cli(files, args.out, args.profile, sets)
    decode_after_s = decode_pass(files)  # again after: a shared machine's load drifts during the run
    decode_s = (decode_s + decode_after_s) / 2
    result = {
        "machine": f"{os.cpu_count()} CPUs",
        "stages": args.stages,
        "sets": sets,
        "videos": len(files),
        "formats": formats,
        "source_seconds": round(source_seconds, 1),
        "decode_pass_s": round(decode_s, 2),
        "decode_pass_after_s": round(decode_after_s, 2),
        "curate_cli_s": run["wall_s"],
        "curate_in_run_s": run["in_run_s"],
        "ratio_curate_to_decode": round(run["wall_s"] / decode_s, 2),
        "x_realtime": round(source_seconds / run["wall_s"], 2),
        "clips": run["clips"],
        "clips_per_s": round(run["clips"] / run["wall_s"], 3),
        "cpu_s_by_label": run["cpu_s"],
        "cpu_s_total": run["cpu_s_total"],
        "peak_rss_mb": run["peak_rss_mb"],
    }
    if args.scale:  # fixed cost per run and cost per source-minute, from the 1x run and each larger one
        rows = [{"times": 1, "source_min": source_seconds / 60, **run}]
        for times in [int(x) for x in args.scale.split(",") if x]:
            more = copies(files, times, corpus)
            rows.append(
                {
                    "times": times,
                    "source_min": times * source_seconds / 60,
                    **curate_cli(more, args.out, args.profile, sets),
                }
            )
        for r in rows[1:]:
            per_min = (r["wall_s"] - rows[0]["wall_s"]) / (r["source_min"] - rows[0]["source_min"])
            r["s_per_source_min"] = round(per_min, 2)
            r["fixed_s"] = round(rows[0]["wall_s"] - per_min * rows[0]["source_min"], 2)
        result["scale"] = [
            {
                k: r.get(k)
                for k in (
                    "times",
                    "source_min",
                    "wall_s",
                    "clips",
                    "cpu_s_total",
                    "peak_rss_mb",
                    "s_per_source_min",
                    "fixed_s",
                )
            }
            for r in rows
        ]
    if args.long:  # peak RSS of the tree for one short source and for one long one (the same frames over and over)
        short = curate_cli(files[:1], args.out, args.profile, sets)
        long = curate_cli(
            [long_source(files[0], truths[0]["duration"], args.long, corpus)], args.out, args.profile, sets
        )
        result["memory"] = {
            "short_source_min": round(truths[0]["duration"] / 60, 1),
            "short_peak_rss_mb": short["peak_rss_mb"],
            "long_source_min": args.long,
            "long_peak_rss_mb": long["peak_rss_mb"],
            "long_wall_s": long["wall_s"],
            "long_clips": long["clips"],
            "ratio": round(long["peak_rss_mb"] / short["peak_rss_mb"], 2),
        }
    table = Table(title="ophora curate benchmark")
    table.add_column("measure")
    table.add_column("value")
    for k, v in result.items():
        table.add_row(k, escape(str(v)))
    Console().print(table)
    target = Path(args.json or Path(args.out) / "bench_curate.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
