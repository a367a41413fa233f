"""The non-microscope parts of a narrated surgery video and the decorations laid over the microscope view.

Every scene is an object with frame(t) -> BGR uint8 array (t in seconds from the scene start, may run a little
outside the scene during a dissolve). Callers must not modify a returned frame: stills hand out the same array.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ophora.curation.synthetic_eye import SurgicalView

FONT = cv2.FONT_HERSHEY_SIMPLEX


def _fit_text(img: np.ndarray, text: str, org: tuple[int, int], max_width: int, height_px: int,
              colour: tuple[int, int, int], thick_scale: float = 0.08, centre: bool = False) -> None:
    """Draw text no taller than height_px and no wider than max_width."""
    base_w, base_h = cv2.getTextSize(text, FONT, 1.0, 2)[0]
    scale = min(height_px / max(base_h, 1), max_width / max(base_w, 1))
    thick = max(1, int(height_px * thick_scale))
    x = org[0] - int(base_w * scale / 2) if centre else org[0]
    cv2.putText(img, text, (x, org[1]), FONT, scale, colour, thick, cv2.LINE_AA)


class Still:
    """A scene that never changes: black frames, a title slide, a frozen frame."""

    def __init__(self, image: np.ndarray):
        self.image = image

    def frame(self, t: float) -> np.ndarray:
        return self.image


def black(width: int, height: int) -> Still:
    return Still(np.zeros((height, width, 3), np.uint8))


def title_slide(width: int, height: int, title: str, lines: list[str], rng: np.random.Generator) -> Still:
    """A presentation title slide: gradient background, a title, a few lines, an eye logo."""
    top = np.array(rng.uniform(40, 120, 3), np.float32)
    bottom = top * rng.uniform(0.2, 0.5)
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    img = (top * (1 - ramp) + bottom * ramp).repeat(width, axis=1).astype(np.uint8)
    accent = tuple(int(v) for v in rng.integers(150, 256, 3))
    cv2.rectangle(img, (0, int(0.18 * height)), (width, int(0.19 * height)), accent, -1)
    _fit_text(img, title, (width // 2, int(0.36 * height)), int(0.86 * width), int(0.08 * height),
              (255, 255, 255), centre=True)
    for i, line in enumerate(lines):
        _fit_text(img, line, (width // 2, int((0.52 + 0.1 * i) * height)), int(0.7 * width), int(0.045 * height),
                  (225, 225, 225), centre=True)
    c, r = (int(0.9 * width), int(0.88 * height)), int(0.06 * height)
    cv2.ellipse(img, c, (int(1.8 * r), r), 0, 0, 360, accent, max(2, r // 8), cv2.LINE_AA)
    cv2.circle(img, c, int(0.6 * r), accent, -1, cv2.LINE_AA)
    return Still(img)


class Presenter:
    """The presenting surgeon's face (a real photograph) with a name caption and a slow camera push-in."""

    def __init__(self, width: int, height: int, caption: str, rng: np.random.Generator):
        from skimage import data  # the astronaut photograph ships inside scikit-image

        photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        side = int(0.9 * height)
        bg = np.array(rng.uniform(30, 90, 3), np.float32)
        img = np.empty((height, width, 3), np.uint8)
        img[:] = bg.astype(np.uint8)
        x = int(rng.uniform(0.1, 0.9) * (width - side))
        img[height - side:, x:x + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
        bar_top = int(0.8 * height)
        cv2.rectangle(img, (0, bar_top), (width, int(0.92 * height)), (90, 50, 20), -1)
        _fit_text(img, caption, (int(0.04 * width), int(0.885 * height)), int(0.9 * width), int(0.05 * height),
                  (255, 255, 255))
        self.image, self.zoom_rate = img, rng.uniform(0.008, 0.02)

    def frame(self, t: float) -> np.ndarray:
        h, w = self.image.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, 0.45 * h), 0.0, 1.0 + self.zoom_rate * max(t, 0.0))
        return cv2.warpAffine(self.image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


class Overlay:
    """Teaching graphics over the microscope view: pulsing arrows at the pupil, a ring, a labelled diagram."""

    def __init__(self, view: SurgicalView, label: str, rng: np.random.Generator):
        self.view, self.label = view, label
        self.colours = [tuple(int(v) for v in c) for c in rng.permutation(
            [(0, 230, 255), (255, 220, 0), (255, 0, 200), (60, 255, 60)])]
        self.arrow_angles = rng.uniform(0, 2 * math.pi, 2)
        h, w = view.height, view.width
        self.panel = (int(0.03 * w), int(0.05 * h), int(0.28 * w), int(0.36 * h))

    def frame(self, t: float) -> np.ndarray:
        img = self.view.frame(t)
        v = self.view
        c, s = v.eye_at(t)
        r = v.r_pupil * s
        thick = max(2, int(0.006 * v.height))
        pulse = 1.0 + 0.15 * math.sin(2 * math.pi * 1.2 * t)
        for a, colour in zip(self.arrow_angles, self.colours):
            tip = c + r * np.array([math.cos(a), math.sin(a)])
            tail = c + r * (1.0 + 1.1 * pulse) * np.array([math.cos(a), math.sin(a)])
            cv2.arrowedLine(img, tuple(tail.astype(int)), tuple(tip.astype(int)), colour, thick * 2, cv2.LINE_AA,
                            tipLength=0.3)
        cv2.circle(img, tuple(c.astype(int)), int(0.82 * r), self.colours[2], thick, cv2.LINE_AA)
        x, y, w, h = self.panel
        cv2.rectangle(img, (x, y), (x + w, y + h), (245, 245, 245), -1)
        cv2.rectangle(img, (x, y), (x + w, y + h), self.colours[3], thick)
        eye_c = (x + w // 2, y + int(0.58 * h))  # a side view of the eye: globe, cornea, lens, iris
        cv2.circle(img, eye_c, int(0.3 * h), (90, 90, 200), thick, cv2.LINE_AA)
        cv2.ellipse(img, (eye_c[0] - int(0.28 * h), eye_c[1]), (int(0.08 * h), int(0.2 * h)), 0, 90, 270,
                    (200, 120, 0), thick, cv2.LINE_AA)
        cv2.ellipse(img, (eye_c[0] - int(0.12 * h), eye_c[1]), (int(0.05 * h), int(0.12 * h)), 0, 0, 360,
                    (0, 160, 240), -1, cv2.LINE_AA)
        H, W = img.shape[:2]  # a step caption banner across the bottom
        cv2.rectangle(img, (int(0.25 * W), int(0.86 * H)), (int(0.75 * W), int(0.95 * H)), self.colours[0], -1)
        _fit_text(img, self.label, (W // 2, int(0.925 * H)), int(0.46 * W), int(0.05 * H), (20, 20, 20),
                  centre=True)
        return img


class PictureInPicture:
    """The microscope view with an inset second view (an OCT-style cross-section with a moving scan line)."""

    def __init__(self, view: SurgicalView, rng: np.random.Generator):
        self.view = view
        w, h = int(0.3 * view.width), int(0.3 * view.height)
        xs = np.linspace(-1, 1, w, dtype=np.float32)
        inset = rng.normal(20, 8, (h, w)).clip(0, 255).astype(np.float32)
        for depth, bright in ((0.3, 230), (0.36, 150), (0.62, 200), (0.7, 120)):
            ys = (depth * h + 0.18 * h * xs ** 2).astype(int)
            for dy in range(-2, 3):
                inset[np.clip(ys + dy, 0, h - 1), np.arange(w)] = bright - 30 * abs(dy)
        self.inset = cv2.cvtColor(cv2.GaussianBlur(inset, (3, 3), 0).clip(0, 255).astype(np.uint8),
                                  cv2.COLOR_GRAY2BGR)
        corner = rng.integers(4)
        self.x = int(0.02 * view.width) if corner % 2 == 0 else view.width - w - int(0.02 * view.width)
        self.y = int(0.03 * view.height) if corner < 2 else view.height - h - int(0.03 * view.height)

    def frame(self, t: float) -> np.ndarray:
        img = self.view.frame(t)
        h, w = self.inset.shape[:2]
        img[self.y:self.y + h, self.x:self.x + w] = self.inset
        sx = self.x + int((0.5 + 0.45 * math.sin(t)) * w)
        cv2.line(img, (sx, self.y), (sx, self.y + h - 1), (0, 200, 255), 2)
        cv2.rectangle(img, (self.x, self.y), (self.x + w, self.y + h), (255, 255, 255), 3)
        return img


class BurnedInText:
    """The microscope view with the recorder's stamp: patient name, birth date, record number, hospital."""

    def __init__(self, view: SurgicalView, lines: list[str], rng: np.random.Generator):
        self.view, self.lines = view, lines
        self.line_h = int(0.035 * view.height)
        self.x = int(0.02 * view.width)
        self.y0 = int(0.06 * view.height) if rng.random() < 0.5 else int(
            view.height - (len(lines) + 0.5) * 1.6 * self.line_h)
        self.colour = (255, 255, 255) if rng.random() < 0.6 else (0, 255, 255)

    def frame(self, t: float) -> np.ndarray:
        img = self.view.frame(t)
        for i, line in enumerate(self.lines):
            _fit_text(img, line, (self.x, self.y0 + int((i + 1) * 1.6 * self.line_h)), int(0.6 * self.view.width),
                      self.line_h, self.colour, thick_scale=0.1)
        return img


def dissolve(a: np.ndarray, b: np.ndarray, weight_b: float) -> np.ndarray:
    """One frame of a cross-dissolve from a to b."""
    return cv2.addWeighted(a, 1.0 - weight_b, b, weight_b, 0.0)
