"""Drawn annotation strokes (rings, circles, arrows, lines) in any colour, the footage's own included.

``graphic_colour_share`` finds strokes whose hue is foreign to the frame; an editor's red, orange, yellow or white
ring on red-orange cataract footage is not foreign. What such a stroke has in any colour: it is thin, with sharp
edges on both sides, and it stays at the same pixels in the same colour while the surgical field under it moves.

Each sampled frame of a window is reduced to ``side`` px; a pixel is *thin* where the morphological top-hat or
black-hat (an elliptic structuring element of ``kernel`` px: wider things and one-sided steps such as the
field-of-view border, black borders and the vignette give nothing) reaches ``contrast`` grey levels in some colour
channel. Pixels thin in every sampled frame whose colour varies by less than ``steadiness`` levels across the
frames are the window's still thin pixels; the size of their largest connected run is the score.

Measured (``python benchmarks/bench_privacy.py``, row ``drawn_strokes``: 320 strokes, ring/circle/arrow/line,
2-5 px, drawn on all 49 frames of each reference clip and re-encoded with libx264, sampled as the stage samples a
window): 184 of 256 strokes in red, orange, yellow or white are found (red 32/64, white 57/64), 7 of 64 in a colour
sampled from the frame; the hue and corner checks find none of the 320. Clean: 0 of 52 four-sample windows, 0 of
196 frames, 0 of 2,812 frame pairs >= 1.5 s apart. ``contrast`` is high because the synthetic eye's painted
vessels and speculum highlights are crisp and, in its slowest-swaying windows, stand still: at 60 levels ~96 % of
the named-colour strokes were found in a development sweep with no clean real window flagged, but 3 of 12 synthetic
surgical windows fired; at 90 none of 60 tuning-seed windows do (20 px at most against ``min_pixels`` 24). Two samples can meet in a moment of no motion,
so windows of fewer than ``min_samples`` (3) are not judged. Cost: ~4 ms a frame (17 ms a four-sample window).
"""

from __future__ import annotations

import cv2
import numpy as np

KERNEL = 5  # px at ``side``: strokes up to ~5 px at 720 px are thin, a 10-px instrument shaft is not


def thin_map(frame: np.ndarray, side: int = 360, kernel: int = KERNEL) -> tuple[np.ndarray, np.ndarray]:
    """(thin contrast per pixel, the reduced frame): the largest top-hat or black-hat over the colour channels of
    the RGB ``frame`` reduced to ``side`` px on its longer side."""
    h, w = frame.shape[:2]
    scale = side / max(h, w)
    if scale < 1:
        frame = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    top = cv2.morphologyEx(frame, cv2.MORPH_TOPHAT, k)
    black = cv2.morphologyEx(frame, cv2.MORPH_BLACKHAT, k)
    return np.maximum(top, black).max(axis=2), frame


def still_stroke(
    frames: np.ndarray,
    side: int = 360,
    contrast: int = 90,
    steadiness: int = 40,
    min_samples: int = 3,
    kernel: int = KERNEL,
) -> float:
    """Pixels (at ``side`` px) in the largest connected run of pixels that are thin in every one of a window's
    RGB ``frames`` and keep their colour across them: a stroke drawn over the window. 0 for fewer than
    ``min_samples`` frames (one has nothing to stay still against; two may meet in a moment of no motion)."""
    if len(frames) < max(2, min_samples):
        return 0.0
    return still_run([thin_map(f, side, kernel) for f in frames], contrast, steadiness)


def still_run(maps: list[tuple[np.ndarray, np.ndarray]], contrast: int = 90, steadiness: int = 40) -> float:
    """:func:`still_stroke` of frames already passed through :func:`thin_map`."""
    still = np.logical_and.reduce([m >= contrast for m, _ in maps])
    if not still.any():
        return 0.0
    stack = np.stack([s for _, s in maps]).astype(np.int16)
    still &= (stack.max(axis=0) - stack.min(axis=0)).max(axis=2) < steadiness
    n, _, stats, _ = cv2.connectedComponentsWithStats(still.astype(np.uint8), connectivity=8)
    return float(stats[1:, cv2.CC_STAT_AREA].max()) if n > 1 else 0.0
