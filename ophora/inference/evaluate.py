"""Score generated videos against a reference set: frame-level FID, FVD and CLIPScore, overall and per phase.

Generated videos are a folder of mp4 with sidecar json (what ``ophora sample`` writes: ``prompt``/``instruction``
and ``phase``) or txt. The reference is a curation output (shards read through ``ophora.dataset.shards``), one
shard file, a folder of shards, or a folder of mp4 (+ json/txt sidecars). Results go to ``evaluation.json`` and
``evaluation.png`` under ``out_dir``. A figure is labelled comparable to published ones only when its network's
weights are a known published detector (features.KNOWN_WEIGHTS); every other figure says "not comparable" in the
JSON, the table and the plot. With a reference of training clips, a memorisation audit (memorisation.py) lists
each generated video's nearest training clips and flags frames that copy one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ophora.bounded_json import JSONRefused
from ophora.bounded_json import loads as bounded_loads
from ophora.inference.features import FeatureNet, load_feature_net
from ophora.inference.memorisation import FrameSet
from ophora.inference.memorisation import audit as memorisation_audit
from ophora.inference.metrics import clip_score, frechet_distance_of
from ophora.inference.openclip_embed import OpenClipEmbedder, load_clip
from ophora.inference.video_io import pick_frames
from ophora.video import VideoError, decode_frames

RESULTS = "evaluation.json"
PLOT = "evaluation.png"
NOT_COMPARABLE = "not comparable"
METRIC_NETWORK = {"fid": "fid", "fvd": "fvd", "clip_score": "clip"}
MAX_DECODED_FRAMES = 256  # longer reference clips are scored on their first 256 frames


@dataclass
class ScoredVideo:
    """One video to score: its id, its mp4 (bytes or path), its instruction and its phase (None if unknown)."""

    id: str
    video: bytes | Path | None
    text: str = ""
    phase: str | None = None
    problem: str = ""


def _sidecar_facts(mp4: Path) -> tuple[str, str | None, str]:
    """(text, phase, problem) from ``<stem>.json`` (prompt/instruction, phase) or ``<stem>.txt``."""
    side_json, side_txt = mp4.with_suffix(".json"), mp4.with_suffix(".txt")
    text, phase, problem = "", None, ""
    if side_json.is_file() and not side_json.is_symlink():
        try:
            meta = bounded_loads(side_json.read_bytes(), side_json.name, want=dict)
            text = str(meta.get("prompt") or meta.get("instruction") or "")
            phase = meta["phase"] if isinstance(meta.get("phase"), str) and meta["phase"] else None
        except (JSONRefused, OSError) as e:
            problem = str(e)
    if not text and side_txt.is_file() and not side_txt.is_symlink():
        text = side_txt.read_text(encoding="utf-8", errors="replace").strip()
    return text, phase, problem


def folder_videos(folder: str | Path, limit: int | None = None) -> Iterator[ScoredVideo]:
    """Every ``*.mp4`` under ``folder`` (sorted; links skipped) with its sidecar's text and phase."""
    base = Path(folder)
    if not base.is_dir():
        raise FileNotFoundError(f"{folder}: not a directory")
    mp4s = [p for p in sorted(base.rglob("*.mp4")) if p.is_file() and not p.is_symlink()]
    for mp4 in mp4s[:limit]:
        text, phase, problem = _sidecar_facts(mp4)
        yield ScoredVideo(str(mp4.relative_to(base).with_suffix("")), mp4, text, phase, problem)


def shard_videos(shards: list[str], limit: int | None = None) -> Iterator[ScoredVideo]:
    """The clips of ``shards`` (instruction from ``.txt``, phase from ``.json``); a broken shard is one problem."""
    from ophora.dataset.shards import ShardError, iter_samples

    count = 0
    for shard in shards:
        try:
            for sample in iter_samples(shard, members=("mp4", "txt", "json"), strict=False):
                if limit is not None and count >= limit:
                    return
                count += 1
                item = ScoredVideo(sample.key, sample.members.get("mp4"))
                try:
                    item.text = sample.instruction
                    phase = sample.meta.get("phase")
                    item.phase = phase if isinstance(phase, str) and phase else None
                except (KeyError, ShardError) as e:
                    item.problem = f"unreadable metadata: {e}"
                yield item
        except ShardError as e:
            yield ScoredVideo(shard, None, problem=str(e))


