"""Frames to mp4: ffmpeg (argument lists, never a shell) writes H.264 yuv420p; reading back (probe, decode) is
:mod:`ophora.video`'s. Frames are uint8 RGB arrays shaped ``(frames, height, width, 3)``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from ophora.video import VideoError, raw_frames_input


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
    cmd = [
        *raw_frames_input(w, h, fps),
        "-an",
        "-c:v",
        "libx264",
        "-preset",
        "medium",
        "-crf",
        str(crf),
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        "-frames:v",
        str(t),
        str(out),
    ]
    try:
        proc = subprocess.run(
            cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise VideoError(f"{out}: ffmpeg took longer than {timeout:.0f} s") from e
    if proc.returncode != 0:
        raise VideoError(f"{out}: ffmpeg failed: {proc.stderr.decode(errors='replace').strip()[-400:]}")
    return out


def pick_frames(frames: np.ndarray, count: int) -> np.ndarray:
    """``count`` frames spread evenly over the clip (first and last included); frames repeat when it is short."""
    total = frames.shape[0]
    if count == 1:
        return frames[:1]
    idx = np.round(np.linspace(0, total - 1, count)).astype(int)
    return frames[idx]
