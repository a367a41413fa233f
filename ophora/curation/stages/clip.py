"""clip: cut one clip window out of its source with ffmpeg and transcode it to the trainer's format.

Input seeking (``-ss`` before ``-i``) with a transcode is frame-exact; the ``fps`` filter resamples any source
rate (variable rates included) to ``windows.fps``; frames are resized to cover ``clip.height x clip.width`` and
centre-cropped (or kept native, evened for yuv420p); ffmpeg applies the display rotation itself. The result is
checked with ffprobe: a clip with the wrong frame count or size is dropped with a reason, never written.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import ffmpeg

from ophora.curation.config import CurateConfig
from ophora.curation.inputs import localize
from ophora.curation.stages.common import Reject, RowStage, ToolError, ffmpeg_args, run_tool, update_meta
from ophora.curation.stages.probe import ffmpeg_path


def count_frames(path: str, timeout: float) -> tuple[int, int, int]:
    """(frames, width, height) of the first video stream of a local file, counted from its packets."""
    args = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
            "stream=nb_read_packets,width,height", "-of", "json", ffmpeg_path(path)]
    stream = json.loads(run_tool(args, timeout))["streams"][0]
    return int(stream.get("nb_read_packets") or 0), int(stream["width"]), int(stream["height"])


class Clip(RowStage):
    """Fills ``mp4`` with the clip's H.264 yuv420p bytes and records its fps/frames/size in ``meta_json``."""

    name = "clip"
    level = "window"

    def __init__(self, config: CurateConfig):
        self.cfg, self.win = config.clip, config.windows
        self.cache_dir = config.input_cache_dir

    def _frame_filters(self, stream):
        stream = stream.filter("fps", fps=self.win.fps)
        if self.cfg.keep_native:
            stream = stream.filter("scale", "trunc(iw/2)*2", "trunc(ih/2)*2")
        else:
            stream = (stream.filter("scale", self.cfg.width, self.cfg.height, force_original_aspect_ratio="increase")
                      .filter("crop", self.cfg.width, self.cfg.height))
        return stream.filter("setsar", 1)

    def process(self, row: dict[str, Any]) -> None:
        local = row["local_path"] or localize(row["source_uri"], self.cache_dir)
        if not os.path.exists(local):  # another node downloaded it; fetch here
            local = localize(row["source_uri"], self.cache_dir)
        n = self.win.num_frames
        with tempfile.TemporaryDirectory(prefix="ophora-clip-") as tmp:
            out = os.path.join(tmp, "clip.mp4")
            src = ffmpeg.input(ffmpeg_path(local), ss=f"{row['start']:.4f}", t=f"{n / self.win.fps + 0.5 / self.win.fps:.4f}")
            stream = ffmpeg.output(self._frame_filters(src.video), out, vcodec="libx264", pix_fmt="yuv420p",
                                   crf=self.cfg.crf, preset=self.cfg.preset, an=None, movflags="+faststart",
                                   **{"frames:v": n, "threads": 1})
            try:
                run_tool(ffmpeg_args(stream), self.cfg.timeout_s)
                frames, width, height = count_frames(out, self.cfg.timeout_s)
            except ToolError as e:
                raise Reject(f"transcode failed ({e})") from e
            if frames != n:
                raise Reject(f"too few frames (got {frames}, want {n}: the source ends early or is damaged)")
            if not self.cfg.keep_native and (width, height) != (self.cfg.width, self.cfg.height):
                raise Reject(f"wrong frame size (got {width}x{height}, want {self.cfg.width}x{self.cfg.height})")
            with open(out, "rb") as fh:
                row["mp4"] = fh.read()
        update_meta(row, fps=self.win.fps, num_frames=frames, width=width, height=height)
