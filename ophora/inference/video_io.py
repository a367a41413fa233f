"""Frames to mp4 and back: ffmpeg (argument lists, never a shell) writes H.264 yuv420p, PyAV decodes.

Frames are uint8 RGB arrays shaped ``(frames, height, width, 3)``.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ophora.video import DecodeLimitExceeded, DecodeLimits, bounded_frames, ffprobe_args, open_container


class VideoError(ValueError):
    """A video cannot be written or read; the message names the file and why."""


@dataclass
class StreamFacts:
    """What ffprobe reports for the first video stream of a file."""

    frames: int
    width: int
    height: int
    fps: float
    codec: str
    pix_fmt: str


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] (the pipeline's ``output_type='np'``) as uint8; uint8 input passes through."""
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def encode_mp4(frames: np.ndarray, path: str | Path, fps: float, crf: int = 18, timeout: float = 600) -> Path:
    """Write ``frames`` to ``path`` as H.264 yuv420p at ``fps`` with every frame kept (no rate conversion).

    Odd sizes are refused because yuv420p needs even sides."""
    frames = to_uint8(np.asarray(frames))
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise VideoError(f"{path}: frames must be (T, H, W, 3) with T > 0, got {frames.shape}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise VideoError(f"{path}: {w}x{h} has an odd side; H.264 yuv420p needs even width and height")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "pipe:0", "-an", "-c:v", "libx264", "-preset", "medium",
           "-crf", str(crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-frames:v", str(t), str(out)]
    try:
        proc = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise VideoError(f"{out}: ffmpeg took longer than {timeout:.0f} s") from e
    if proc.returncode != 0:
        raise VideoError(f"{out}: ffmpeg failed: {proc.stderr.decode(errors='replace').strip()[-400:]}")
    return out


def probe_stream(path: str | Path, timeout: float = 60) -> StreamFacts:
    """Frame count (decoded, not the header's guess), size, fps, codec and pixel format via ffprobe."""
    cmd = ffprobe_args(path, "-select_streams", "v:0", "-count_frames", "-show_entries",
                       "stream=nb_read_frames,width,height,avg_frame_rate,codec_name,pix_fmt", "-of", "json")
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise VideoError(f"{path}: ffprobe failed: {proc.stderr.decode(errors='replace').strip()[-300:]}")
    streams = json.loads(proc.stdout or b"{}").get("streams") or []
    if not streams:
        raise VideoError(f"{path}: no video stream")
    s = streams[0]
    num, _, den = str(s.get("avg_frame_rate", "0/1")).partition("/")
    fps = float(num) / float(den or 1) if float(den or 1) else 0.0
    return StreamFacts(frames=int(s.get("nb_read_frames", 0)), width=int(s["width"]), height=int(s["height"]),
                       fps=fps, codec=str(s.get("codec_name", "")), pix_fmt=str(s.get("pix_fmt", "")))


def decode_frames(video: bytes | str | Path, max_frames: int | None = None,
                  limits: DecodeLimits = DecodeLimits()) -> np.ndarray:
    """Every frame (or the first ``max_frames``) of a video file or mp4 bytes as uint8 RGB ``(T, H, W, 3)``;
    VideoError when it cannot be decoded or breaks ``limits`` (frame size; frame count unless ``max_frames``
    stops sooner)."""
    import av

    name = "<bytes>" if isinstance(video, (bytes, bytearray)) else str(video)
    frames = []
    try:
        with open_container(video) as container:
            if not container.streams.video:
                raise VideoError(f"{name}: no video stream")
            for frame in bounded_frames(container, container.streams.video[0], limits):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except (av.FFmpegError, DecodeLimitExceeded) as e:
        raise VideoError(f"{name}: cannot decode ({e})") from e
    if not frames:
        raise VideoError(f"{name}: no decodable frames")
    return np.stack(frames)


def pick_frames(frames: np.ndarray, count: int) -> np.ndarray:
    """``count`` frames spread evenly over the clip (first and last included); frames repeat when it is short."""
    total = frames.shape[0]
    if count == 1:
        return frames[:1]
    idx = np.round(np.linspace(0, total - 1, count)).astype(int)
    return frames[idx]
