"""dynamics: how much a clip window moves, from dense optical flow (OpenCV DIS) between a few sampled frames.

Drops windows that do not move (frozen frames, slides, stills) and windows that jump (a whip-pan or a cut the
scene detector missed). Stores ``motion`` (mean flow, share of the frame width per second), ``motion_global``
(median flow: how much the whole view moves), ``frame_change`` (mean absolute grey-level change between samples)
and ``similarity_min`` (lowest colour-histogram correlation between neighbouring samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ophora.curation.stages.frame_filter import Findings, FrameFilterStage, config_section

MODEL = "opencv-dis-flow@" + cv2.__version__


class DynamicsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frames: int = Field(8, ge=2, description="frames sampled per window (flow runs between neighbours)")
    max_side: int = Field(320, ge=32, description="sampled frames are downscaled to this longer side")
    flow_width: int = Field(160, ge=32, description="frames are downscaled to this width for optical flow")
    still_change: float = Field(0.6, ge=0, description="drop as still when no pair of samples differs by more "
                                                      "than this mean grey level (0-255)...")
    still_motion: float = Field(0.004, ge=0, description="...and no pair moves more than this share of the "
                                                        "width per second")
    max_global_motion: float = Field(0.5, gt=0, description="drop as a whip-pan when the whole view moves faster "
                                                            "than this share of the width per second")
    min_similarity: float = Field(0.3, ge=-1, le=1, description="drop as a cut when neighbouring samples' colour "
                                                                "histograms correlate less than this")


@dataclass
class MotionProfile:
    """Per neighbouring pair of samples: mean and median flow (share of width per second), mean absolute
    grey-level change and colour-histogram correlation."""

    mean_flow: np.ndarray
    median_flow: np.ndarray
    change: np.ndarray
    similarity: np.ndarray


def _grey(frame: np.ndarray, width: int) -> np.ndarray:
    h, w = frame.shape[:2]
    size = (width, max(8, int(round(h * width / w))))
    return cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)


def _histogram(frame: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [30, 16], [0, 180, 0, 256])
    return cv2.normalize(hist, hist).astype(np.float32)


def motion_profile(frames: np.ndarray, interval: float, flow_width: int = 160) -> MotionProfile:
    """The motion between neighbouring frames of ``frames`` (N, H, W, 3 RGB uint8), sampled ``interval``
    seconds apart."""
    if len(frames) < 2:
        raise ValueError("motion needs at least two frames")
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval}")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    greys = [_grey(f, flow_width) for f in frames]
    hists = [_histogram(f) for f in frames]
    mean_flow, median_flow, change, similarity = [], [], [], []
    for a, b, ha, hb in zip(greys, greys[1:], hists, hists[1:]):
        flow = dis.calc(a, b, None)
        mag = np.hypot(flow[..., 0], flow[..., 1]) / flow_width / interval
        mean_flow.append(float(mag.mean()))
        median_flow.append(float(np.median(mag)))
        change.append(float(cv2.absdiff(a, b).mean()))
        similarity.append(float(cv2.compareHist(ha, hb, cv2.HISTCMP_CORREL)))
    return MotionProfile(np.array(mean_flow), np.array(median_flow), np.array(change), np.array(similarity))


def judge_motion(profile: MotionProfile, cfg: DynamicsConfig) -> Findings:
    """Scores of a window's motion and the drop reason when it is still, jumps, or whip-pans."""
    scores = {"motion": float(profile.mean_flow.mean()), "motion_global": float(profile.median_flow.max()),
              "frame_change": float(profile.change.max()), "similarity_min": float(profile.similarity.min())}
    findings = Findings(scores=scores)
    if profile.change.max() <= cfg.still_change and profile.mean_flow.max() <= cfg.still_motion:
        findings.drop = "no motion (frozen frame, slide or still image)"
    elif profile.similarity.min() < cfg.min_similarity:
        findings.drop = f"cut inside the window (colour similarity {profile.similarity.min():.2f})"
    elif profile.median_flow.max() > cfg.max_global_motion:
        findings.drop = f"whip-pan (view moves {profile.median_flow.max():.2f} widths/s)"
    return findings


class DynamicsStage(FrameFilterStage):
    """Window stage: motion scores per window; drops still, cut and whip-panning windows."""

    name = "dynamics"
    model = MODEL

    def __init__(self, config=None):
        self.cfg = config_section(config, "dynamics", DynamicsConfig)
        super().__init__(self.cfg.frames, self.cfg.max_side)
        self._interval = 1.0

    def process(self, row) -> None:
        self._interval = (float(row["end"]) - float(row["start"])) / self.cfg.frames
        super().process(row)

    def judge(self, frames: np.ndarray) -> Findings:
        return judge_motion(motion_profile(frames, self._interval, self.cfg.flow_width), self.cfg)
