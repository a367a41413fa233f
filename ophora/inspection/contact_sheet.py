"""Frames out of a clip (PyAV, in memory) and the pictures made of them: contact sheets, strips, previews."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ophora.video import DecodeLimits, bounded_frames, open_container


def _spread(total: int, n: int) -> list[int]:
    """``n`` frame indices spread evenly over ``total`` frames, first and last included."""
    if n == 1 or total == 1:
        return [0]
    return sorted({round(i * (total - 1) / (n - 1)) for i in range(min(n, total))})


def _scaled(frame, height: int | None) -> Image.Image:
    im = frame.to_image()
    if height and im.height != height:
        im = im.resize((max(1, round(im.width * height / im.height)), height), Image.BILINEAR)
    return im


def sample_frames(
    video: bytes | str | Path, n: int, height: int | None = None, limits: DecodeLimits = DecodeLimits()
) -> list[Image.Image]:
    """``n`` frames spread evenly over the clip (first and last included), optionally scaled to ``height``.

    Memory stays bounded whatever the clip holds: with a frame count in the stream only the chosen frames are
    kept; without one, every ``stride``-th frame is kept (as a scaled image) and the stride doubles whenever
    more than ``2n`` are held, and the ``n`` are chosen among those. Frames and frame size are capped by
    ``limits``."""
    if n <= 0:
        return []
    kept: list[tuple[int, Image.Image]] = []
    stride, last = 1, None
    with open_container(video) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        promised = int(stream.frames or 0)
        picks = set(_spread(promised, n)) if promised > 0 else None
        for i, frame in enumerate(bounded_frames(container, stream, limits)):
            if picks is not None:
                if i in picks:
                    kept.append((i, _scaled(frame, height)))
                continue
            last = (i, frame)
            if i % stride == 0:
                kept.append((i, _scaled(frame, height)))
                if len(kept) > 2 * n:
                    stride *= 2
                    kept = [(j, im) for j, im in kept if j % stride == 0]
        if last is not None and kept[-1][0] != last[0]:  # the last frame is always among the candidates
            kept.append((last[0], _scaled(last[1], height)))
    if not kept:
        raise ValueError("the clip decodes to no frames")
    if picks is not None:
        return [im for _, im in kept]
    return [kept[k][1] for k in _spread(len(kept), n)]


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


def contact_sheet(
    video: bytes | str | Path, out_png: str | Path, frames: int = 12, columns: int = 4, height: int | None = 240
) -> Path:
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
    first.save(out, format="WEBP", save_all=True, append_images=rest, duration=int(1000 / fps), loop=0, quality=60)
    return out
