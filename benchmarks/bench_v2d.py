"""Benchmark: `ophora curate` next to video2dataset (scene split + clipping + WebDataset output) on the same files.

    bash scripts/make-v2d-venv.sh /work/v2d-venv        # once: video2dataset in its own venv, outside the repo
    python benchmarks/bench_v2d.py --v2d-python /work/v2d-venv/bin/python [--repeats 1] [--json runs/bench_v2d.json]

The corpus is bench_curate's (same generator, seed and 720p30 H.264 re-encode, reused when already there: about
5 x 2 min). Both tools run as subprocesses from a cold start, one after the other, and are timed end to end:

- ophora: ``ophora curate FILES --out DIR --profile offline --force --quiet`` with ``--set skip=[...]`` naming
  every optional stage (``config.OPTIONAL_STAGES``), so only the backbone runs: probe -> scenes -> windows -> clip
  -> write (embedded Ray, its start-up included). The stages that ran are read back from summary.json.
- video2dataset 1.3.0 (``benchmarks/v2d_driver.py`` in the v2d venv): its download pass with
  CutDetectionSubsampler (``cuts_are_clips``) -> ClippingSubsampler (6.125 s windows, ``precision=exact``) ->
  ResolutionSubsampler (scale to 480 high, centre crop 720x480) -> FrameSubsampler (8 fps) -> webdataset tars, one
  worker process per CPU, one input video per shard.

What cannot be matched (video2dataset has no setting for it): its cut detector is PySceneDetect's ContentDetector
(threshold 27, min 15 frames) on every frame at native rate, ophora's is AdaptiveDetector on 6 fps / 160 px frames
(plus a dissolve pass); it cuts scenes into windows with no margin at cuts, ophora keeps 0.25 s away; it encodes
with ffmpeg's libx264 defaults (medium, CRF 23), three times over: the exact clip split re-encodes the whole source
at 720p30, then the resize and the fps step each re-encode every clip; ophora encodes each clip once (superfast,
CRF 18) from an exact seek. So clip counts differ: the headline ratio is throughput on the same source seconds, and
``*_clips_crossing_a_cut`` counts clips that overlap a ground-truth cut or dissolve of the synthetic corpus.
``--v2d-precision low`` (keyframe stream copy, inexact clip ends) and ``--v2d-native`` (no resize/fps) give
video2dataset's cheaper modes, whose clips break the 49-frame 720x480 promise.
Prints a table and writes JSON (``--json``, default ``<out>/bench_v2d.json``). Goal: ophora >= 2x v2d.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_curate import as_720p30, ensure_corpus  # the corpus bench_curate times


def probe_clip(path: str) -> str:
    """'WxH@fps N frames' of one mp4 (counted by decoding)."""
    from ophora.video import probe_stream

    f = probe_stream(path)
    return f"{f.width}x{f.height}@{f.fps:g} {f.frames} frames"


def first_clip(tars: list[str], scratch: Path) -> str:
    """Extract the first .mp4 member of the first tar that has one; returns its path ('' if none)."""
    import tarfile

    for tar in sorted(tars):
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                if m.name.endswith(".mp4"):
                    scratch.mkdir(parents=True, exist_ok=True)
                    dst = scratch / Path(m.name).name
                    dst.write_bytes(t.extractfile(m).read())
                    return str(dst)
    return ""


def crossings(spans: list[tuple[str, float, float]], truths: dict[str, dict], tol: float = 0.04) -> int:
    """How many (video stem, start, end) clip spans cross a ground-truth cut: overlap a hard cut's instant or a
    dissolve's [t - d/2, t + d/2] by more than ``tol`` seconds (about a frame) on both sides."""
    n = 0
    for stem, start, end in spans:
        for scene in truths[stem]["scenes"][1:]:
            half = scene["transition_duration"] / 2
            if start + tol < scene["start"] + half and scene["start"] - half < end - tol:
                n += 1
                break
    return n


