"""What an editor or a recorder draws over the microscope picture, in styles drawn from the seed: text in one of
several fonts (TrueType faces that ship with matplotlib, or OpenCV's Hershey fonts), any hue, opacity and outline,
and graphics (arrows, rings, panels) in any hue, opacity and stroke width.

The privacy detectors are measured against these; they must not know the styles, so nothing here is a fixed
palette: colours come from the whole hue circle.
"""

from __future__ import annotations

import colorsys
import math
import os
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

_TTF = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
)
_HERSHEY = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_PLAIN,
)


def random_colour(
    rng: np.random.Generator, saturation: tuple[float, float] = (0.0, 1.0), value: tuple[float, float] = (0.7, 1.0)
) -> tuple[int, int, int]:
    """A BGR colour from anywhere on the hue circle."""
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*saturation), rng.uniform(*value))
    return int(255 * b), int(255 * g), int(255 * r)


@cache
def _font(name: str, size: int):
    import matplotlib
    from PIL import ImageFont

    return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name), size)


@dataclass
class TextStyle:
    """How a line of text is drawn: a TrueType face (``ttf``) or a Hershey font, colour, opacity, outline."""

    ttf: str
    hershey: int
    colour: tuple[int, int, int]
    alpha: float
    outline: int
    outline_colour: tuple[int, int, int]

    @classmethod
    def draw(cls, rng: np.random.Generator, colour: tuple[int, int, int] | None = None) -> TextStyle:
        use_ttf = rng.random() < 0.7
        return cls(
            _TTF[int(rng.integers(len(_TTF)))] if use_ttf else "",
            _HERSHEY[int(rng.integers(len(_HERSHEY)))],
            colour or random_colour(rng, (0.0, 1.0), (0.75, 1.0)),
            float(rng.uniform(0.6, 1.0)),
            int(rng.integers(0, 3)),
            (0, 0, 0) if rng.random() < 0.8 else random_colour(rng),
        )


def draw_text(
    img: np.ndarray, text: str, x: int, y: int, height: int, style: TextStyle, max_width: int | None = None
) -> int:
    """Draw ``text`` with its top-left near (x, y), about ``height`` px tall, blended by the style's alpha;
    returns the drawn width. TrueType faces draw any Latin letter; Hershey fonts only ASCII (others are dropped)."""
    layer = img.copy()
    if style.ttf:
        from PIL import Image, ImageDraw

        font = _font(style.ttf, max(8, height))
        width = int(font.getlength(text))
        if max_width and width > max_width:
            font = _font(style.ttf, max(8, int(height * max_width / width)))
            width = int(font.getlength(text))
        pil = Image.fromarray(cv2.cvtColor(layer, cv2.COLOR_BGR2RGB))
        ImageDraw.Draw(pil).text(
            (x, y),
            text,
            font=font,
            fill=style.colour[::-1],
            stroke_width=style.outline,
            stroke_fill=style.outline_colour[::-1],
        )
        layer = cv2.cvtColor(np.asarray(pil), cv2.COLOR_RGB2BGR)
    else:
        text = text.encode("ascii", "ignore").decode()
        (w, h), _ = cv2.getTextSize(text, style.hershey, 1.0, 2)
        scale = height / max(h, 1)
        if max_width and w * scale > max_width:
            scale = max_width / w
        thick = max(1, int(scale * 2))
        if style.outline:
            cv2.putText(
                layer,
                text,
                (x, y + int(h * scale)),
                style.hershey,
                scale,
                style.outline_colour,
                thick + 2 * style.outline,
                cv2.LINE_AA,
            )
        cv2.putText(layer, text, (x, y + int(h * scale)), style.hershey, scale, style.colour, thick, cv2.LINE_AA)
        width = int(w * scale)
    cv2.addWeighted(layer, style.alpha, img, 1.0 - style.alpha, 0.0, dst=img)
    return width


def draw_bar(img: np.ndarray, text: str, top: bool, rng: np.random.Generator) -> None:
    """An OR-recorder caption bar across the frame: white (or pale) monospace text on a black band."""
    h, w = img.shape[:2]
    band = int(h * rng.uniform(0.045, 0.07))
    y0 = 0 if top else h - band
    img[y0 : y0 + band] = (img[y0 : y0 + band] * rng.uniform(0.0, 0.15)).astype(np.uint8)
    style = TextStyle(
        _TTF[2 + int(rng.integers(2))],
        cv2.FONT_HERSHEY_PLAIN,
        random_colour(rng, (0.0, 0.15), (0.85, 1.0)),
        1.0,
        0,
        (0, 0, 0),
    )
    draw_text(img, text, int(0.015 * w), y0 + int(0.15 * band), int(0.65 * band), style, int(0.97 * w))


@dataclass
class GraphicsStyle:
    """Colours, opacity and stroke widths of an editor's teaching graphics."""

    colours: list[tuple[int, int, int]]
    alpha: float
    stroke: int

    @classmethod
    def draw(cls, rng: np.random.Generator, height: int) -> GraphicsStyle:
        return cls(
            [random_colour(rng, (0.3, 1.0), (0.6, 1.0)) for _ in range(4)],
            float(rng.uniform(0.55, 1.0)),
            max(1, int(height * rng.uniform(0.003, 0.012))),
        )


def draw_arrow(
    img: np.ndarray,
    centre: np.ndarray,
    radius: float,
    angle: float,
    length: float,
    colour: tuple[int, int, int],
    stroke: int,
) -> None:
    """An arrow pointing at ``centre`` from ``angle``, its tip ``radius`` away."""
    direction = np.array([math.cos(angle), math.sin(angle)])
    tip, tail = centre + radius * direction, centre + (radius + length) * direction
    cv2.arrowedLine(img, tuple(tail.astype(int)), tuple(tip.astype(int)), colour, stroke, cv2.LINE_AA, tipLength=0.3)
