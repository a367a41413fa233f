"""A few frames of a clip window, decoded with PyAV and downscaled, for the filter stages (dynamics, quality,
privacy, dedup).

Only ``count`` small frames are ever held: decoding streams from the keyframe before ``start`` and keeps the
first frame at or after each sampling time. Frames are uint8 RGB arrays ``(count, height, width, 3)``.
A tiny per-process cache lets stages that run in one process (tests, a fused local pipeline) share a decode.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from ophora.storage import is_url
from ophora.video import VideoError
from ophora.video import frames_at as video_frames_at

_CACHE_SIZE = 4
_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


FrameError = VideoError  # the window's frames cannot be read; the message names the file and why


def sample_times(start: float, end: float, count: int) -> list[float]:
    """``count`` sampling times spread evenly over [start, end): the centre of each of ``count`` equal parts."""
    if count <= 0:
        raise ValueError(f"count must be positive, got {count}")
    if end <= start:
        raise ValueError(f"empty window [{start}, {end}]")
    step = (end - start) / count
    return [start + (i + 0.5) * step for i in range(count)]


def window_frames(path: str, start: float, end: float, count: int = 8, max_side: int = 320) -> np.ndarray:
    """``count`` RGB frames of ``path`` sampled evenly over [start, end], longer side at most ``max_side``: at
    each sample time the first frame another frame refers to (unreferenced B-frames are not decoded; a sample
    moves a few frames later at most and costs a third of the decode).

    Raises :class:`FrameError` naming the file when it cannot be opened, has no video stream, or has no frame
    in the window. A window that runs past the end of the stream repeats its last decoded frame. The returned
    array is read-only (it may be shared through the cache)."""
    key = (path, round(start, 4), round(end, 4), count, max_side)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    frames = _decode(path, sample_times(start, end, count), max_side, skip_unreferenced=True)
    frames.setflags(write=False)
    with _cache_lock:
        _cache[key] = frames
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return frames


def frames_at(path: str, times: list[float], max_side: int = 320) -> np.ndarray:
    """RGB frames of ``path`` at ascending ``times`` (seconds), longer side at most ``max_side``: the first frame
    at or after each time. Raises :class:`FrameError` as :func:`window_frames` does. Not cached."""
    if list(times) != sorted(times) or not times:
        raise ValueError("times must be a non-empty ascending list")
    return _decode(path, list(times), max_side)


def _decode(path: str, times: list[float], max_side: int, skip_unreferenced: bool = False) -> np.ndarray:
    if is_url(path):  # a remote file is read through fsspec; decoders never see a URL
        import fsspec

        with fsspec.open(path, "rb") as f:
            return video_frames_at(f, times, max_side, skip_unreferenced)
    return video_frames_at(path, times, max_side, skip_unreferenced)


def row_video_path(row: dict[str, Any]) -> str:
    """The file a stage decodes for a row: the node-local copy when the pipeline made one, else the source."""
    path = row.get("local_path") or row.get("source_uri") or ""
    if not path:
        raise FrameError("row has neither local_path nor source_uri")
    return path
