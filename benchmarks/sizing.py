"""Sizing plan: CPU-hours and GPU-hours per stage for a corpus the paper's size, the cluster shape that keeps every
stage busy, and where the bottleneck moves as the cluster grows — recomputed from the benchmarks' JSON outputs.

    python benchmarks/sizing.py --bench benchmarks/sizing_sample                 # the checked-in measurements
    python benchmarks/sizing.py --bench runs/ --set mean_minutes=15 --json sizing.json --markdown docs/scaling.md

``--bench DIR`` holds what the benchmarks write: bench_curate.json (``bench_curate.py --json``), bench_filters.json
(``bench_filters.py --out``), bench_asr.json (``bench_asr.py --out``) and, optionally, bench_gpu.json with measured
GPU figures that replace the assumptions of the same name. Every number that is not measured here (no GPU was lent
to this project yet) is an assumption in :data:`ASSUMPTIONS`, printed with its value and overridable with
``--set name=value``; the output says of every input whether it was measured (file and field) or assumed.

The model: curation runs as two phases, because dedup is a barrier (no window reaches refine before every window
has its signature): phase A = probe, transcribe, scenes, windows, filters, refine, dedup signatures; phase B =
clip, write. A phase on c CPUs and g GPUs takes max(CPU-h / c, GPU-h / g) hours. Training stages are GPU-bound;
their cost per sample comes from CogVideoX-2b's FLOPs at an assumed model-FLOPs utilisation.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

# Every figure the benchmarks cannot measure on this project's CPU-only machine. Change with --set NAME=VALUE.
ASSUMPTIONS: dict[str, float] = {
    # corpus (the paper: 9,819 source videos -> 160K TPT clips, 28K of them P2FT-clean)
    "videos": 9819,
    "mean_minutes": 10.0,  # mean source duration (the paper gives none; narrated surgery talks: 5-20 min)
    "longest_minutes": 120.0,  # the longest source: one scene-detection actor reads it start to end
    "tpt_clips": 160_000,
    "p2ft_clips": 28_000,
    "refine_keep": 0.5,  # share of windows reaching refine that it keeps as a surgical action
    "source_mbit_s": 4.0,  # source bitrate, for the object-store read volume
    "node_gbit_s": 10.0,  # each node's network
    # GPU stages of curation, per GPU (H100 class), not measured here
    "asr_gpu_x_realtime": 150.0,  # faster-whisper large-v3 fp16, batched: audio seconds per GPU-second
    "quality_gpu_windows_s": 150.0,  # open_clip ViT-L-14 on 8 frames a window
    "refine_gpu_windows_s": 10.0,  # Qwen2.5-7B-Instruct, ~40 new tokens a window, batched
    # training and sampling: CogVideoX-2b geometry (49x480x720 -> 13x60x90 latents, 2x2 patches) and the GPU
    "params": 1.69e9,
    "layers": 30,
    "hidden": 1920,
    "video_tokens": 17_550,
    "text_tokens": 226,
    "gpu_peak_tflops": 989.0,  # H100 SXM dense bf16
    "train_mfu": 0.35,
    "sample_mfu": 0.45,
    "recompute": 4 / 3,  # gradient checkpointing re-runs the forward pass
    "vae_encode_s": 1.0,  # GPU-seconds to encode one 49-frame clip (precompute)
    "vae_decode_s": 3.0,  # GPU-seconds to decode one generated video
    "tpt_steps": 65_000,
    "p2ft_steps": 4_500,
    "global_batch": 128,
    "micro_batch": 1,  # clips per GPU per micro-step (global batch / GPUs / micro_batch = grad accum)
    "sample_videos": 120,  # e.g. the 12 cataract phases x 10 seeds
    "sample_steps": 50,
    # node shapes: cluster/kuberay/raycluster.yaml's worker groups
    "cpu_node_cpus": 16,
    "gpu_node_gpus": 1,
    "gpu_node_cpus": 12,
    "gpu_node_cost": 8.0,  # one GPU node costs this many CPU nodes (for the cheapest shape)
    "target_hours": 24.0,  # curation wall-clock goal for the recommended shape
}


def load_bench(folder: Path) -> tuple[dict, dict[str, str]]:
    """The measured inputs from a folder of benchmark JSONs; returns (values, where each came from)."""

    def read(name: str) -> dict:
        path = folder / name
        if not path.exists():
            sys.exit(f"sizing: {path} missing (run the benchmark that writes it, or point --bench elsewhere)")
        return json.loads(path.read_text())

    curate, filters, asr = read("bench_curate.json"), read("bench_filters.json"), read("bench_asr.json")
    cpus = float(str(curate["machine"]).split()[0])
    m: dict[str, float] = {}
    src: dict[str, str] = {}

    def put(key: str, value: float, where: str) -> None:
        m[key], src[key] = float(value), where

    # The backbone run (probe, scenes, windows, clip, write) on `cpus` CPUs, all of them busy: an upper bound.
    put(
        "backbone_cpu_s_per_source_s",
        cpus * curate["curate_s"] / curate["source_seconds"],
        "bench_curate.json: machine x curate_s / source_seconds",
    )
    put(
        "windows_per_source_s",
        curate["clips"] / curate["source_seconds"],
        "bench_curate.json: clips / source_seconds (no filter ran: every window became a clip)",
    )
    per_clip = filters["ms_per_clip"]
    put("clip_cpu_s", per_clip["transcode"]["cpu"] / 1000, "bench_filters.json: ms_per_clip.transcode.cpu")
    for stage in ("dynamics", "quality", "privacy", "dedup"):
        put(f"{stage}_cpu_s", per_clip[stage]["cpu"] / 1000, f"bench_filters.json: ms_per_clip.{stage}.cpu")
    put(
        "asr_cpu_x_realtime",
        asr["asr"]["audio_s_per_cpu_s"],
        f"bench_asr.json: asr.audio_s_per_cpu_s ({asr['asr']['model']})",
    )
    gpu = folder / "bench_gpu.json"
    if gpu.exists():
        for key, value in json.loads(gpu.read_text()).items():
            if key in ASSUMPTIONS:
                put(key, value, f"bench_gpu.json: {key}")
    return m, src


def _per_gpu(ratio: float) -> str:
    return "CPUs only" if math.isinf(ratio) else f"{ratio:.1f} CPUs per GPU"


def plan(measured: dict[str, float], assumed: dict[str, float]) -> dict:
    """Every number of the sizing plan, as plain data (the printed tables and the docs are views of it)."""
    a = {**assumed, **{k: v for k, v in measured.items() if k in assumed}}
    m = measured
    source_s = a["videos"] * a["mean_minutes"] * 60
    windows = source_s * m["windows_per_source_s"]
    tpt = min(a["tpt_clips"], windows)
    refined = min(windows, tpt / a["refine_keep"])
    # scenes & co. = the backbone less its clip transcodes (write is a few ms a clip, counted here too)
    scenes_cpu = max(0.0, m["backbone_cpu_s_per_source_s"] - m["clip_cpu_s"] * m["windows_per_source_s"])

    tokens = a["video_tokens"] + a["text_tokens"]
    fwd_flops = 2 * a["params"] * tokens + 4 * a["layers"] * tokens**2 * a["hidden"]
    train_s = 3 * fwd_flops * a["recompute"] / (a["gpu_peak_tflops"] * 1e12 * a["train_mfu"])
    sample_s = a["sample_steps"] * 2 * fwd_flops / (a["gpu_peak_tflops"] * 1e12 * a["sample_mfu"]) + a["vae_decode_s"]

    def row(stage, phase, resource, units, unit_name, seconds_per_unit):
        hours = units * seconds_per_unit / 3600
        return {
            "stage": stage,
            "phase": phase,
            "resource": resource,
            "units": round(units),
            "unit": unit_name,
            "seconds_per_unit": seconds_per_unit,
            "cpu_hours": hours if resource == "CPU" else 0.0,
            "gpu_hours": hours if resource == "GPU" else 0.0,
        }

    stages = [
        row("transcribe (large-v3)", "A", "GPU", source_s, "source s", 1 / a["asr_gpu_x_realtime"]),
        row("probe+scenes+windows+write", "A", "CPU", source_s, "source s", scenes_cpu),
        row("dynamics", "A", "CPU", windows, "window", m["dynamics_cpu_s"]),
        row("quality (heuristics)", "A", "CPU", windows, "window", m["quality_cpu_s"]),
        row("quality (open_clip)", "A", "GPU", windows, "window", 1 / a["quality_gpu_windows_s"]),
        row("privacy (OCR, faces)", "A", "CPU", windows, "window", m["privacy_cpu_s"]),
        row("dedup signatures", "A", "CPU", windows, "window", m["dedup_cpu_s"]),
        row("refine (LLM)", "A", "GPU", refined, "window", 1 / a["refine_gpu_windows_s"]),
        row("clip (ffmpeg)", "B", "CPU", tpt, "clip", m["clip_cpu_s"]),
        row("precompute (VAE, T5)", "train", "GPU", tpt, "clip", a["vae_encode_s"]),
        row("TPT", "train", "GPU", a["tpt_steps"] * a["global_batch"], "sample", train_s),
        row("P2FT", "train", "GPU", a["p2ft_steps"] * a["global_batch"], "sample", train_s),
        row("sample", "sample", "GPU", a["sample_videos"], "video", sample_s),
    ]
    phases = {
        p: {
            "cpu_hours": sum(r["cpu_hours"] for r in stages if r["phase"] == p),
            "gpu_hours": sum(r["gpu_hours"] for r in stages if r["phase"] == p),
        }
        for p in ("A", "B")
    }
    cpu_only_asr_hours = source_s / m["asr_cpu_x_realtime"] / 3600

    def curation_hours(cpus: float, gpus: float) -> tuple[float, list[str]]:
        total, binds = 0.0, []
        for p in ("A", "B"):
            cpu_t, gpu_t = phases[p]["cpu_hours"] / cpus, phases[p]["gpu_hours"] / gpus
            total += max(cpu_t, gpu_t)
            binds.append("CPU" if cpu_t >= gpu_t else "GPU")
        return total, binds

    def shape(cpu_nodes: int, gpu_nodes: int) -> tuple[float, float]:
        return (cpu_nodes * a["cpu_node_cpus"] + gpu_nodes * a["gpu_node_cpus"], gpu_nodes * a["gpu_node_gpus"])

    best = None  # the cheapest (in CPU-node equivalents per hour x hours) shape that meets the target
    for g in range(1, 513):
        for k in range(0, 1025):
            hours, _ = curation_hours(*shape(k, g))
            if hours <= a["target_hours"]:
                cost = (k + g * a["gpu_node_cost"]) * hours
                if best is None or cost < best[0] - 1e-9:
                    best = (cost, k, g, hours)
                break  # more CPU nodes at this g only cost more
    rec = None
    if best:
        _, k, g, hours = best
        cpus, gpus = shape(k, g)
        pools = []
        for r in stages[:9]:
            ph = phases[r["phase"]]
            share = (
                r["cpu_hours"] / ph["cpu_hours"] * cpus
                if r["resource"] == "CPU"
                else r["gpu_hours"] / ph["gpu_hours"] * gpus
            )
            pools.append(
                {"stage": r["stage"], "phase": r["phase"], "resource": r["resource"], "share": round(share, 2)}
            )
        rec = {
            "cpu_nodes": k,
            "gpu_nodes": g,
            "cpus": cpus,
            "gpus": gpus,
            "curation_hours": round(hours, 1),
            "binds": curation_hours(cpus, gpus)[1],
            "pools": pools,
        }

    balance = {
        p: (phases[p]["cpu_hours"] / phases[p]["gpu_hours"] if phases[p]["gpu_hours"] else math.inf) for p in phases
    }
    floor_h = a["longest_minutes"] * 60 * scenes_cpu / 3600  # one source's scene pass is one actor's serial work
    read_tb = source_s * a["source_mbit_s"] / 8 / 1e6  # terabytes read from the object store

    growth = []
    # CPU nodes per GPU node that balance phase A (a GPU node brings CPUs of its own)
    ratio = max(0, math.ceil((balance["A"] * a["gpu_node_gpus"] - a["gpu_node_cpus"]) / a["cpu_node_cpus"]))
    for g in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        cpus, gpus = shape(ratio * g, g)
        hours, binds = curation_hours(cpus, gpus)
        net_h = read_tb * 1e12 / ((ratio * g + g) * a["node_gbit_s"] / 8 * 1e9) / 3600
        limits = {"compute": hours, "longest source": floor_h, "network": net_h}
        bound = max(limits, key=limits.get)
        train_gpus = min(gpus, a["global_batch"] / a["micro_batch"])
        tpt_days = stages[10]["gpu_hours"] / train_gpus / 24
        growth.append(
            {
                "gpu_nodes": g,
                "cpu_nodes": ratio * g,
                "cpus": cpus,
                "gpus": gpus,
                "curation_hours": round(max(limits.values()), 2),
                "curation_bound": bound if bound != "compute" else f"compute ({binds[0]} / {binds[1]})",
                "tpt_days": round(tpt_days, 2),
                "tpt_bound": "GPUs"
                if gpus < a["global_batch"] / a["micro_batch"]
                else f"global batch {int(a['global_batch'])} (GPUs past it idle)",
            }
        )
    fixed_gpu = []
    g_fixed = rec["gpu_nodes"] if rec else 8
    for k in (0, 1, 2, 4, 8, 16, 32, 64, 128):
        cpus, gpus = shape(k, g_fixed)
        hours, binds = curation_hours(cpus, gpus)
        fixed_gpu.append(
            {
                "gpu_nodes": g_fixed,
                "cpu_nodes": k,
                "cpus": cpus,
                "curation_hours": round(hours, 2),
                "bound": f"{binds[0]} / {binds[1]}",
            }
        )

    return {
        "assumptions": a,
        "measured": m,
        "source_hours": source_s / 3600,
        "windows": round(windows),
        "tpt_clips": round(tpt),
        "refined_windows": round(refined),
        "train_s_per_sample": train_s,
        "sample_s_per_video": sample_s,
        "fwd_tflop_per_sample": fwd_flops / 1e12,
        "stages": stages,
        "phases": phases,
        "cpu_per_gpu_to_balance": balance,
        "cpu_only_asr_cpu_hours": cpu_only_asr_hours,
        "recommended": rec,
        "longest_source_floor_hours": floor_h,
        "read_tb": read_tb,
        "growth": growth,
        "growth_cpu_nodes_per_gpu_node": ratio,
        "fixed_gpu": fixed_gpu,
    }


def markdown(p: dict, sources: dict[str, str], command: str) -> str:
    a = p["assumptions"]
    out = [
        f"Computed by `{command}`.",
        "",
        f"Corpus: {int(a['videos']):,} source videos x {a['mean_minutes']:g} min mean = "
        f"{p['source_hours']:,.0f} source hours -> {p['windows']:,} candidate windows (the measured "
        f"{p['measured']['windows_per_source_s'] * 60:.2f} windows per source minute) -> {p['refined_windows']:,} "
        f"reach refine -> {p['tpt_clips']:,} TPT clips.",
        "",
        "| stage | phase | on | units | s per unit | CPU-h | GPU-h |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in p["stages"]:
        out.append(
            f"| {r['stage']} | {r['phase']} | {r['resource']} | {r['units']:,} {r['unit']} | "
            f"{r['seconds_per_unit']:.4g} | {r['cpu_hours']:,.0f} | {r['gpu_hours']:,.0f} |"
        )
    cpu = sum(r["cpu_hours"] for r in p["stages"])
    gpu = sum(r["gpu_hours"] for r in p["stages"])
    out += [
        f"| **total** | | | | | **{cpu:,.0f}** | **{gpu:,.0f}** |",
        "",
        f"Phase A (before the dedup barrier): {p['phases']['A']['cpu_hours']:,.0f} CPU-h, "
        f"{p['phases']['A']['gpu_hours']:,.0f} GPU-h -> {p['cpu_per_gpu_to_balance']['A']:.0f} CPUs per GPU keep "
        f"both busy. Phase B: {p['phases']['B']['cpu_hours']:,.0f} CPU-h, {p['phases']['B']['gpu_hours']:,.0f} "
        f"GPU-h -> {_per_gpu(p['cpu_per_gpu_to_balance']['B'])}. Transcribing on CPUs instead "
        f"(the measured bundled tiny.en) would cost {p['cpu_only_asr_cpu_hours']:,.0f} CPU-h.",
        f"Training: {p['fwd_tflop_per_sample']:.0f} TFLOP per forward pass of one 49x480x720 sample -> "
        f"{p['train_s_per_sample']:.2f} GPU-s per training sample at {a['train_mfu']:.0%} MFU; "
        f"{p['sample_s_per_video']:.0f} GPU-s per generated video.",
        "",
    ]
    rec = p["recommended"]
    if rec:
        out += [
            f"**Shape for curation in <= {a['target_hours']:g} h** (cheapest, a GPU node costing "
            f"{a['gpu_node_cost']:g} CPU nodes): GPU nodes ({int(a['gpu_node_gpus'])} GPU + "
            f"{int(a['gpu_node_cpus'])} CPUs each) x {rec['gpu_nodes']} + CPU nodes ({int(a['cpu_node_cpus'])} "
            f"CPUs each) x {rec['cpu_nodes']} = {rec['cpus']:g} CPUs, {rec['gpus']:g} GPUs -> {rec['curation_hours']} h "
            f"(phase A bound by {rec['binds'][0]}, phase B by {rec['binds'][1]}). Pools that keep every stage "
            "busy (resources each stage should hold; set `resources.<stage>.concurrency` x `num_cpus`/`num_gpus`"
            " to these):",
            "",
            "| stage | phase | CPUs or GPUs |",
            "|---|---|---:|",
        ]
        out += [f"| {q['stage']} | {q['phase']} | {q['share']:g} {q['resource']} |" for q in rec["pools"]]
        out.append("")
    out += [
        f"**As the cluster grows** ({p['growth_cpu_nodes_per_gpu_node']} CPU nodes per GPU node, phase A's "
        f"balance). Floors that no node count lowers: the longest source ({a['longest_minutes']:g} min) is one "
        f"actor's scene pass = {p['longest_source_floor_hours']:.2f} h; reading {p['read_tb']:.1f} TB at "
        f"{a['node_gbit_s']:g} Gbit/s per node.",
        "",
        "| GPU nodes | CPU nodes | curation h | curation bound (phase A / B) | TPT days | TPT bound |",
        "|---:|---:|---:|---|---:|---|",
    ]
    out += [
        f"| {r['gpu_nodes']} | {r['cpu_nodes']} | {r['curation_hours']} | {r['curation_bound']} | "
        f"{r['tpt_days']} | {r['tpt_bound']} |"
        for r in p["growth"]
    ]
    out += [
        "",
        f"With the GPU nodes fixed at {p['fixed_gpu'][0]['gpu_nodes']} (the shape above), adding CPU nodes:",
        "",
        "| CPU nodes | CPUs | curation h | bound (phase A / B) |",
        "|---:|---:|---:|---|",
    ]
    out += [f"| {r['cpu_nodes']} | {r['cpus']:g} | {r['curation_hours']} | {r['bound']} |" for r in p["fixed_gpu"]]
    out += [
        "",
        "Inputs (measured = a benchmark's JSON on this project's 2-CPU machine; assumed = not measurable "
        "here, override with `--set`):",
        "",
        "| input | value | from |",
        "|---|---:|---|",
    ]
    out += [f"| {k} | {v:.4g} | measured: {sources[k]} |" for k, v in p["measured"].items()]
    out += [f"| {k} | {v:,.6g} | {'measured: ' + sources[k] if k in sources else 'assumed'} |" for k, v in a.items()]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--bench",
        type=Path,
        default=Path("benchmarks/sizing_sample"),
        help="folder with bench_curate.json, bench_filters.json, bench_asr.json [, bench_gpu.json]",
    )
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override an assumption (repeatable); names: " + ", ".join(ASSUMPTIONS),
    )
    ap.add_argument("--json", type=Path, help="write the plan as JSON here")
    ap.add_argument(
        "--markdown",
        type=Path,
        help="write the plan's tables (markdown) here, between the markers "
        "<!-- sizing:begin --> and <!-- sizing:end --> when the file has them",
    )
    args = ap.parse_args(argv)
    assumed = dict(ASSUMPTIONS)
    for pair in args.sets:
        name, eq, value = pair.partition("=")
        if not eq or name not in ASSUMPTIONS:
            ap.error(f"--set {pair!r}: expected NAME=VALUE with NAME one of the assumptions")
        assumed[name] = float(value)
    bench = args.bench if args.bench.exists() else Path(__file__).resolve().parent.parent / args.bench
    measured, sources = load_bench(bench)
    result = plan(measured, assumed)
    command = " ".join(["python benchmarks/sizing.py", f"--bench {args.bench}", *[f"--set {s}" for s in args.sets]])
    text = markdown(result, sources, command)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float) + "\n")
    if args.markdown:
        old = args.markdown.read_text() if args.markdown.exists() else ""
        begin, end = "<!-- sizing:begin -->", "<!-- sizing:end -->"
        if begin in old and end in old:
            text = old[: old.index(begin) + len(begin)] + "\n" + text + old[old.index(end) :]
        args.markdown.write_text(text)
    return result


if __name__ == "__main__":
    main()