def reference_videos(
    reference: str | Path, subset: str | None = None, limit: int | None = None
) -> tuple[str, Iterator[ScoredVideo]]:
    """(what the reference is, its videos): a curation output root (``subset``, default ``tpt`` or the first
    present), a ``.tar`` shard, a folder of shards, or a folder of mp4."""
    from ophora.dataset.shards import SHARD_SUFFIX, SUBSETS, list_shards

    ref = str(reference)
    if ref.endswith(SHARD_SUFFIX):
        return f"shard {ref}", shard_videos([ref], limit)
    by_subset = {s: list_shards(ref, s) for s in ([subset] if subset else SUBSETS)}
    present = [s for s, shards in by_subset.items() if shards]
    if present:
        chosen = subset or ("tpt" if "tpt" in present else present[0])
        return f"shards {ref} subset {chosen}", shard_videos(by_subset[chosen], limit)
    if subset:
        raise FileNotFoundError(f"{ref}: no shards in subset {subset!r}")
    loose = sorted(str(p) for p in Path(ref).glob(f"*{SHARD_SUFFIX}")) if Path(ref).is_dir() else []
    if loose:
        return f"shards {ref}", shard_videos(loose, limit)
    return f"mp4 folder {ref}", folder_videos(ref, limit)


@dataclass
class _Scored:
    """Features gathered for one set of videos."""

    frame_feats: list[np.ndarray]
    clip_feats: list[np.ndarray]
    clip_scores: list[tuple[float, float]]
    phases: list[str | None]
    problems: list[str]
    ids: list[str]
    texts: list[str]

    def frame_set(self) -> FrameSet:
        return FrameSet(self.ids, self.frame_feats, self.texts, self.phases)


def _score_videos(
    videos: Iterator[ScoredVideo],
    fid_net,
    fvd_net,
    clip,
    frames_per_video: int,
    fvd_frames: int,
    on_video: Callable[[], None],
) -> _Scored:
    out = _Scored([], [], [], [], [], [], [])
    text_cache: dict[str, np.ndarray] = {}
    for item in videos:
        if item.problem and item.video is None:
            out.problems.append(f"{item.id}: {item.problem}")
            continue
        try:
            frames = decode_frames(item.video, max_frames=MAX_DECODED_FRAMES)
        except VideoError as e:
            out.problems.append(f"{item.id}: {e}")
            continue
        picked = pick_frames(frames, frames_per_video)
        out.phases.append(item.phase)
        out.ids.append(item.id)
        out.texts.append(item.text)
        out.frame_feats.append(fid_net.features(picked) if fid_net else np.zeros((len(picked), 0)))
        out.clip_feats.append(fvd_net.features(pick_frames(frames, fvd_frames)[None]) if fvd_net else np.zeros((1, 0)))
        if clip is not None:
            if not item.text:
                out.problems.append(f"{item.id}: no prompt text; left out of CLIPScore")
                out.clip_scores.append((float("nan"), float("nan")))
            else:
                if item.text not in text_cache:
                    text_cache[item.text] = clip.texts([item.text])[0]
                out.clip_scores.append(clip_score(clip.frames(picked), text_cache[item.text]))
        on_video()
    return out


