"""clip: cut clip windows out of their source with ffmpeg and transcode them to the trainer's format.

Input seeking (``-ss`` before ``-i``) with a transcode is frame-exact; the ``fps`` filter resamples any source
rate (variable rates included) to ``windows.fps``; frames are resized to cover ``clip.height x clip.width`` and
centre-cropped (or kept native, evened for yuv420p); black borders the quality stage measured (``border_*``
scores) are cropped away first; ffmpeg applies the display rotation itself. Nearby windows
of one source are cut by one ffmpeg run (``split`` + ``trim``), so the stretch is decoded once, not once per
window plus a keyframe pre-roll each; if that run fails, every window is retried alone so each gets its own
verdict. Each clip is checked with ffprobe: a wrong frame count or size drops it with a reason.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import ffmpeg
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from ophora.curation.inputs import local_source
from ophora.curation.stages.base import stage_resources
from ophora.curation.stages.common import (
    Reject,
    RowStage,
    ToolError,
    batch_to_rows,
    ffmpeg_args,
    read_meta,
    rows_to_batch,
    run_tool,
    update_meta,
)
from ophora.curation.stages.quality import border_box
from ophora.curation.stages.windows import WindowsConfig
from ophora.video import ffmpeg_input, probe_stream


def count_frames(path: str, timeout: float) -> tuple[int, int, int]:
    """(frames, width, height) of the first video stream of a local file, counted from its packets."""
    facts = probe_stream(path, timeout, count="packets")
    return facts.frames, facts.width, facts.height


class ClipConfig(BaseModel):
    """The ``clip`` section: clip transcoding (ffmpeg)."""

    model_config = ConfigDict(extra="forbid")

    height: int = Field(480, gt=0, description="clip height (ignored with keep_native)")
    width: int = Field(720, gt=0, description="clip width (ignored with keep_native)")
    keep_native: bool = Field(False, description="keep the source's frame size instead of resize + centre crop")
    crf: int = Field(18, ge=0, le=51, description="libx264 constant rate factor")
    preset: str = Field(
        "superfast",
        description="libx264 preset (superfast: ~30% less CPU than veryfast for ~1.8x the bytes at the same crf)",
    )
    group_windows: int = Field(
        8,
        ge=1,
        description="nearby windows of one source cut by one ffmpeg run, so the "
        "source is decoded once for them (1: one run per window)",
    )
    group_gap: float = Field(
        1.0,
        ge=0,
        description="windows further apart than this many seconds are not "
        "grouped (the gap would be decoded for nothing; 1 s groups the "
        "windows of a scene, which touch, at no extra decode)",
    )
    timeout_s: float = Field(300.0, gt=0, description="ffmpeg time limit per clip")


class Clip(RowStage):
    """Fills ``mp4`` with each window's H.264 yuv420p bytes and records fps/frames/size in ``meta_json``."""

    name = "clip"
    level = "window"
    sections = {"clip": ClipConfig}
    reads = {"windows": WindowsConfig}  # the clip geometry: frames and fps
    resources = stage_resources(0.3, (1, 2), 8)

    def setup(self) -> None:
        self.win = self.conf["windows"]
        self.span = self.win.num_frames / self.win.fps + 0.5 / self.win.fps  # half a frame of slack

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch_to_rows(batch)
        for group in self.groups([r for r in rows if self.wants(r)]):
            if len(group) == 1 or not self._clip_together(group):
                for row in group:
                    self.apply(row)
        return rows_to_batch(rows)

    def groups(self, rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Windows of the same source, in time order, at most ``group_windows`` and ``group_gap`` apart."""
        out: list[list[dict[str, Any]]] = []
        for row in sorted(rows, key=lambda r: (r["source_uri"], r["start"])):
            last = out[-1][-1] if out else None
            if (
                last is not None
                and last["source_uri"] == row["source_uri"]
                and len(out[-1]) < self.cfg.group_windows
                and row["start"] - last["end"] <= self.cfg.group_gap
            ):
                out[-1].append(row)
            else:
                out.append([row])
        return out

    def process(self, row: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory(prefix="ophora-clip-") as tmp:
            [path] = self._encode([row], tmp)
            self._take(row, path)

    def _clip_together(self, group: list[dict[str, Any]]) -> bool:
        """One ffmpeg run for the group; False (nothing recorded) when that run fails."""
        with tempfile.TemporaryDirectory(prefix="ophora-clip-") as tmp:
            try:
                paths = self._encode(group, tmp)
            except (ToolError, OSError):
                return False
            for row, path in zip(group, paths):
                self.apply(row, lambda r, p=path: self._take(r, p))
        return True

    def _local(self, row: dict[str, Any]) -> str:
        return local_source(row, self.run.cache_dir)

    def _frame_filters(self, stream, row: dict[str, Any]):
        facts = json.loads(row["facts_json"] or "{}")
        box = border_box(read_meta(row).get("scores", {}), int(facts.get("width", 0)), int(facts.get("height", 0)))
        if box is not None:  # (x, y, w, h) in display pixels: rotation is applied before the filters
            stream = stream.filter("crop", box[2], box[3], box[0], box[1])
        stream = stream.filter("fps", fps=self.win.fps)
        if self.cfg.keep_native:
            stream = stream.filter("scale", "trunc(iw/2)*2", "trunc(ih/2)*2")
        else:
            stream = stream.filter(
                "scale", self.cfg.width, self.cfg.height, force_original_aspect_ratio="increase"
            ).filter("crop", self.cfg.width, self.cfg.height)
        return stream.filter("setsar", 1)

    def _encode(self, rows: list[dict[str, Any]], tmp: str) -> list[str]:
        """Transcode the windows (one source, time order) with one ffmpeg run; returns one mp4 path per row."""
        first, last = rows[0]["start"], rows[-1]["start"]
        # One decoding thread: the actor pool is the parallelism, and frame threads cost more CPU a frame.
        src = ffmpeg_input(
            self._local(rows[0]), ss=f"{first:.4f}", t=f"{last - first + self.span:.4f}", threads=1
        ).video
        branches = (
            [src]
            if len(rows) == 1
            else [src.filter_multi_output("split", len(rows)).stream(i) for i in range(len(rows))]
        )
        outputs, paths = [], []
        for i, (row, branch) in enumerate(zip(rows, branches)):
            if len(rows) > 1:
                branch = branch.trim(start=f"{row['start'] - first:.4f}", duration=f"{self.span:.4f}").setpts(
                    "PTS-STARTPTS"
                )
            paths.append(os.path.join(tmp, f"clip{i}.mp4"))
            outputs.append(
                ffmpeg.output(
                    self._frame_filters(branch, row),
                    paths[-1],
                    vcodec="libx264",
                    pix_fmt="yuv420p",
                    crf=self.cfg.crf,
                    preset=self.cfg.preset,
                    movflags="+faststart",
                    **{"frames:v": self.win.num_frames, "an": None, "threads": 1},
                )
            )
        stream = outputs[0] if len(outputs) == 1 else ffmpeg.merge_outputs(*outputs)
        try:
            run_tool(ffmpeg_args(stream), self.cfg.timeout_s * len(rows))
        except ToolError as e:
            if len(rows) == 1:
                raise Reject(f"transcode failed ({e})") from e
            raise
        return paths

    def _take(self, row: dict[str, Any], path: str) -> None:
        """Check one encoded clip and move its bytes into the row (Reject when it breaks the promise)."""
        n = self.win.num_frames
        try:
            frames, width, height = count_frames(path, self.cfg.timeout_s) if os.path.exists(path) else (0, 0, 0)
        except ToolError as e:
            raise Reject(f"transcode failed ({e})") from e
        if frames != n:
            raise Reject(f"too few frames (got {frames}, want {n}: the source ends early or is damaged)")
        if not self.cfg.keep_native and (width, height) != (self.cfg.width, self.cfg.height):
            raise Reject(f"wrong frame size (got {width}x{height}, want {self.cfg.width}x{self.cfg.height})")
        with open(path, "rb") as fh:
            row["mp4"] = fh.read()
        update_meta(row, fps=self.win.fps, num_frames=frames, width=width, height=height)
