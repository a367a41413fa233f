"""Whether a candidate scene boundary is a change of shot, judged from the frames on either side of it.

PySceneDetect's detectors fire on any large frame difference; on real microscope footage that includes instruments
sweeping through, the view jumping, specular flashes, a fluid wave and focus pulls. A change of shot differs from
all of these in one way: the colours of the picture after it cannot be had by moving the picture before it. So each
candidate is checked by warping a frame from before onto a frame from after with dense optical flow (DIS) and taking
the median chroma difference (|Δa*| + |Δb*| in CIELAB) of what is left; the lowest over a few pairs across the
candidate is its *colour change*. Chroma, not brightness: a flash or an exposure change moves lightness, while two
shots differ in the colours of tissue and light. Taking the lowest over pairs lets a transient (a flash, an
instrument crossing) pass: some pair on either side of it still matches. Two sides that are both stills (black,
a title slide, a frozen frame) or a still next to moving footage are a change of shot whenever the detector fired
and the pictures differ: nothing moved to explain it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Mean absolute grey-level difference (0-255) under which two consecutive analysis frames are the same picture.
STILL_DIFF = 0.6
_BORDER = 6  # pixels at the edge that warping fills by replication: not evidence


@dataclass
class Verdict:
    """A candidate's colour change and whether it is a boundary (``why`` says which rule decided)."""

    boundary: bool
    change: float
    why: str


class BoundaryCheck:
    """``verdict(before, after)`` on lists of small BGR frames (oldest first on both sides)."""

    def __init__(self, change_threshold: float):
        self.change_threshold = change_threshold
        self.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._grid: tuple[np.ndarray, np.ndarray] | None = None

    def colour_change(self, a: np.ndarray, b: np.ndarray) -> float:
        """Median chroma difference left after warping frame ``a`` onto frame ``b`` along their optical flow."""
        h, w = b.shape[:2]
        if self._grid is None or self._grid[0].shape != (h, w):
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = (xs, ys)
        ga, gb = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(b, cv2.COLOR_BGR2GRAY)
        flow = self.flow.calc(gb, ga, None)
        lab_a = cv2.cvtColor(a, cv2.COLOR_BGR2LAB).astype(np.float32)
        lab_b = cv2.cvtColor(b, cv2.COLOR_BGR2LAB).astype(np.float32)
        xs, ys = self._grid
        warped = cv2.remap(
            lab_a, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        m = _BORDER if min(h, w) > 4 * _BORDER else 0
        diff = np.abs(warped - lab_b)[m : h - m or None, m : w - m or None, 1:].sum(axis=-1)
        return float(np.median(diff))

    def verdict(self, before: list[np.ndarray], after: list[np.ndarray]) -> Verdict:
        if not before or not after:
            return Verdict(True, float("inf"), "no frames on one side to check")
        still_before, still_after = is_still(before), is_still(after)
        apart = grey_diff(before[-1], after[0])
        if still_before or still_after:
            if apart < STILL_DIFF:
                return Verdict(False, 0.0, "the same still picture on both sides")
            return Verdict(True, apart, "a still picture starts or ends")
        change = min(self.colour_change(a, b) for a in before for b in after)
        if change > self.change_threshold:
            return Verdict(True, change, "colours change beyond what motion explains")
        return Verdict(False, change, "the picture after is the picture before, moved")


def grey_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey-level difference of two BGR frames (0-255)."""
    return float(np.mean(cv2.absdiff(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(b, cv2.COLOR_BGR2GRAY))))


def is_still(frames: list[np.ndarray]) -> bool:
    """True when two or more frames show the same picture (black, a slide, a frozen frame)."""
    return len(frames) >= 2 and all(grey_diff(a, b) < STILL_DIFF for a, b in zip(frames, frames[1:]))
