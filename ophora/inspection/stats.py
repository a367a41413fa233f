"""Dataset statistics: clips per subset, durations, instruction lengths, scores, phases and the ledger's drops.

``collect_stats`` returns plain data (JSON-ready); ``stats_tables`` renders it for a person and ``plot_stats``
writes PNG plots (matplotlib, Agg backend, imported only when plotting).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from ophora.dataset.ledger import drop_counts, read_ledger
from ophora.dataset.shards import ShardError
from ophora.inspection.catalog import clip_facts, index_scores, iter_all, read_index, shard_inventory

HIST_BINS = 10
MAX_LISTED_PROBLEMS = 100  # unreadable clips listed in the statistics (all are counted)


def summarize(values: list[float]) -> dict[str, Any]:
    """count, min, p10, median, mean, p90, max of ``values`` (None entries when empty)."""
    vals = sorted(v for v in values if v is not None and not math.isnan(v))
    if not vals:
        return {"count": 0, "min": None, "p10": None, "median": None, "mean": None, "p90": None, "max": None}

    def q(p: float) -> float:
        pos = p * (len(vals) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)

    return {
        "count": len(vals),
        "min": vals[0],
        "p10": q(0.1),
        "median": q(0.5),
        "mean": sum(vals) / len(vals),
        "p90": q(0.9),
        "max": vals[-1],
    }


def histogram(values: list[float], bins: int = HIST_BINS) -> dict[str, list[float]]:
    """Equal-width histogram: ``edges`` (bins+1) and ``counts`` (bins)."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return {"edges": [], "counts": []}
    lo, hi = min(vals), max(vals)
    if hi == lo:  # one value (e.g. every clip 49 frames): a narrow window around it, not a 10-unit axis
        pad = abs(lo) * 0.05 or 0.5
        lo, hi = lo - pad, hi + pad
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in vals:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    return {"edges": [lo + i * width for i in range(bins + 1)], "counts": counts}


def _clip_rows(root: str, source: str, problems: list[str]) -> tuple[list[dict[str, Any]], str]:
    """One record per (clip, subset): key, subset, duration, phase, instruction, scores; from the index when it
    exists (fast) or by streaming the json members of every shard. A clip whose facts cannot be read is a line in
    ``problems``, not a record."""
    if source in ("auto", "index"):
        index = read_index(root)
        if len(index) or source == "index":
            rows = []
            for _, r in index.iterrows():
                try:
                    rows.append(
                        {
                            "key": str(r["key"]),
                            "subset": str(r["subset"]),
                            "duration": float(r["duration"]),
                            "phase": None if r["phase"] is None else str(r["phase"]),
                            "instruction": str(r["instruction"] or ""),
                            "scores": index_scores(r),
                        }
                    )
                except (TypeError, ValueError) as e:
                    problems.append(f"index row {r['key']!r}: {e}")
            return rows, "index"
    rows = []
    for subset, sample in iter_all(root, members=("json", "txt"), problems=problems):
        try:
            facts = clip_facts(sample)
        except (ShardError, KeyError) as e:
            problems.append(str(e) if isinstance(e, ShardError) else f"{sample.shard}: {sample.key} has no json")
            continue
        rows.append(
            {
                "key": sample.key,
                "subset": subset,
                "duration": facts.duration,
                "phase": facts.phase,
                "instruction": facts.instruction,
                "scores": facts.scores,
            }
        )
    return rows, "shards"


