"""dynamics: how much a clip window moves, from dense optical flow (OpenCV DIS) on a few sampled frames.

Drops windows that do not move (frozen frames, slides, stills) and windows that jump (a whip-pan or a cut the
scene detector missed). Speed is measured where optical flow can measure it: between the two frames of a
*velocity pair* (``pair_gap`` apart, one clip frame at 8 fps), at several points spread over the window, so a
0.8 frame-widths-per-second pan moves a tenth of the width between them and reads as 0.8 widths/s. Stillness
and cuts are judged between the spread points. Stores ``motion`` (mean flow, widths/s), ``motion_global``
(median flow of the fastest pair: how fast the whole view moves, widths/s), ``frame_change`` (mean absolute
grey-level change between spread points) and ``similarity_min`` (lowest colour-histogram correlation between
neighbouring spread points).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ophora.curation.frames import FrameError, frames_at, row_video_path, sample_times
from ophora.curation.stages.base import stage_resources
from ophora.curation.stages.common import Reject
from ophora.curation.stages.frame_filter import Findings, FrameFilterStage

MODEL = "opencv-dis-flow@" + cv2.__version__


class DynamicsConfig(BaseModel):
    """The ``dynamics`` section: motion filter (optical flow)."""

    model_config = ConfigDict(extra="forbid")

    frames: int = Field(8, ge=2, description="points sampled per window; each is a velocity pair of two frames")
    pair_gap: float = Field(
        0.125,
        gt=0,
        description="seconds between the two frames of a velocity pair (flow "
        "is measurable when the view moves a small part of its "
        "width between them)",
    )
    max_side: int = Field(320, ge=32, description="sampled frames are downscaled to this longer side")
    flow_width: int = Field(160, ge=32, description="frames are downscaled to this width for optical flow")
    still_change: float = Field(
        0.6,
        ge=0,
        description="drop as still when no pair of spread points differs by more than this mean grey level (0-255)...",
    )
    still_motion: float = Field(
        0.004, ge=0, description="...and no velocity pair moves more than this share of the width per second"
    )
    max_global_motion: float = Field(
        0.5,
        gt=0,
        description="drop as a whip-pan when the whole view moves faster than this many frame widths per second",
    )
    min_similarity: float = Field(
        0.3,
        ge=-1,
        le=1,
        description="drop as a cut when neighbouring spread points' colour histograms correlate less than this",
    )


@dataclass
class MotionProfile:
    """Per velocity pair: mean and median flow (frame widths per second); per neighbouring spread points: mean
    absolute grey-level change and colour-histogram correlation."""

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


def flow_speed(a: np.ndarray, b: np.ndarray, seconds: float, flow_width: int = 160, dis=None) -> tuple[float, float]:
    """(mean, median) optical-flow speed from RGB frame ``a`` to ``b`` taken ``seconds`` apart, in frame widths
    per second."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    dis = dis or cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    flow = dis.calc(_grey(a, flow_width), _grey(b, flow_width), None)
    mag = np.hypot(flow[..., 0], flow[..., 1]) / flow_width / seconds
    return float(mag.mean()), float(np.median(mag))


def motion_profile(pairs: np.ndarray, pair_gap: float, flow_width: int = 160) -> MotionProfile:
    """The motion of a window from its velocity pairs: ``pairs`` is (N, 2, H, W, 3) RGB uint8, the two frames
    of each pair ``pair_gap`` seconds apart, the pairs in time order (N >= 2)."""
    if pairs.ndim != 5 or pairs.shape[1] != 2 or len(pairs) < 2:
        raise ValueError(f"motion needs (N >= 2, 2, H, W, 3) velocity pairs, got shape {pairs.shape}")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    speeds = np.array([flow_speed(a, b, pair_gap, flow_width, dis) for a, b in pairs])
    points = pairs[:, 0]
    greys = [_grey(f, flow_width) for f in points]
    hists = [_histogram(f) for f in points]
    change = [float(cv2.absdiff(a, b).mean()) for a, b in zip(greys, greys[1:])]
    similarity = [float(cv2.compareHist(a, b, cv2.HISTCMP_CORREL)) for a, b in zip(hists, hists[1:])]
    return MotionProfile(speeds[:, 0], speeds[:, 1], np.array(change), np.array(similarity))


def judge_motion(profile: MotionProfile, cfg: DynamicsConfig) -> Findings:
    """Scores of a window's motion and the drop reason when it is still, jumps, or whip-pans."""
    scores = {
        "motion": float(profile.mean_flow.mean()),
        "motion_global": float(profile.median_flow.max()),
        "frame_change": float(profile.change.max()),
        "similarity_min": float(profile.similarity.min()),
    }
    findings = Findings(scores=scores)
    if profile.change.max() <= cfg.still_change and profile.mean_flow.max() <= cfg.still_motion:
        findings.drop = "no motion (frozen frame, slide or still image)"
    elif profile.median_flow.max() > cfg.max_global_motion:  # before the cut test: a pan also changes colours
        findings.drop = f"whip-pan (view moves {profile.median_flow.max():.2f} widths/s)"
    elif profile.similarity.min() < cfg.min_similarity:
        findings.drop = f"cut inside the window (colour similarity {profile.similarity.min():.2f})"
    return findings


def pair_times(start: float, end: float, points: int, gap: float) -> list[float]:
    """Times of ``points`` velocity pairs spread over [start, end): each point and the moment ``gap`` after it."""
    spread = sample_times(start, end - gap, points) if end - gap > start else sample_times(start, end, points)
    return [t for p in spread for t in (p, p + gap)]


class DynamicsStage(FrameFilterStage):
    """Window stage: motion scores per window; drops still, cut and whip-panning windows."""

    name = "dynamics"
    sections = {"dynamics": DynamicsConfig}
    resources = stage_resources(0.1, (1, 2), 4)
    model = MODEL

    def window_frames(self, row) -> np.ndarray:
        times = pair_times(float(row["start"]), float(row["end"]), self.cfg.frames, self.cfg.pair_gap)
        try:
            frames = frames_at(row_video_path(row), times, self.max_side)
        except FrameError as e:
            raise Reject(f"cannot read frames: {e}") from e
        return frames.reshape(self.cfg.frames, 2, *frames.shape[1:])

    def judge(self, frames: np.ndarray) -> Findings:
        return judge_motion(motion_profile(frames, self.cfg.pair_gap, self.cfg.flow_width), self.cfg)
