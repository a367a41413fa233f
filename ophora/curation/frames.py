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
from ophora.video import open_container

_CACHE_SIZE = 4
_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


class FrameError(ValueError):
    """The window's frames cannot be read; the message names the file and why."""


def sample_times(start: float, end: float, count: int) -> list[float]:
    """``count`` sampling times spread evenly over [start, end): the centre of each of ``count`` equal parts."""
    if count <= 0:
        raise ValueError(f"count must be positive, got {count}")
    if end <= start:
        raise ValueError(f"empty window [{start}, {end}]")
    step = (end - start) / count
    return [start + (i + 0.5) * step for i in range(count)]


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is at most ``max_side``, both even (never upscaled)."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def window_frames(path: str, start: float, end: float, count: int = 8, max_side: int = 320) -> np.ndarray:
    """``count`` RGB frames of ``path`` sampled evenly over [start, end], longer side at most ``max_side``.

    Raises :class:`FrameError` naming the file when it cannot be opened, has no video stream, or has no frame
    in the window. A window that runs past the end of the stream repeats its last decoded frame. The returned
    array is read-only (it may be shared through the cache)."""
    key = (path, round(start, 4), round(end, 4), count, max_side)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    frames = _decode(path, sample_times(start, end, count), max_side)
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


def _open(path: str) -> Any:
    if is_url(path):
        import fsspec

        return open_container(fsspec.open(path, "rb").open())
    return open_container(path)


def _decode(path: str, times: list[float], max_side: int) -> np.ndarray:
    import av

    try:
        container = _open(path)
    except (av.FFmpegError, OSError) as e:
        raise FrameError(f"{path}: cannot open ({e})") from e
    try:
        if not container.streams.video:
            raise FrameError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise FrameError(f"{path}: video stream has no frame size")
        out_w, out_h = scaled_size(width, height, max_side)
        tb = stream.time_base
        if times[0] > 0 and tb:
            container.seek(int(times[0] / tb), stream=stream, backward=True, any_frame=False)
        picked: list[np.ndarray] = []
        last = None
        try:
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else 0.0
                last = frame
                while len(picked) < len(times) and t + 1e-3 >= times[len(picked)]:
                    picked.append(frame.to_ndarray(width=out_w, height=out_h, format="rgb24"))
                if len(picked) == len(times):
                    break
        except av.FFmpegError as e:
            if not picked and last is None:
                raise FrameError(f"{path}: cannot decode ({e})") from e
        if not picked:
            if last is None or (last.time or 0.0) < times[0] - 1.0:
                raise FrameError(f"{path}: no frames between {times[0]:.2f}s and {times[-1]:.2f}s")
            picked.append(last.to_ndarray(width=out_w, height=out_h, format="rgb24"))
        while len(picked) < len(times):
            picked.append(picked[-1])
        return np.stack(picked)
    finally:
        container.close()


def row_video_path(row: dict[str, Any]) -> str:
    """The file a stage decodes for a row: the node-local copy when the pipeline made one, else the source."""
    path = row.get("local_path") or row.get("source_uri") or ""
    if not path:
        raise FrameError("row has neither local_path nor source_uri")
    return path