def collect_stats(root: str, source: str = "auto") -> dict[str, Any]:
    """Statistics of a curation output directory. ``source`` picks where clip facts come from: ``index``,
    ``shards`` (streams every json member) or ``auto`` (the index when one exists)."""
    if source not in ("auto", "index", "shards"):
        raise ValueError(f"stats source must be auto, index or shards, not {source!r}")
    shards = shard_inventory(root)
    problems: list[str] = []
    rows, used = _clip_rows(root, source, problems)
    by_subset: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_subset[r["subset"]].append(r)
    subsets = {}
    for subset in dict.fromkeys([s.subset for s in shards] + list(by_subset)):
        mine = [s for s in shards if s.subset == subset]
        clips = by_subset.get(subset, [])
        subsets[subset] = {
            "clips": len(clips),
            "shards": len(mine),
            "bytes": sum(s.bytes for s in mine),
            "hours": sum(r["duration"] for r in clips) / 3600,
        }
    unique = {r["key"]: r for r in rows}.values()  # a p2ft clip is also in tpt: count each clip once below
    durations = [r["duration"] for r in unique]
    words = [len(r["instruction"].split()) for r in unique]
    score_values: dict[str, list[float]] = defaultdict(list)
    for r in unique:
        for name, v in r["scores"].items():
            score_values[name].append(v)
    return {
        "root": str(root),
        "source": used,
        "subsets": subsets,
        "clips": len(durations),
        "duration_s": {**summarize(durations), "histogram": histogram(durations)},
        "instruction_words": {**summarize(words), "histogram": histogram(words)},
        "scores": {name: {**summarize(v), "histogram": histogram(v)} for name, v in sorted(score_values.items())},
        "phases": dict(Counter(r["phase"] or "(none)" for r in unique).most_common()),
        "ledger": ledger_stats(root),
        "problem_count": len(problems),
        "problems": problems[:MAX_LISTED_PROBLEMS],
    }


def ledger_stats(root: str) -> dict[str, Any]:
    """Sources per status, clips written/dropped, drops per stage ("stage" -> "reason" -> clips) and why
    sources were rejected or failed ("stage: reason" -> sources)."""
    df = read_ledger(root)
    drops: dict[str, dict[str, int]] = defaultdict(dict)
    for label, n in drop_counts(df).most_common():
        stage, _, reason = label.partition(": ")
        drops[stage if reason else "?"][reason or label] = int(n)
    bad = df[df["status"] != "done"]
    return {
        "sources": int(len(df)),
        "status": {k: int(v) for k, v in df["status"].value_counts().items()},
        "clips_written": int(df["clips_written"].fillna(0).sum()),
        "clips_dropped": int(df["clips_dropped"].fillna(0).sum()),
        "drops_by_stage": dict(drops),
        "source_rejections": dict(Counter(_stage_reason(r.stage, r.reason) for r in bad.itertuples())),
        "footage": footage_stats(df),
    }


def footage_stats(df) -> dict[str, Any]:
    """Footage yield from the ledger's ``clip_seconds``/``lost_json`` (rows written before they existed are left
    out): seconds, the share that became clips, seconds lost by "stage: reason", the per-source share spread."""
    rows = df[df["clip_seconds"].notna()] if "clip_seconds" in df else df.iloc[0:0]
    total, clips = float(rows["duration"].fillna(0).sum()), float(rows["clip_seconds"].sum())
    lost: Counter = Counter()
    for text in rows["lost_json"].dropna():
        lost.update(json.loads(text))
    shares = [c / d for c, d in zip(rows["clip_seconds"], rows["duration"].fillna(0)) if d]
    return {
        "source_s": total,
        "clip_s": clips,
        "share": clips / total if total else 0.0,
        "lost_s": dict(lost.most_common()),
        "share_per_source": summarize(shares),
    }


