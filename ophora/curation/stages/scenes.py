"""scenes: scene boundaries with PySceneDetect on small, low-rate frames decoded by ffmpeg.

ffmpeg decodes the source once, resampled to ``scenes.analysis_fps`` and downscaled to ``scenes.analysis_width``
(so variable frame rate, rotation and huge frames cost the detector nothing extra), and pipes raw frames to the
chosen detector. A second, slower ContentDetector pass over the same frames finds dissolves and fades, which
look like slow drifts at the full analysis rate. Each boundary is kept as an interval of uncertainty (the time
between the last frame before it and the first after it); scenes are the stretches between boundaries.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from typing import Any

import numpy as np
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode

from ophora.curation.config import CurateConfig, ScenesConfig
from ophora.curation.stages.common import Reject, RowStage, ffmpeg_args
from ophora.video import ffmpeg_input


def make_detector(cfg: ScenesConfig, fps: float):
    """The configured PySceneDetect detector for frames arriving at ``fps``."""
    min_len = max(1, int(round(cfg.min_scene_len * fps)))
    if cfg.detector == "content":
        return ContentDetector(threshold=cfg.content_threshold, min_scene_len=min_len)
    return AdaptiveDetector(adaptive_threshold=cfg.adaptive_threshold, min_scene_len=min_len,
                            min_content_val=cfg.min_content_val)


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


def _around(frame: int, step: int, fps: float) -> tuple[float, float]:
    """The time span a cut reported at analysis frame ``frame`` can lie in: from the last compared frame before
    it to one frame after it (frames are picked by rounding, and detectors may report one frame early)."""
    return max(0.0, (frame - step - 1) / fps), (frame + 1) / fps


class Scenes(RowStage):
    """Fills ``scenes_json`` with ``[[start, end], ...]`` in seconds and ``facts_json["cuts"]`` with the boundary
    intervals; rejects a source whose frames cannot be decoded at all."""

    name = "scenes"
    level = "source"

    def __init__(self, config: CurateConfig):
        self.cfg = config.scenes

    def process(self, row: dict[str, Any]) -> None:
        facts = json.loads(row["facts_json"])
        boundaries, decoded = self.detect(row["local_path"], facts["width"], facts["height"])
        if decoded == 0:
            raise Reject("undecodable (no frame could be decoded)")
        # A truncated file decodes less than ffprobe promised: trust what was decoded.
        duration = min(row["duration"], decoded / self.cfg.analysis_fps)
        row["duration"] = duration
        facts["cuts"] = [[round(lo, 4), round(hi, 4)] for lo, hi in boundaries]
        facts["decoded_duration"] = round(duration, 4)
        row["facts_json"] = json.dumps(facts, sort_keys=True)
        row["scenes_json"] = json.dumps(scenes_between(boundaries, duration))

    def detect(self, local_path: str, width: int, height: int) -> tuple[list[tuple[float, float]], int]:
        """Boundary intervals (seconds) and the number of analysis frames decoded."""
        cfg, fps = self.cfg, self.cfg.analysis_fps
        w = cfg.analysis_width - cfg.analysis_width % 2
        h = max(2, int(round(w * height / width / 2)) * 2)
        # Deblocking and spec-exact tricks buy nothing at 160 px: skipping them decodes ~20% faster; at a few
        # analysis frames a second, frames nothing references need not be decoded at all. One decoding thread:
        # the actor pool is the parallelism, and frame threads cost ~25% more CPU a frame (two minutes of 720p30:
        # 6.5 -> 5.3 CPU-s). A bilinear downscale would save more, but its aliasing made false cuts.
        skip = {"skip_frame": "noref"} if cfg.skip_unreferenced else {}
        stream = (ffmpeg_input(local_path, skip_loop_filter="all", flags2="+fast", threads=1, **skip)
                  .filter("fps", fps=fps).filter("scale", w, h)
                  .output("pipe:", format="rawvideo", pix_fmt="bgr24"))
        fast = make_detector(cfg, fps)
        step = max(1, int(round(fps / cfg.dissolve_fps))) if cfg.dissolve_fps else 0
        slow = ContentDetector(threshold=cfg.dissolve_threshold, min_scene_len=1) if step else None
        boundaries: list[tuple[float, float]] = []
        frame_bytes, n = w * h * 3, 0
        deadline = time.monotonic() + cfg.timeout_s
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(ffmpeg_args(stream), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=errors)
            try:
                while True:
                    buf = proc.stdout.read(frame_bytes)
                    if len(buf) < frame_bytes:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"scene detection took longer than {cfg.timeout_s:g} s")
                    frame = np.frombuffer(buf, np.uint8).reshape(h, w, 3)
                    for cut in fast.process_frame(FrameTimecode(n, fps=fps), frame):
                        boundaries.append(_around(cut.frame_num, 1, fps))
                    if slow is not None and n % step == 0:
                        for cut in slow.process_frame(FrameTimecode(n // step, fps=fps / step), frame):
                            boundaries.append(_around(cut.frame_num * step, step, fps))
                    n += 1
            finally:
                proc.stdout.close()
                proc.kill() if proc.poll() is None else None
                proc.wait()
        if n:
            for cut in fast.post_process(FrameTimecode(n - 1, fps=fps)):
                boundaries.append(_around(cut.frame_num, 1, fps))
        return sorted(b for b in boundaries if b[0] > 0), n