def ophora_spans(out: Path) -> list[tuple[str, float, float]]:
    """(stem, start, end) of every clip of ``out``'s tpt/ subset (each clip is in tpt/ once)."""
    from ophora.dataset.ledger import read_ledger
    from ophora.dataset.shards import read_index

    ledger = read_ledger(str(out))
    uri_of = dict(zip(ledger["source_id"], ledger["source_uri"]))
    idx = read_index(str(out))
    idx = idx[idx["subset"] == "tpt"]
    return [(Path(uri_of[r.source_id]).stem, float(r.start), float(r.end)) for r in idx.itertuples()]


def v2d_spans(tars: list[str]) -> list[tuple[str, float, float]]:
    """(stem, start, end) of every clip video2dataset wrote, from each sample's json (url and clips)."""
    import tarfile

    spans = []
    for tar in tars:
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                if m.name.endswith(".json"):
                    meta = json.loads(t.extractfile(m).read())
                    ((start, end),) = meta["clips"]
                    spans.append((Path(meta["url"]).stem, float(start), float(end)))
    return spans


def backbone_overrides() -> tuple[list[str], str]:
    """``--set`` arguments that leave out every optional stage, and a note on what they do."""
    from ophora.curation import config

    optional = list(getattr(config, "OPTIONAL_STAGES", ()))
    if not optional or "skip" not in config.CurateConfig.model_fields:
        return [], "this checkout has no 'skip' config: every wired stage ran"
    return ["--set", f"skip=[{','.join(optional)}]"], f"skipped: {', '.join(optional)}"


def run_ophora(files: list[Path], out: Path, profile: str) -> dict:
    sets, note = backbone_overrides()
    shutil.rmtree(out, ignore_errors=True)
    opts = ["--out", str(out), "--profile", profile, "--force", "--quiet", *sets]
    cmd = [str(Path(sys.executable).parent / "ophora"), "curate", *map(str, files), *opts]
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"ophora curate exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    tars = glob.glob(str(out / "**" / "*.tar"), recursive=True)
    return {
        "wall_s": wall,
        "inner_s": summary["wall_seconds"],
        "clips": summary["clips_written"],
        "clips_by_subset": summary.get("clips_by_subset", {}),
        "stages": summary.get("stages", note),
        "skip_note": note,
        "done": summary["done"],
        "failed": summary["failed"],
        "tars": tars,
        "command": "ophora curate FILES " + " ".join(opts),
    }


