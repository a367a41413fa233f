"""How every Ophora job opens a video: one policy for ffmpeg, ffprobe and PyAV.

A source is decoded only as the container it is. Playlist and reference demuxers (HLS, concat, DASH, image
sequences, ...) would make a decoder read other local files or fetch URLs named inside the bytes, so every open
names an allow list of real container demuxers (``format_whitelist``) and the ``file`` protocol only
(``protocol_whitelist``). A remote source is fetched by Ophora (fsspec) to a local file first; no decoder is ever
handed a URL. ffmpeg checks the allow list before it reads a header, so a refused file is never parsed further.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ophora.storage import is_url

# libavformat demuxer names of containers that carry their media inline. ffprobe reports the demuxer's full name
# ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"); any one of its names on this list admits it.
# Audio-only containers are admitted too (an audio file is rejected by probe for having no video, not opened as
# something else).
CONTAINER_FORMATS: tuple[str, ...] = (
    "mov",
    "mp4",
    "matroska",
    "webm",
    "avi",
    "mpegts",
    "mpeg",
    "flv",
    "asf",
    "ogg",
    "mxf",
    "wav",
    "flac",
    "mp3",
)

# Demuxers that follow names written inside the file (playlists, manifests, concat lists, image patterns, ...):
# never admitted, whatever a configuration says.
INDIRECT_FORMATS: frozenset[str] = frozenset(
    {
        "hls",
        "applehttp",
        "concat",
        "dash",
        "image2",
        "image2pipe",
        "mpjpeg",
        "tee",
        "subfile",
        "data",
        "lavfi",
        "ffmetadata",
        "webm_dash_manifest",
        "ism",
        "smoothstreaming",
        "sdp",
        "rtsp",
        "rtp",
        "sap",
        "srtp",
        "mmf",
        "imf",
        "avisynth",
        "vapoursynth",
        "libmodplug",
    }
)

PROTOCOLS = "file"  # a local file and nothing else: no http, tcp, pipe, concat:, subfile:, data: ...


class UnsafeContainer(ValueError):
    """A file that is not one of the admitted containers (a playlist, a reference, an image sequence, ...)."""


def admitted(format_name: str, allowed: tuple[str, ...] | list[str] = CONTAINER_FORMATS) -> bool:
    """Whether a demuxer name as ffprobe/PyAV report it ("mov,mp4,m4a,3gp,3g2,mj2") is an admitted container."""
    names = {n.strip() for n in (format_name or "").split(",") if n.strip()}
    return bool(names) and not names & INDIRECT_FORMATS and bool(names & set(allowed))


def local_name(path: str | os.PathLike) -> str:
    """The name ffmpeg/ffprobe get for a local file: ``file:`` + absolute path, so a leading dash or a colon in
    the name is never read as an option or a protocol."""
    text = os.fspath(path)
    if is_url(text):
        raise UnsafeContainer(f"{text}: a URL is fetched to a local file first; decoders only open local files")
    return "file:" + os.path.abspath(text.removeprefix("file://").removeprefix("file:"))


def open_options(allowed: tuple[str, ...] | list[str] = CONTAINER_FORMATS) -> dict[str, str]:
    """libavformat options that hold the policy (for ffmpeg-python's ``input`` and PyAV's ``av.open``)."""
    return {"protocol_whitelist": PROTOCOLS, "format_whitelist": ",".join(allowed)}


def input_args(path: str | os.PathLike, allowed: tuple[str, ...] | list[str] = CONTAINER_FORMATS) -> list[str]:
    """``-protocol_whitelist file -format_whitelist ... -i file:/abs/path``: an ffmpeg/ffprobe input under the
    policy (input options go before ``-i``)."""
    args: list[str] = []
    for key, value in open_options(allowed).items():
        args += [f"-{key}", value]
    return [*args, "-i", local_name(path)]


def ffprobe_args(
    path: str | os.PathLike, *options: str, allowed: tuple[str, ...] | list[str] = CONTAINER_FORMATS
) -> list[str]:
    """An ffprobe command line on a local file under the policy (ffprobe takes its input without ``-i``)."""
    opts: list[str] = []
    for key, value in open_options(allowed).items():
        opts += [f"-{key}", value]
    return ["ffprobe", "-v", "error", *opts, *options, local_name(path)]


def ffmpeg_input(path: str | os.PathLike, allowed: tuple[str, ...] | list[str] = CONTAINER_FORMATS, **kwargs: Any):
    """An ffmpeg-python input stream of a local file under the policy (``kwargs`` are more input options)."""
    import ffmpeg

    return ffmpeg.input(local_name(path), **open_options(allowed), **kwargs)


def open_container(
    source: bytes | str | os.PathLike | IO[bytes], allowed: tuple[str, ...] | list[str] = CONTAINER_FORMATS
):
    """A PyAV input container for a local file, bytes or a binary file object, under the policy. Raises
    ``UnsafeContainer`` for a URL; PyAV raises ``av.FFmpegError`` for a file that is no admitted container."""
    import av

    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    elif isinstance(source, (str, Path, os.PathLike)):
        source = local_name(source)
    return av.open(source, mode="r", options=open_options(allowed))


# ---------------------------------------------------------------- decoding untrusted clips with bounded cost


@dataclass(frozen=True)
class DecodeLimits:
    """What decoding one clip from an untrusted shard may cost at most (the trainer's ``data`` config, the
    inspector and the evaluator each carry one). A 49-frame 480x720 clip is far inside both defaults."""

    max_frames: int = 10_000  # frames decoded from one clip before it is refused
    max_pixels: int = 3840 * 2160  # width x height of one frame (as probe.max_pixels for sources)


class DecodeLimitExceeded(ValueError):
    """A clip asks for more frames or larger frames than the reader's DecodeLimits allow."""


