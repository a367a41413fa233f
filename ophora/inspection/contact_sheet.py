"""Frames out of a clip (PyAV, in memory) and the pictures made of them: contact sheets, strips, previews."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image

from ophora.video import open_container


@dataclass
class VideoFacts:
    """What decoding a clip found: frames actually decoded, frame size and the stream's average frame rate."""

    num_frames: int
    width: int
    height: int
    fps: float
    codec: str
    pix_fmt: str


def _open(video: bytes | str | Path | IO[bytes]):
    return open_container(video)


def probe_decode(video: bytes | str | Path) -> VideoFacts:
    """Decode every frame of the first video stream and report what was found (raises av.FFmpegError or
    ValueError when the bytes are no decodable video)."""
    with _open(video) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        count, width, height = 0, stream.codec_context.width, stream.codec_context.height
        for frame in container.decode(stream):
            count += 1
            width, height = frame.width, frame.height
        rate = stream.average_rate or stream.guessed_rate or 0
        return VideoFacts(count, width, height, float(rate), stream.codec_context.name,
                          stream.codec_context.format.name if stream.codec_context.format else "")


def _spread(total: int, n: int) -> list[int]:
    """``n`` frame indices spread evenly over ``total`` frames, first and last included."""
    if n == 1 or total == 1:
        return [0]
    return sorted({round(i * (total - 1) / (n - 1)) for i in range(min(n, total))})


def sample_frames(video: bytes | str | Path, n: int, height: int | None = None) -> list[Image.Image]:
    """``n`` frames spread evenly over the clip (first and last included), optionally scaled to ``height``.
    Only the chosen frames are converted to images; the rest are decoded and dropped."""
    if n <= 0:
        return []
    with _open(video) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        promised = int(stream.frames or 0)
        picks = set(_spread(promised, n)) if promised > 0 else None
        chosen, kept_all = [], []
        for i, frame in enumerate(container.decode(stream)):
            if picks is None:
                kept_all.append(frame.to_image())
            elif i in picks:
                chosen.append(frame.to_image())
        if picks is None:
            chosen = [kept_all[i] for i in _spread(len(kept_all), n)] if kept_all else []
    if not chosen:
        raise ValueError("the clip decodes to no frames")
    if height:
        chosen = [im.resize((max(1, round(im.width * height / im.height)), height), Image.BILINEAR)
                  for im in chosen]
    return chosen


def tile(frames: list[Image.Image], columns: int, gap: int = 2, background=(16, 16, 16)) -> Image.Image:
    """Frames laid out left to right, top to bottom, ``columns`` per row."""
    if not frames:
        raise ValueError("nothing to tile")
    w, h = frames[0].size
    columns = max(1, min(columns, len(frames)))
    rows = (len(frames) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w + (columns - 1) * gap, rows * h + (rows - 1) * gap), background)
    for i, im in enumerate(frames):
        sheet.paste(im.convert("RGB").resize((w, h)), ((i % columns) * (w + gap), (i // columns) * (h + gap)))
    return sheet


def contact_sheet(video: bytes | str | Path, out_png: str | Path, frames: int = 12, columns: int = 4,
                  height: int | None = 240) -> Path:
    """Write a PNG grid of ``frames`` evenly spaced frames; returns its path."""
    out = Path(out_png)
    tile(sample_frames(video, frames, height), columns).save(out, format="PNG")
    return out


def thumbnail_strip(frames: list[Image.Image], out_jpg: str | Path, quality: int = 80) -> Path:
    """A one-row JPEG strip of already sampled frames."""
    out = Path(out_jpg)
    tile(frames, columns=len(frames), gap=1).save(out, format="JPEG", quality=quality)
    return out


def animated_preview(frames: list[Image.Image], out_webp: str | Path, fps: float = 4.0) -> Path:
    """A looping animated WebP of already sampled frames (small; shown when a card is hovered)."""
    out = Path(out_webp)
    first, *rest = [f.convert("RGB") for f in frames]
    first.save(out, format="WEBP", save_all=True, append_images=rest, duration=int(1000 / fps), loop=0,
               quality=60)
    return out