def _distances(
    gen: _Scored,
    ref: _Scored,
    gen_idx: list[int],
    ref_idx: list[int],
    warnings: list[str],
    where: str,
    fid_net,
    fvd_net,
) -> dict[str, Any]:
    """FID over the frames and FVD over the clips of the chosen videos of each set (None when too few)."""
    result: dict[str, Any] = {"generated": len(gen_idx), "reference": len(ref_idx)}
    for metric, net, g_rows, r_rows in (
        ("fid", fid_net, [gen.frame_feats[i] for i in gen_idx], [ref.frame_feats[i] for i in ref_idx]),
        ("fvd", fvd_net, [gen.clip_feats[i] for i in gen_idx], [ref.clip_feats[i] for i in ref_idx]),
    ):
        if net is None:
            continue
        if not g_rows or not r_rows:
            result[metric] = None
            continue
        a, b = np.concatenate(g_rows), np.concatenate(r_rows)
        if min(len(a), len(b)) < 2:
            result[metric] = None
            warnings.append(f"{where}: {metric} needs at least 2 samples per set ({len(a)} vs {len(b)})")
            continue
        result[metric] = frechet_distance_of(a, b)
        if min(len(a), len(b)) <= a.shape[1]:
            warnings.append(
                f"{where}: {metric} from {len(a)} vs {len(b)} samples in {a.shape[1]} dims; the "
                "covariances are rank-deficient, so compare only at equal sample counts"
            )
    return result


def _clip_summary(scores: list[tuple[float, float]]) -> dict[str, Any]:
    valid = [s for s in scores if not np.isnan(s[0])]
    if not valid:
        return {"clip_score": None, "clip_cosine": None}
    return {"clip_score": float(np.mean([s[0] for s in valid])), "clip_cosine": float(np.mean([s[1] for s in valid]))}


