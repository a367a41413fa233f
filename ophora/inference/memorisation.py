"""A privacy memorisation audit: does a generated video reproduce a training clip?

Every frame is one embedding (the evaluation's frame network). For each generated video the audit lists its
nearest training clips by cosine (embeddings centred on the training frames' mean; per clip, the mean over the
video's frames of each frame's best match in that clip). It flags every generated frame whose feature distance to
a training frame is no larger than the smallest distance between two training frames from *different sources* (no
two surgeries share a frame, so a generated frame that close is a copy, not a resemblance). Distance, not cosine,
decides the flag: centring pulls a few training frames' cosines with each other down (their deviations sum to
zero) while a frame from elsewhere is not held to that, so a cosine bar flagged unrelated videos. And it reports
Recall@K: how often the training clips a generated video was prompted with (same instruction, else same phase) are
among its K nearest, next to the rate K random clips would give. Near chance, generations do not single out their
training clips; near 1 with instruction matches, the model regurgitates.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Any

import numpy as np


@dataclass
class FrameSet:
    """The frame embeddings of one set of videos: ``frames[i]`` is video i's (frames, dims) array."""

    ids: list[str]
    frames: list[np.ndarray]
    texts: list[str]
    phases: list[str | None]


def _unit(rows: np.ndarray, centre: np.ndarray) -> np.ndarray:
    x = np.asarray(rows, np.float64) - centre
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


def source_of(clip_id: str) -> str:
    """The source part of a clip key (``<source>_<index>``), or the id itself."""
    head, sep, tail = clip_id.rpartition("_")
    return head if sep and tail.isdigit() else clip_id


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and of ``b``: (len(a), len(b))."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(squared, 0, None))


def calibrated_threshold(train: FrameSet) -> tuple[float | None, str]:
    """The smallest feature distance between two training frames of different sources (of different clips when
    there is one source), and how it was found."""
    sources = np.array([source_of(i) for i in train.ids])
    by_source = len(set(sources.tolist())) > 1
    every = np.concatenate(train.frames)
    owner = np.concatenate([[c] * len(f) for c, f in enumerate(train.frames)])
    best = None
    for c, frames in enumerate(train.frames):
        other = (sources[owner] != sources[c]) if by_source else (owner != c)
        if other.any() and len(frames):
            low = float(distances(frames, every[other]).min())
            best = low if best is None else min(best, low)
    how = "different sources" if by_source else "different clips (one source only)"
    return best, f"smallest feature distance between training frames of {how}"


def audit(generated: FrameSet, train: FrameSet, k: int = 5, threshold: float | None = None) -> dict[str, Any]:
    """The audit of ``generated`` against ``train`` (see the module doc); ``threshold`` (a feature distance)
    overrides the calibrated one."""
    if not train.frames or not generated.frames:
        return {"videos": len(generated.frames), "training_clips": len(train.frames), "problem": "nothing to audit"}
    centre = np.concatenate(train.frames).mean(axis=0)
    train_unit = [_unit(f, centre) for f in train.frames]
    gen_unit = [_unit(f, centre) for f in generated.frames]
    how = "given"
    if threshold is None:
        threshold, how = calibrated_threshold(train)
    k = max(1, min(k, len(train.frames)))
    all_train, all_raw = np.concatenate(train_unit), np.concatenate(train.frames)
    owner = np.concatenate([[c] * len(f) for c, f in enumerate(train_unit)])
    videos, flagged, hits, chance = [], [], [], []
    for g, frames in enumerate(gen_unit):
        sims = frames @ all_train.T  # (generated frames, training frames)
        per_clip = np.array([sims[:, owner == c].max(axis=1).mean() for c in range(len(train_unit))])
        nearest = np.argsort(-per_clip)[:k]
        before = len(flagged)
        for f, row in enumerate(distances(generated.frames[g], all_raw)):
            j = int(row.argmin())
            if threshold is not None and row[j] <= threshold:
                flagged.append(
                    {
                        "generated": generated.ids[g],
                        "frame": f,
                        "training_clip": train.ids[owner[j]],
                        "distance": round(float(row[j]), 4),
                        "cosine": round(float(sims[f, j]), 4),
                    }
                )
        matches, rule = _prompted_clips(generated, train, g)
        if matches:
            hits.append(bool(set(matches) & set(nearest.tolist())))
            n, m = len(train_unit), len(matches)
            chance.append(1 - comb(n - m, k) / comb(n, k))
        videos.append(
            {
                "generated": generated.ids[g],
                "match_rule": rule,
                "flagged_frames": len(flagged) - before,
                "nearest": [{"training_clip": train.ids[c], "cosine": round(float(per_clip[c]), 4)} for c in nearest],
            }
        )
    return {
        "videos": len(gen_unit),
        "training_clips": len(train_unit),
        "k": k,
        "threshold": None if threshold is None else round(float(threshold), 4),
        "threshold_rule": how,
        "flagged_frames": len(flagged),
        "flagged": flagged[:100],
        "videos_with_flagged_frames": len({f["generated"] for f in flagged}),
        f"recall_at_{k}": round(float(np.mean(hits)), 4) if hits else None,
        f"chance_recall_at_{k}": round(float(np.mean(chance)), 4) if chance else None,
        "recall_videos": len(hits),
        "nearest": videos,
    }


def _prompted_clips(generated: FrameSet, train: FrameSet, g: int) -> tuple[list[int], str | None]:
    """The training clips generated video g was prompted with: same instruction text, else same phase."""
    text = generated.texts[g].strip().lower()
    same_text = [c for c, t in enumerate(train.texts) if text and t.strip().lower() == text]
    if same_text:
        return same_text, "instruction"
    phase = generated.phases[g]
    same_phase = [c for c, p in enumerate(train.phases) if phase and p == phase]
    return same_phase, ("phase" if same_phase else None)


def summary_table(audit: dict) -> tuple[str, list[tuple], tuple[str, ...]]:
    """(title, rows, headers) of the memorisation audit: each video's nearest training clip and its flags."""
    k = audit["k"]
    rows = [
        (v["generated"], v["nearest"][0]["training_clip"], f"{v['nearest'][0]['cosine']:.3f}", v["flagged_frames"])
        for v in audit["nearest"]
    ]
    recall, chance = audit.get(f"recall_at_{k}"), audit.get(f"chance_recall_at_{k}")
    title = (
        f"Memorisation audit: {audit['flagged_frames']} frame(s) copy a training frame (feature distance "
        f"<= {audit['threshold']}); Recall@{k} of the prompted training clips {recall} (chance {chance})"
    )
    return title, rows, ("generated", "nearest training clip", "cosine", "flagged frames")
