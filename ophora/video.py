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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

from ophora.storage import is_url

# libavformat demuxer names of containers that carry their media inline. ffprobe reports the demuxer's full name
# ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"); any one of its names on this list admits it.
# Audio-only containers are admitted too (an audio file is rejected by probe for having no video, not opened as
# something else).
CONTAINER_FORMATS: tuple[str, ...] = ("mov", "mp4", "matroska", "webm", "avi", "mpegts", "mpeg", "flv", "asf",
                                      "ogg", "mxf", "wav", "flac", "mp3")

# Demuxers that follow names written inside the file (playlists, manifests, concat lists, image patterns, ...):
# never admitted, whatever a configuration says.
INDIRECT_FORMATS: frozenset[str] = frozenset({
    "hls", "applehttp", "concat", "dash", "image2", "image2pipe", "mpjpeg", "tee", "subfile", "data", "lavfi",
    "ffmetadata", "webm_dash_manifest", "ism", "smoothstreaming", "sdp", "rtsp", "rtp", "sap", "srtp", "mmf",
    "imf", "avisynth", "vapoursynth", "libmodplug",
})

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


def ffprobe_args(path: str | os.PathLike, *options: str,
                 allowed: tuple[str, ...] | list[str] = CONTAINER_FORMATS) -> list[str]:
    """An ffprobe command line on a local file under the policy (ffprobe takes its input without ``-i``)."""
    opts: list[str] = []
    for key, value in open_options(allowed).items():
        opts += [f"-{key}", value]
    return ["ffprobe", "-v", "error", *opts, *options, local_name(path)]


def ffmpeg_input(path: str | os.PathLike, allowed: tuple[str, ...] | list[str] = CONTAINER_FORMATS, **kwargs: Any):
    """An ffmpeg-python input stream of a local file under the policy (``kwargs`` are more input options)."""
    import ffmpeg

    return ffmpeg.input(local_name(path), **open_options(allowed), **kwargs)


def open_container(source: bytes | str | os.PathLike | IO[bytes],
                   allowed: tuple[str, ...] | list[str] = CONTAINER_FORMATS):
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
        raise DecodeLimitExceeded(f"frames of {stream.codec_context.width}x{stream.codec_context.height} exceed "
                                  f"max_pixels={limits.max_pixels}")
    for count, frame in enumerate(container.decode(stream), start=1):
        if frame.width * frame.height > limits.max_pixels:
            raise DecodeLimitExceeded(f"a frame of {frame.width}x{frame.height} exceeds max_pixels="
                                      f"{limits.max_pixels}")
        if count > limits.max_frames:
            raise DecodeLimitExceeded(f"more than max_frames={limits.max_frames} frames")
        yield frame
