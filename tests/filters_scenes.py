"""Frames of every synthetic scene kind, rendered in memory (no video file) for the filter tests.

Uses the project's own synthetic scene painters (the ones the synthetic corpus is made of), so a filter test sees
the same pictures the corpus holds, without an encode/decode round trip.
"""

from __future__ import annotations

import cv2
import numpy as np

from ophora.curation.frames import scaled_size
from ophora.synthetic.eye import SurgicalView, make_eye_look
from ophora.synthetic.narration import phases
from ophora.synthetic import scenes as ss

KINDS = ("surgical", "slide", "face", "black", "frozen", "overlay", "pip", "phi_text")
PHI_LINES = ["PT: OKAFOR, MARGARET", "DOB 03/04/1941", "MRN 4482913"]


def scene(kind: str, seed: int, width: int = 854, height: int = 480, duration: float = 7.0):
    """A synthetic scene object with ``frame(t) -> BGR``."""
    rng = np.random.default_rng(seed)
    phase = phases()[seed % len(phases())]
    view = SurgicalView(make_eye_look(rng), phase, width, height, duration, rng)
    if kind == "surgical":
        return view
    if kind == "slide":
        return ss.title_slide(width, height, "Cataract surgery", ["Teaching video", "Anterior segment"], rng)
    if kind == "face":
        return ss.Presenter(width, height, "Presented by the surgical team", rng)
    if kind == "black":
        return ss.black(width, height)
    if kind == "frozen":
        return ss.Still(view.frame(2.0).copy())
    if kind == "overlay":
        return ss.Overlay(view, "Capsular bag", rng)
    if kind == "pip":
        return ss.PictureInPicture(view, rng)
    if kind == "phi_text":
        return ss.BurnedInText(view, PHI_LINES, rng)
    raise ValueError(kind)


def scene_frames(kind: str, seed: int = 0, count: int = 8, max_side: int = 320, duration: float = 6.125,
                 width: int = 854, height: int = 480) -> np.ndarray:
    """``count`` RGB frames of a scene sampled like :func:`ophora.curation.frames.window_frames` does."""
    sc = scene(kind, seed, width, height, duration + 1)
    w, h = scaled_size(width, height, max_side)
    times = [0.5 + (i + 0.5) * duration / count for i in range(count)]
    return np.stack([cv2.resize(cv2.cvtColor(sc.frame(t), cv2.COLOR_BGR2RGB), (w, h), interpolation=cv2.INTER_AREA)
                     for t in times])


def scene_pairs(kind: str, seed: int = 0, count: int = 8, gap: float = 0.125, max_side: int = 320,
                duration: float = 6.125, width: int = 854, height: int = 480) -> np.ndarray:
    """``count`` velocity pairs (count, 2, H, W, 3) of a scene, sampled as the dynamics stage samples a window."""
    from ophora.curation.stages.dynamics import pair_times

    sc = scene(kind, seed, width, height, duration + 1)
    w, h = scaled_size(width, height, max_side)
    frames = [cv2.resize(cv2.cvtColor(sc.frame(t), cv2.COLOR_BGR2RGB), (w, h), interpolation=cv2.INTER_AREA)
              for t in pair_times(0.5, 0.5 + duration, count, gap)]
    return np.stack(frames).reshape(count, 2, h, w, 3)