def bounded_frames(container, stream, limits: DecodeLimits = DecodeLimits()) -> Iterator[Any]:
    """The decoded frames of ``stream`` (PyAV), refusing, before it is decoded, a stream whose frames are larger
    than ``limits.max_pixels``, and stopping with DecodeLimitExceeded past ``limits.max_frames`` frames (a header
    may claim anything: every frame is checked as it comes)."""
    declared = (stream.codec_context.width or 0) * (stream.codec_context.height or 0)
    if declared > limits.max_pixels:
        raise DecodeLimitExceeded(
            f"frames of {stream.codec_context.width}x{stream.codec_context.height} exceed "
            f"max_pixels={limits.max_pixels}"
        )
    for count, frame in enumerate(container.decode(stream), start=1):
        if frame.width * frame.height > limits.max_pixels:
            raise DecodeLimitExceeded(f"a frame of {frame.width}x{frame.height} exceeds max_pixels={limits.max_pixels}")
        if count > limits.max_frames:
            raise DecodeLimitExceeded(f"more than max_frames={limits.max_frames} frames")
        yield frame


# ---------------------------------------------------------------- probing and decoding: the one place


class VideoError(ValueError):
    """A video cannot be read: the message names the file and why."""


@dataclass
class StreamFacts:
    """The first video stream of a file: frames (counted, not the header's guess), size, rate, codec."""

    frames: int
    width: int
    height: int
    fps: float
    codec: str
    pix_fmt: str


def _rate(text: str) -> float:
    num, _, den = str(text or "0/1").partition("/")
    return float(num) / float(den) if float(den or 1) else 0.0


def probe_stream(path: str | os.PathLike, timeout: float = 60, count: str = "frames") -> StreamFacts:
    """ffprobe's facts of a local file's first video stream. ``count``: "frames" decodes to count (exact),
    "packets" counts packets (no decode; one packet per frame for the H.264 Ophora writes)."""
    import json
    import subprocess

    counter = {"frames": ("-count_frames", "nb_read_frames"), "packets": ("-count_packets", "nb_read_packets")}
    flag, field = counter[count]
    args = ffprobe_args(
        path,
        "-select_streams",
        "v:0",
        flag,
        "-show_entries",
        f"stream={field},width,height,avg_frame_rate,codec_name,pix_fmt",
        "-of",
        "json",
    )
    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise VideoError(f"{path}: ffprobe took longer than {timeout:g} s") from e
    if done.returncode != 0:
        raise VideoError(f"{path}: ffprobe failed: {done.stderr.decode(errors='replace').strip()[-300:]}")
    streams = json.loads(done.stdout or b"{}").get("streams") or []
    if not streams:
        raise VideoError(f"{path}: no video stream")
    s = streams[0]
    return StreamFacts(
        frames=int(s.get(field) or 0),
        width=int(s["width"]),
        height=int(s["height"]),
        fps=_rate(s.get("avg_frame_rate")),
        codec=str(s.get("codec_name", "")),
        pix_fmt=str(s.get("pix_fmt", "")),
    )