def run_v2d(v2d_python: str, files: list[Path], out: Path, extra: list[str]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    listing = out / "v2d-inputs.txt"
    listing.write_text("".join(f"{f.resolve()}\n" for f in files))
    dest = out / "v2d"
    opts = ["--out", str(dest), "--processes", str(os.cpu_count() or 1), *extra]
    cmd = [v2d_python, str(ROOT / "benchmarks" / "v2d_driver.py"), "--list", str(listing), *opts]
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("{"):
        raise SystemExit(f"video2dataset exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    res = json.loads(lines[-1])
    if res["successes"] != len(files):
        print(f"warning: video2dataset finished {res['successes']}/{len(files)} videos", file=sys.stderr)
    return {
        "wall_s": wall,
        "inner_s": res["wall_s"],
        "clips": res["clips"],
        "done": res["successes"],
        "config": res["config"],
        "tars": glob.glob(str(dest / "*.tar")),
        "command": f"{v2d_python} benchmarks/v2d_driver.py --list {listing} " + " ".join(opts),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--v2d-python",
        default="/work/v2d-venv/bin/python",
        help="python of the video2dataset venv (scripts/make-v2d-venv.sh)",
    )
    ap.add_argument("--corpus", default="runs/bench-curate-corpus")
    ap.add_argument("--videos", type=int, default=5)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", default="runs/bench-v2d-out")
    ap.add_argument("--profile", default="offline")
    ap.add_argument("--repeats", type=int, default=1, help="alternate the two this many times; the best run counts")
    ap.add_argument(
        "--v2d-precision",
        default="exact",
        choices=["exact", "low", "keyframe_adjusted"],
        help="ClippingSubsampler precision (low = stream copy, cuts land on keyframes)",
    )
    ap.add_argument(
        "--v2d-native",
        action="store_true",
        help="video2dataset without the resize and fps subsamplers (clips stay 1280x720@30)",
    )
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    if not Path(args.v2d_python).exists():
        raise SystemExit(f"{args.v2d_python} not found: create the venv with scripts/make-v2d-venv.sh")

    corpus, out = Path(args.corpus), Path(args.out)
    truths = ensure_corpus(corpus, args.videos, args.minutes, args.seed)
    files = as_720p30(corpus, truths)
    source_seconds = sum(t["duration"] for t in truths)
    truth_of = {Path(t["file"]).stem: t for t in truths}
    v2d_extra = ["--precision", args.v2d_precision] + ([] if args.v2d_native else ["--matched"])

    load_before = os.getloadavg()[0]
    ophora_runs, v2d_runs = [], []
    for _ in range(args.repeats):
        ophora_runs.append(run_ophora(files, out / "ophora", args.profile))
        v2d_runs.append(run_v2d(args.v2d_python, files, out, v2d_extra))
    oph = min(ophora_runs, key=lambda r: r["wall_s"])
    v2d = min(v2d_runs, key=lambda r: r["wall_s"])
    clip_o = first_clip(oph["tars"], out / "probe" / "ophora")
    clip_v = first_clip(v2d["tars"], out / "probe" / "v2d")

    def rate(n: float, s: float) -> float:
        return round(n / s, 3)

    result = {
        "machine": f"{os.cpu_count()} CPUs",
        "load_avg_1m_before": round(load_before, 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "videos": len(files),
        "format": "1280x720@30 h264",
        "source_seconds": round(source_seconds, 1),
        "repeats": args.repeats,
        "ophora_command": oph["command"],
        "ophora_stages": oph["stages"],
        "ophora_wall_s": round(oph["wall_s"], 2),
        "ophora_in_run_s": round(oph["inner_s"], 2),
        "ophora_all_wall_s": [round(r["wall_s"], 2) for r in ophora_runs],
        "ophora_clips": oph["clips"],
        "ophora_clips_per_s": rate(oph["clips"], oph["wall_s"]),
        "ophora_source_s_per_s": rate(source_seconds, oph["wall_s"]),
        "ophora_clip": probe_clip(clip_o) if clip_o else "",
        "v2d_command": v2d["command"],
        "v2d_wall_s": round(v2d["wall_s"], 2),
        "v2d_in_run_s": round(v2d["inner_s"], 2),
        "v2d_all_wall_s": [round(r["wall_s"], 2) for r in v2d_runs],
        "v2d_clips": v2d["clips"],
        "v2d_videos_done": v2d["done"],
        "v2d_clips_per_s": rate(v2d["clips"], v2d["wall_s"]),
        "v2d_source_s_per_s": rate(source_seconds, v2d["wall_s"]),
        "v2d_clip": probe_clip(clip_v) if clip_v else "",
        "ophora_clips_crossing_a_cut": crossings(ophora_spans(out / "ophora"), truth_of),
        "v2d_clips_crossing_a_cut": crossings(v2d_spans(v2d["tars"]), truth_of),
        "throughput_ratio": round(v2d["wall_s"] / oph["wall_s"], 2),
        "clips_per_s_ratio": round((oph["clips"] / oph["wall_s"]) / max(v2d["clips"] / v2d["wall_s"], 1e-9), 2),
        "v2d_config": v2d["config"],
    }

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="ophora curate vs video2dataset (same files)")
    table.add_column("measure")
    table.add_column("value")
    for k, v in result.items():
        if k != "v2d_config":
            table.add_row(k, escape(str(v)))
    Console().print(table)
    target = Path(args.json or out / "bench_v2d.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