def evaluate(
    generated_dir: str | Path,
    reference: str | Path,
    out_dir: str | Path,
    *,
    fid_net: str | FeatureNet | None = "random-inception",
    fvd_net: str | FeatureNet | None = "random-i3d",
    clip_model: str | OpenClipEmbedder | None = "ViT-B-32",
    clip_pretrained: str | None = None,
    seed: int = 0,
    frames_per_video: int = 8,
    fvd_frames: int = 16,
    fid_size: int | None = None,
    fvd_size: int | None = None,
    fid_range: str | None = None,
    fvd_range: str | None = None,
    fid_call_kwargs: dict[str, Any] | None = None,
    fvd_call_kwargs: dict[str, Any] | None = None,
    subset: str | None = None,
    max_reference: int | None = None,
    device: str = "cpu",
    audit_k: int | None = 5,
    audit_threshold: float | None = None,
    reference_cache: dict | None = None,
    plot: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Score ``generated_dir`` against ``reference`` and write ``evaluation.json`` (+ ``evaluation.png``).

    ``fid_net``/``fvd_net`` are feature-network specs (``ophora.inference.features``); None skips that metric,
    as ``clip_model=None`` skips CLIPScore. FID uses ``frames_per_video`` evenly spaced frames of every video;
    FVD one ``fvd_frames``-frame clip per video. Loaded networks (FeatureNet, OpenClipEmbedder) may be passed instead
    of specs, to score many sets without reloading. ``audit_k`` (None: no audit) sets the memorisation audit's
    K, on the FID network's frame features; ``audit_threshold`` a feature distance instead of the calibrated one.
    A dict passed as ``reference_cache`` keeps the reference's features for the next call with the same reference,
    networks and frame counts (scoring several sample sets against one reference). Returns the results dict."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if frames_per_video < 1 or fvd_frames < 1:
        raise ValueError("frames_per_video and fvd_frames must be at least 1")
    fid, fvd, clip = fid_net, fvd_net, clip_model  # already loaded networks are used as they are
    if isinstance(fid_net, str):
        fid = load_feature_net(
            fid_net,
            "image",
            seed=seed,
            size=fid_size,
            input_range=fid_range,
            call_kwargs=fid_call_kwargs,
            device=device,
        )
    if isinstance(fvd_net, str):
        fvd = load_feature_net(
            fvd_net,
            "video",
            seed=seed,
            size=fvd_size,
            input_range=fvd_range,
            call_kwargs=fvd_call_kwargs,
            device=device,
        )
    if isinstance(clip_model, str):
        clip = load_clip(clip_model, clip_pretrained, seed=seed, device=device)
    ref_label, ref_iter = reference_videos(reference, subset, max_reference)
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("scoring videos", total=None)
        tick = lambda: bar.advance(task)  # noqa: E731
        gen = _score_videos(folder_videos(generated_dir), fid, fvd, clip, frames_per_video, fvd_frames, tick)
        # CLIPScore alone needs no reference; FID/FVD need its features
        key = (str(reference), subset, max_reference, id(fid), id(fvd), frames_per_video, fvd_frames)
        cache = reference_cache if reference_cache is not None else {}
        if key not in cache:
            cache[key] = (
                _score_videos(ref_iter, fid, fvd, None, frames_per_video, fvd_frames, tick)
                if fid is not None or fvd is not None
                else _Scored([], [], [], [], [], [], [])
            )
        ref = cache[key]
    warnings: list[str] = []
    overall = _distances(
        gen, ref, list(range(len(gen.phases))), list(range(len(ref.phases))), warnings, "overall", fid, fvd
    )
    if clip is not None:
        overall.update(_clip_summary(gen.clip_scores))
    per_phase = {}
    for phase in sorted({p for p in gen.phases if p}):
        gi = [i for i, p in enumerate(gen.phases) if p == phase]
        ri = [i for i, p in enumerate(ref.phases) if p == phase]
        per_phase[phase] = _distances(gen, ref, gi, ri, warnings, phase, fid, fvd)
        if clip is not None:
            per_phase[phase].update(_clip_summary([gen.clip_scores[i] for i in gi]))
    nets = {k: v.describe() for k, v in (("fid", fid), ("fvd", fvd), ("clip", clip)) if v is not None}
    labels = {
        metric: ("comparable to published" if nets[net]["comparable_to_published"] else NOT_COMPARABLE)
        for metric, net in METRIC_NETWORK.items()
        if net in nets
    }
    audit = None
    if audit_k and fid is not None:
        audit = memorisation_audit(gen.frame_set(), ref.frame_set(), k=audit_k, threshold=audit_threshold)
        audit["embedding"] = f"{nets['fid']['name']} frame features ({labels['fid']})"
    results = {
        "generated": {"dir": str(generated_dir), "videos": len(gen.phases), "problems": gen.problems},
        "reference": {"source": ref_label, "videos": len(ref.phases), "problems": ref.problems},
        "settings": {"frames_per_video": frames_per_video, "fvd_frames": fvd_frames, "seed": seed},
        "networks": nets,
        "labels": labels,
        "comparable_to_published": all(n["comparable_to_published"] for n in nets.values()) if nets else False,
        "overall": overall,
        "per_phase": per_phase,
        "memorisation": audit,
        "warnings": warnings,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if plot:
        results["plot"] = str(plot_results(results, out / PLOT))
    (out / RESULTS).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


def plot_results(results: dict[str, Any], path: str | Path) -> Path:
    """One bar chart per metric (FID, FVD, CLIPScore): overall and each phase; random networks are flagged in
    the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("fid", "fvd", "clip_score") if m in results["overall"]]
    labels = ["overall"] + list(results["per_phase"])
    rows = [results["overall"]] + list(results["per_phase"].values())
    fig, axes = plt.subplots(
        len(metrics) or 1, 1, figsize=(max(6, 0.7 * len(labels) + 2), 2.6 * max(1, len(metrics))), squeeze=False
    )
    for ax, metric in zip(axes[:, 0], metrics):
        values = [r.get(metric) for r in rows]
        label = results.get("labels", {}).get(metric, NOT_COMPARABLE)
        ax.bar(
            range(len(labels)),
            [v if v is not None else 0 for v in values],
            color=["#555" if i == 0 else "#3b7dd8" for i in range(len(labels))],
        )
        for i, v in enumerate(values):
            ax.text(i, v or 0, "n/a" if v is None else f"{v:.3g}", ha="center", va="bottom", fontsize=7)
        ax.set_ylabel(f"{metric}\n({label})", fontsize=8)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    note = "" if results["comparable_to_published"] else " (figures NOT comparable to published numbers)"
    fig.suptitle(f"Ophora evaluation{note}", fontsize=9)
    fig.tight_layout()
    target = Path(path)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
