"""scenes: scene boundaries with PySceneDetect on small, low-rate frames decoded by ffmpeg, each candidate checked.

ffmpeg decodes the source once, resampled to ``scenes.analysis_fps`` and downscaled to ``scenes.analysis_width``
(so variable frame rate, rotation and huge frames cost the detector nothing extra), and pipes raw frames to the
chosen detector. A second, slower ContentDetector pass over the same frames finds dissolves and fades, which
look like slow drifts at the full analysis rate. Both passes only propose: real microscope footage (instruments
sweeping through, the view jumping, flashes, fluid waves, focus pulls) makes them fire inside one continuous shot,
so every candidate goes to :class:`~ophora.curation.stages.scenes.boundary_check.BoundaryCheck`, which keeps it only when the
colours after it cannot be had by moving the picture before it (``scenes.change_threshold``, fitted on real
surgical footage by benchmarks/bench_footage.py). Each boundary is kept as an interval of uncertainty (the time
between the last frame before it and the first after it); scenes are the stretches between boundaries.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode

from ophora.curation.stages.base import stage_resources
from ophora.curation.stages.common import Reject, RowStage, ffmpeg_args
from ophora.curation.stages.scenes.boundary_check import BoundaryCheck, grey_diff
from ophora.video import ffmpeg_input


class ScenesConfig(BaseModel):
    """The ``scenes`` section: scene detection (PySceneDetect) and the boundary check."""

    model_config = ConfigDict(extra="forbid")

    detector: Literal["adaptive", "content"] = Field(
        "adaptive", description="PySceneDetect detector: AdaptiveDetector (robust to fast motion) or ContentDetector"
    )
    adaptive_threshold: float = Field(3.0, gt=0, description="AdaptiveDetector: score ratio over the rolling mean")
    min_content_val: float = Field(15.0, ge=0, description="AdaptiveDetector: minimum content change for a cut")
    content_threshold: float = Field(27.0, gt=0, description="ContentDetector: content-change threshold")
    min_scene_len: float = Field(0.5, ge=0, description="minimum scene length in seconds")
    analysis_fps: float = Field(
        6.0,
        gt=0,
        description="frames per second fed to the detector; a low rate turns a dissolve into a few "
        "large steps so it is found like a cut",
    )
    dissolve_fps: float = Field(
        1.0,
        ge=0,
        description="rate of a second, slow ContentDetector pass that finds dissolves and fades "
        "(a 1 s dissolve is one big step at 1 fps); 0 turns it off",
    )
    dissolve_threshold: float = Field(
        15.0,
        gt=0,
        description="ContentDetector threshold of the dissolve pass (low: it only proposes; the check decides)",
    )
    verify: bool = Field(
        True,
        description="check every candidate boundary of both passes: keep it only when the "
        "colours after it cannot be had by moving the picture before it "
        "(instruments, flashes, fluid waves and focus pulls stay one scene)",
    )
    change_threshold: float = Field(
        5.7,
        ge=0,
        description="the check's threshold: median chroma difference (|da*|+|db*|, CIELAB) left after "
        "warping a frame before the candidate onto one after it by optical flow, lowest "
        "over a few pairs; fitted on real surgical footage (benchmarks/bench_footage.py)",
    )
    analysis_width: int = Field(160, ge=16, description="frames are downscaled to this width before detection")
    skip_unreferenced: bool = Field(
        True,
        description="do not decode frames no other frame references (most B-frames): ~35% less decode CPU; "
        "a cut is still seen within a few source frames, well inside its boundary interval",
    )
    timeout_s: float = Field(3600.0, gt=0, description="time limit for analysing one input")


def make_detector(cfg: ScenesConfig, fps: float):
    """The configured PySceneDetect detector for frames arriving at ``fps``."""
    min_len = max(1, int(round(cfg.min_scene_len * fps)))
    if cfg.detector == "content":
        return ContentDetector(threshold=cfg.content_threshold, min_scene_len=min_len)
    return AdaptiveDetector(
        adaptive_threshold=cfg.adaptive_threshold, min_scene_len=min_len, min_content_val=cfg.min_content_val
    )


def merge_intervals(intervals: list[tuple[float, float]]) -> list[list[float]]:
    """Sorted [lo, hi] intervals with every overlapping pair merged into one."""
    merged: list[list[float]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return merged


def scenes_between(boundaries: list[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """Scenes (start, end) in seconds between boundary intervals (lo, hi); overlapping intervals merge."""
    merged = merge_intervals(boundaries)
    scenes, start = [], 0.0
    for lo, hi in merged:
        if lo > start:
            scenes.append((round(start, 4), round(lo, 4)))
        start = max(start, hi)
    if duration > start:
        scenes.append((round(start, 4), round(duration, 4)))
    return scenes


# A confirmed cut's interval reaches over neighbouring frame steps at least this share of the cut's own step, up to
# this many analysis frames each way (a 0.6 s dissolve at 6 fps changes ~4 steps alike; a hard cut's neighbours move).
TRANSITION_SHARE = 0.35
TRANSITION_REACH = 6


def _around(frame: int, step: int, fps: float) -> tuple[float, float]:
    """The time span a cut reported at analysis frame ``frame`` can lie in: from the last compared frame before
    it to one frame after it (frames are picked by rounding, and detectors may report one frame early)."""
    return max(0.0, (frame - step - 1) / fps), (frame + 1) / fps


class _Candidate:
    """A detector's proposal: the analysis frames to compare on either side, and the interval it reports."""

    def __init__(self, before: list[int], after: list[int], interval: tuple[float, float], dissolve: bool):
        self.before, self.after, self.interval, self.dissolve = before, after, interval, dissolve