def _name(video: Any) -> str:
    return "<bytes>" if isinstance(video, (bytes, bytearray)) else str(getattr(video, "name", video))


def decode_frames(
    video: bytes | str | os.PathLike | IO[bytes], max_frames: int | None = None, limits: DecodeLimits = DecodeLimits()
) -> np.ndarray:
    """Every frame (or the first ``max_frames``) of a video file or mp4 bytes as uint8 RGB ``(T, H, W, 3)``;
    VideoError when it cannot be decoded or breaks ``limits`` (frame size; frame count unless ``max_frames``
    stops sooner)."""
    import av

    frames = []
    try:
        with open_container(video) as container:
            if not container.streams.video:
                raise VideoError(f"{_name(video)}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in bounded_frames(container, stream, limits):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except (av.FFmpegError, DecodeLimitExceeded, UnsafeContainer) as e:
        raise VideoError(f"{_name(video)}: cannot decode ({e})") from e
    if not frames:
        raise VideoError(f"{_name(video)}: no decodable frames")
    return np.stack(frames)


def decoded_facts(video: bytes | str | os.PathLike | IO[bytes], limits: DecodeLimits = DecodeLimits()) -> StreamFacts:
    """StreamFacts found by decoding every frame (no ffprobe: for bytes from an untrusted shard); raises
    av.FFmpegError or VideoError when the bytes are no decodable video, DecodeLimitExceeded past ``limits``."""
    with open_container(video) as container:
        if not container.streams.video:
            raise VideoError(f"{_name(video)}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        count, width, height = 0, stream.codec_context.width, stream.codec_context.height
        for frame in bounded_frames(container, stream, limits):
            count += 1
            width, height = frame.width, frame.height
        rate = stream.average_rate or stream.guessed_rate or 0
        return StreamFacts(
            count,
            width,
            height,
            float(rate),
            stream.codec_context.name,
            stream.codec_context.format.name if stream.codec_context.format else "",
        )


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is at most ``max_side``, both even (never upscaled)."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def frames_at(
    video: str | os.PathLike | IO[bytes], times: list[float], max_side: int, skip_unreferenced: bool = False
) -> np.ndarray:
    """RGB frames at ascending ``times`` (seconds): the first frame at or after each, longer side at most
    ``max_side``. One seek to the first time, then a forward decode. A time past the end repeats the last frame
    decoded (within a second of it); VideoError naming the file otherwise.

    ``skip_unreferenced``: the decoder skips frames no other frame refers to (most B-frames: 70 % of a typical
    H.264 stream), so each time gets the first *reference* frame at or after it, a few frames later at most. For
    samples of a window that judge what it shows, not for consecutive frames that measure motion."""
    import av

    name = _name(video)
    try:
        container = open_container(video)
    except (av.FFmpegError, OSError, UnsafeContainer) as e:
        raise VideoError(f"{name}: cannot open ({e})") from e
    try:
        if not container.streams.video:
            raise VideoError(f"{name}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if skip_unreferenced:
            stream.codec_context.skip_frame = "NONREF"
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise VideoError(f"{name}: video stream has no frame size")
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
                raise VideoError(f"{name}: cannot decode ({e})") from e
        if not picked:
            if last is None or (last.time or 0.0) < times[0] - 1.0:
                raise VideoError(f"{name}: no frames between {times[0]:.2f}s and {times[-1]:.2f}s")
            picked.append(last.to_ndarray(width=out_w, height=out_h, format="rgb24"))
        while len(picked) < len(times):
            picked.append(picked[-1])
        return np.stack(picked)
    finally:
        container.close()


def raw_frames_input(width: int, height: int, fps: float | str, pix_fmt: str = "rgb24") -> list[str]:
    """The start of an ffmpeg command that reads raw ``pix_fmt`` frames of ``width``x``height`` at ``fps`` from
    stdin (the encoder, output options and path follow)."""
    rate = fps if isinstance(fps, str) else f"{fps:g}"
    return [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        pix_fmt,
        "-s",
        f"{width}x{height}",
        "-framerate",
        rate,
        "-i",
        "pipe:0",
    ]