def _stage_reason(stage: str | None, reason: str | None) -> str:
    """ "stage: reason", without doubling a stage the reason already names ("probe: probe: empty file")."""
    stage, reason = stage or "?", reason or ""
    return reason if reason.startswith(f"{stage}: ") else f"{stage}: {reason}"


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def stats_tables(stats: dict[str, Any]):
    """The statistics as a list of rich Tables (subsets, distributions, phases, drops); names that come from the
    data (phases, scores, reasons) are plain printable text."""
    from rich.table import Table

    from ophora.inspection.text import cell

    t_sub = Table(title="Subsets", caption=cell(f"{stats['root']} (clip facts from the {stats['source']})"))
    for c in ("subset", "clips", "shards", "MiB", "hours"):
        t_sub.add_column(c, justify="left" if c == "subset" else "right")
    for name, s in stats["subsets"].items():
        t_sub.add_row(cell(name), str(s["clips"]), str(s["shards"]), f"{s['bytes'] / 2**20:.1f}", f"{s['hours']:.3f}")
    t_dist = Table(title=f"Distributions over {stats['clips']} unique clips")
    cols = ("min", "p10", "median", "mean", "p90", "max")
    t_dist.add_column("measure")
    for c in cols:
        t_dist.add_column(c, justify="right")
    dists = [("duration (s)", stats["duration_s"]), ("instruction (words)", stats["instruction_words"])]
    dists += [(f"score: {k}", v) for k, v in stats["scores"].items()]
    for label, d in dists:
        t_dist.add_row(cell(label), *(_fmt(d[c]) for c in cols))
    t_phase = Table(title="Phases")
    t_phase.add_column("phase")
    t_phase.add_column("clips", justify="right")
    for phase, n in stats["phases"].items():
        t_phase.add_row(cell(phase), str(n))
    led = stats["ledger"]
    t_led = Table(title="Ledger")
    t_led.add_column("what")
    t_led.add_column("count", justify="right")
    for status, n in led["status"].items():
        t_led.add_row(cell(f"sources {status}"), str(n))
    t_led.add_row("clips written", str(led["clips_written"]))
    t_led.add_row("clips dropped", str(led["clips_dropped"]))
    t_drop = Table(title="Drops per stage")
    for c in ("stage", "reason", "count"):
        t_drop.add_column(c, justify="right" if c == "count" else "left")
    for stage, reasons in led["drops_by_stage"].items():
        for reason, n in reasons.items():
            t_drop.add_row(cell(stage), cell(reason), f"{n} clips")
    for label, n in led["source_rejections"].items():
        stage, _, reason = label.partition(": ")
        t_drop.add_row(cell(stage), cell(reason), f"{n} sources")
    foot = led.get("footage") or {}
    t_foot = Table(title="Footage yield")
    t_foot.add_column("where the source seconds went")
    t_foot.add_column("seconds", justify="right")
    t_foot.add_column("share", justify="right")
    total = foot.get("source_s") or 0.0
    if total:
        t_foot.add_row("became clips", f"{foot['clip_s']:.1f}", f"{100 * foot['share']:.1f} %")
        for reason, sec in foot["lost_s"].items():
            t_foot.add_row(f"lost: {cell(reason)}", f"{sec:.1f}", f"{100 * sec / total:.1f} %")
        per = foot["share_per_source"]
    if total and per["count"]:
        t_foot.add_row(
            "share per source (min / median / max)",
            "",
            f"{100 * per['min']:.0f} / {100 * per['median']:.0f} / {100 * per['max']:.0f} %",
        )
    return [t_sub, t_dist, t_phase, t_led, t_drop, t_foot]


def plot_stats(stats: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write PNG plots (durations, instruction lengths, scores, drops per stage) into ``out_dir``; returns them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def hist_plot(ax, hist, title, xlabel):
        edges, counts = hist["edges"], hist["counts"]
        if counts:
            widths = [b - a for a, b in zip(edges, edges[1:])]
            ax.bar(edges[:-1], counts, width=widths, align="edge", edgecolor="black")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("clips")

    for name, key, title, xlabel in (
        ("durations.png", "duration_s", "clip duration", "seconds"),
        ("instruction_words.png", "instruction_words", "instruction length", "words"),
    ):
        fig, ax = plt.subplots(figsize=(5, 3.2))
        hist_plot(ax, stats[key]["histogram"], title, xlabel)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written.append(out / name)
    if stats["scores"]:
        n = len(stats["scores"])
        fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.2), squeeze=False)
        for ax, (score, d) in zip(axes[0], stats["scores"].items()):
            hist_plot(ax, d["histogram"], score, "score")
        fig.tight_layout()
        fig.savefig(out / "scores.png", dpi=100)
        plt.close(fig)
        written.append(out / "scores.png")
    drops = [
        (f"{stage}: {reason}", n) for stage, rs in stats["ledger"]["drops_by_stage"].items() for reason, n in rs.items()
    ]
    fig, ax = plt.subplots(figsize=(6, 0.4 * max(len(drops), 1) + 1.2))
    if drops:
        ax.barh([d[0] for d in drops][::-1], [d[1] for d in drops][::-1])
    ax.set_title("clips dropped per stage and reason")
    ax.set_xlabel("clips")
    fig.tight_layout()
    fig.savefig(out / "drops.png", dpi=100)
    plt.close(fig)
    written.append(out / "drops.png")
    return written


def stats_json(stats: dict[str, Any]) -> str:
    return json.dumps(stats, indent=2, sort_keys=False, default=float)