class BoundaryFinder:
    """Feeds analysis frames (``add``) to the two detector passes and checks each candidate once the frames after
    it have arrived; ``finish()`` returns the boundary intervals. ``checks`` lists every candidate with its
    colour change and verdict, for the facts and the benchmark."""

    def __init__(self, cfg: ScenesConfig, fps: float):
        self.cfg, self.fps = cfg, fps
        self.fast = make_detector(cfg, fps)
        self.step = max(1, int(round(fps / cfg.dissolve_fps))) if cfg.dissolve_fps else 0
        self.slow = ContentDetector(threshold=cfg.dissolve_threshold, min_scene_len=1) if self.step else None
        self.check = BoundaryCheck(cfg.change_threshold) if cfg.verify else None
        self.frames: dict[int, np.ndarray] = {}
        self.pending: list[_Candidate] = []
        self.boundaries: list[tuple[float, float]] = []
        self.checks: list[dict[str, Any]] = []
        self.floor = 0  # frames before the last confirmed boundary belong to another shot
        self.n = 0

    def add(self, frame: np.ndarray) -> None:
        n, fps, step = self.n, self.fps, self.step
        self.frames[n] = frame
        for cut in self.fast.process_frame(FrameTimecode(n, fps=fps), frame):
            self._propose_cut(cut.frame_num)
        if self.slow is not None and n % step == 0:
            for cut in self.slow.process_frame(FrameTimecode(n // step, fps=fps / step), frame):
                k = cut.frame_num * step
                # a dissolve that made frames one step apart differ may reach half a step past either of them
                lo, hi = _around(k, step, fps)
                self.pending.append(
                    _Candidate(
                        [k - 2 * step, k - 2 * step + step // 2, k - step],
                        [k, k + step - step // 2, k + step],
                        (max(0.0, lo - step // 2 / fps), hi + step // 2 / fps),
                        dissolve=True,
                    )
                )
        self.n += 1
        self._settle(final=False)
        keep = self.n - 4 * max(step, 2) - 8  # what a pending check can still ask for
        for old in [i for i in self.frames if i < keep]:
            del self.frames[old]

    def _propose_cut(self, n: int) -> None:
        # the detector may report a frame early or late: the break is the largest step between n-2 and n+1
        self.pending.append(_Candidate([n - 3, n - 2, n - 1], [n, n + 1, n + 2, n + 3], _around(n, 1, self.fps), False))

    def finish(self) -> list[tuple[float, float]]:
        if self.n:
            for cut in self.fast.post_process(FrameTimecode(self.n - 1, fps=self.fps)):
                self._propose_cut(cut.frame_num)
        self._settle(final=True)
        return sorted(b for b in self.boundaries if b[0] > 0)

    def _settle(self, final: bool) -> None:
        # every decision waits TRANSITION_REACH frames past what it compares (to see whether a change goes on),
        # so candidates are still decided in the order their frames arrive
        ready = [c for c in self.pending if final or max(c.after) + TRANSITION_REACH < self.n]
        for c in sorted(ready, key=lambda c: c.interval):
            self.pending.remove(c)
            self._decide(c)

    def _decide(self, c: _Candidate) -> None:
        if c.dissolve and any(lo < c.interval[1] and c.interval[0] < hi for lo, hi in self.boundaries):
            return  # a hard cut already found explains this step
        if self.check is None:
            self.boundaries.append(c.interval)
            return
        if not c.dissolve:
            c.before, c.after = self._split_at_break(c.before[-1] - 1, c.after[0] + 1)
            c.interval = self._transition(c.before[-1], c.interval)
        before = [self.frames[i] for i in c.before if i >= self.floor and i in self.frames]
        after = [self.frames[i] for i in c.after if i in self.frames]
        verdict = self.check.verdict(before, after)
        self.checks.append(
            {
                "interval": [round(x, 4) for x in c.interval],
                "dissolve_pass": c.dissolve,
                "change": round(verdict.change, 3),
                "boundary": verdict.boundary,
                "why": verdict.why,
            }
        )
        if verdict.boundary:
            self.boundaries.append(c.interval)
            self.floor = max(self.floor, c.after[0])

    def _transition(self, j: int, interval: tuple[float, float]) -> tuple[float, float]:
        """``interval`` widened over the frames around the break (frames ``j``, ``j+1``) that keep changing at
        least TRANSITION_SHARE of the break's own step: a dissolve or fade the fast detector reported at its
        middle reaches both ways (a hard cut's neighbours only move, and it stays as it was)."""

        def diff(i: int) -> float | None:
            return grey_diff(self.frames[i], self.frames[i + 1]) if i in self.frames and i + 1 in self.frames else None

        peak = diff(j)
        if not peak:
            return interval
        last = j + 1  # the first frame of the new shot as far as the steps show
        while last < j + 1 + TRANSITION_REACH and (d := diff(last)) is not None and d >= TRANSITION_SHARE * peak:
            last += 1
        first = j  # the last frame of the old shot
        while (
            first > max(self.floor, j - TRANSITION_REACH)
            and (d := diff(first - 1)) is not None
            and d >= TRANSITION_SHARE * peak
        ):
            first -= 1
        return min(interval[0], max(0.0, (first - 1) / self.fps)), max(interval[1], (last + 1) / self.fps)

    def _split_at_break(self, lo: int, hi: int) -> tuple[list[int], list[int]]:
        """Three frames each side of the largest frame-to-frame step between frames ``lo`` and ``hi``."""
        pairs = [i for i in range(max(lo, 0), hi) if i in self.frames and i + 1 in self.frames]
        if not pairs:
            return list(range(lo - 1, lo + 2)), list(range(hi - 1, hi + 2))
        j = max(pairs, key=lambda i: grey_diff(self.frames[i], self.frames[i + 1]))
        return [j - 2, j - 1, j], [j + 1, j + 2, j + 3]


def find_boundaries(
    frames: Iterable[np.ndarray], cfg: ScenesConfig, fps: float
) -> tuple[list[tuple[float, float]], BoundaryFinder]:
    """Boundary intervals (seconds) in analysis ``frames`` (BGR, all one size) arriving at ``fps``, and the
    finder (``n`` frames seen, ``checks`` of every candidate)."""
    finder = BoundaryFinder(cfg, fps)
    for frame in frames:
        finder.add(frame)
    return finder.finish(), finder


class Scenes(RowStage):
    """Fills ``scenes_json`` with ``[[start, end], ...]`` in seconds and ``facts_json["cuts"]`` with the boundary
    intervals (``facts_json["cut_checks"]`` counts the candidates the check kept and rejected); rejects a source
    whose frames cannot be decoded at all."""

    name = "scenes"
    level = "source"
    sections = {"scenes": ScenesConfig}
    resources = stage_resources(0.2, (1, 2))

    def setup(self) -> None:
        self.last_checks: list[dict[str, Any]] = []

    def process(self, row: dict[str, Any]) -> None:
        facts = json.loads(row["facts_json"])
        boundaries, decoded = self.detect(row["local_path"], facts["width"], facts["height"])
        if decoded == 0:
            raise Reject("undecodable (no frame could be decoded)")
        # A truncated file decodes less than ffprobe promised: trust what was decoded.
        duration = min(row["duration"], decoded / self.cfg.analysis_fps)
        row["duration"] = duration
        facts["cuts"] = [[round(lo, 4), round(hi, 4)] for lo, hi in boundaries]
        kept = sum(c["boundary"] for c in self.last_checks)
        facts["cut_checks"] = {"kept": kept, "rejected": len(self.last_checks) - kept}
        facts["decoded_duration"] = round(duration, 4)
        row["facts_json"] = json.dumps(facts, sort_keys=True)
        row["scenes_json"] = json.dumps(scenes_between(boundaries, duration))

    def detect(self, local_path: str, width: int, height: int) -> tuple[list[tuple[float, float]], int]:
        """Boundary intervals (seconds) and the number of analysis frames decoded; ``last_checks`` then holds
        every candidate's check."""
        boundaries, finder = find_boundaries(self.frames(local_path, width, height), self.cfg, self.cfg.analysis_fps)
        self.last_checks = finder.checks
        return boundaries, finder.n

    def frames(self, local_path: str, width: int, height: int) -> Iterator[np.ndarray]:
        """The source's analysis frames (BGR, ``analysis_width`` wide, ``analysis_fps``), decoded by ffmpeg."""
        cfg, fps = self.cfg, self.cfg.analysis_fps
        w = cfg.analysis_width - cfg.analysis_width % 2
        h = max(2, int(round(w * height / width / 2)) * 2)
        # Deblocking and spec-exact tricks buy nothing at 160 px: skipping them decodes ~20% faster; at a few
        # analysis frames a second, frames nothing references need not be decoded at all. One decoding thread:
        # the actor pool is the parallelism, and frame threads cost ~25% more CPU a frame (two minutes of 720p30:
        # 6.5 -> 5.3 CPU-s). A bilinear downscale would save more, but its aliasing made false cuts.
        skip = {"skip_frame": "noref"} if cfg.skip_unreferenced else {}
        stream = (
            ffmpeg_input(local_path, skip_loop_filter="all", flags2="+fast", threads=1, **skip)
            .filter("fps", fps=fps)
            .filter("scale", w, h)
            .output("pipe:", format="rawvideo", pix_fmt="bgr24")
        )
        frame_bytes = w * h * 3
        deadline = time.monotonic() + cfg.timeout_s
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(
                ffmpeg_args(stream), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
            )
            try:
                while True:
                    buf = proc.stdout.read(frame_bytes)
                    if len(buf) < frame_bytes:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"scene detection took longer than {cfg.timeout_s:g} s")
                    yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
            finally:
                proc.stdout.close()
                proc.kill() if proc.poll() is None else None
                proc.wait()
