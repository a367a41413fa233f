"""The non-microscope parts of a narrated surgery video and the decorations laid over the microscope view.

Every scene is an object with frame(t) -> BGR uint8 array (t in seconds from the scene start, may run a little
outside the scene during a dissolve). Callers must not modify a returned frame: stills hand out the same array.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ophora.synthetic.eye import SurgicalView
from ophora.synthetic.graphics import GraphicsStyle, TextStyle, draw_arrow, draw_bar, draw_text, random_colour

FONT = cv2.FONT_HERSHEY_SIMPLEX


def _fit_text(
    img: np.ndarray,
    text: str,
    org: tuple[int, int],
    max_width: int,
    height_px: int,
    colour: tuple[int, int, int],
    thick_scale: float = 0.08,
    centre: bool = False,
) -> None:
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
    _fit_text(
        img,
        title,
        (width // 2, int(0.36 * height)),
        int(0.86 * width),
        int(0.08 * height),
        (255, 255, 255),
        centre=True,
    )
    style = TextStyle.draw(rng, colour=(225, 225, 225))
    style.alpha = 1.0
    for i, line in enumerate(lines):
        draw_text(
            img, line, int(0.15 * width), int((0.47 + 0.09 * i) * height), int(0.045 * height), style, int(0.7 * width)
        )
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
        img[height - side :, x : x + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
        bar_top = int(0.8 * height)
        cv2.rectangle(img, (0, bar_top), (width, int(0.92 * height)), random_colour(rng, (0.3, 1), (0.3, 0.6)), -1)
        draw_text(
            img,
            caption,
            int(0.04 * width),
            int(0.825 * height),
            int(0.05 * height),
            TextStyle.draw(rng, colour=(255, 255, 255)),
            int(0.9 * width),
        )
        self.image, self.zoom_rate = img, rng.uniform(0.008, 0.02)

    def frame(self, t: float) -> np.ndarray:
        h, w = self.image.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, 0.45 * h), 0.0, 1.0 + self.zoom_rate * max(t, 0.0))
        return cv2.warpAffine(self.image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


class Overlay:
    """Teaching graphics over the microscope view: arrows at the pupil, a ring, a labelled diagram panel and a
    caption banner, each in colours, opacity and stroke width drawn from the seed."""

    def __init__(self, view: SurgicalView, label: str, rng: np.random.Generator):
        self.view, self.label = view, label
        self.style = GraphicsStyle.draw(rng, view.height)
        self.text_style = TextStyle.draw(rng, colour=(20, 20, 20) if rng.random() < 0.5 else None)
        self.arrow_angles = rng.uniform(0, 2 * math.pi, int(rng.integers(1, 4)))
        self.parts = {k: rng.random() < p for k, p in (("ring", 0.6), ("panel", 0.6), ("banner", 0.7))}
        if not any(self.parts.values()):
            self.parts["banner"] = True
        h, w = view.height, view.width
        pw, ph = int(rng.uniform(0.2, 0.3) * w), int(rng.uniform(0.25, 0.35) * h)
        self.panel = (int(rng.uniform(0.02, 0.98) * (w - pw)), int(rng.uniform(0.02, 0.3) * h), pw, ph)
        self.banner_y = rng.uniform(0.78, 0.88) if rng.random() < 0.7 else rng.uniform(0.03, 0.1)

    def frame(self, t: float) -> np.ndarray:
        base = self.view.frame(t)
        img, v, st = base.copy(), self.view, self.style
        c, s = v.eye_at(t)
        r = v.r_pupil * s
        pulse = 1.0 + 0.15 * math.sin(2 * math.pi * 1.2 * t)
        for a, colour in zip(self.arrow_angles, st.colours):
            draw_arrow(img, c, r, a, r * 1.1 * pulse, colour, st.stroke * 2)
        if self.parts["ring"]:
            cv2.circle(img, tuple(c.astype(int)), int(0.82 * r), st.colours[2], st.stroke, cv2.LINE_AA)
        if self.parts["panel"]:
            x, y, w, h = self.panel
            cv2.rectangle(img, (x, y), (x + w, y + h), (245, 245, 245), -1)
            cv2.rectangle(img, (x, y), (x + w, y + h), st.colours[3], st.stroke)
            eye_c = (x + w // 2, y + int(0.58 * h))  # a side view of the eye: globe, cornea, lens
            cv2.circle(img, eye_c, int(0.3 * h), st.colours[1], st.stroke, cv2.LINE_AA)
            cv2.ellipse(
                img,
                (eye_c[0] - int(0.28 * h), eye_c[1]),
                (int(0.08 * h), int(0.2 * h)),
                0,
                90,
                270,
                st.colours[0],
                st.stroke,
                cv2.LINE_AA,
            )
        cv2.addWeighted(img, st.alpha, base, 1.0 - st.alpha, 0.0, dst=img)
        if self.parts["banner"]:
            H, W = img.shape[:2]
            y0 = int(self.banner_y * H)
            cv2.rectangle(img, (int(0.25 * W), y0), (int(0.75 * W), y0 + int(0.09 * H)), st.colours[0], -1)
            draw_text(
                img, self.label, int(0.27 * W), y0 + int(0.015 * H), int(0.05 * H), self.text_style, int(0.46 * W)
            )
        return img


def _face_photo(rng: np.random.Generator) -> np.ndarray:
    """One of the portraits that ship with scikit-image or matplotlib (BGR), sometimes grey or side-lit."""
    from skimage import data

    pick = int(rng.integers(3))
    if pick == 0:
        photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[:300, 100:400]  # the face and shoulders
    elif pick == 1:
        import matplotlib.cbook as cbook

        photo = cv2.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    else:
        photo = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)[20:260, 150:390]
    if rng.random() < 0.3:
        photo = cv2.cvtColor(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rng.random() < 0.3:  # light from one side
        ramp = np.linspace(rng.uniform(0.25, 0.5), 1.0, photo.shape[1], dtype=np.float32)
        photo = (photo * (ramp if rng.random() < 0.5 else ramp[::-1])[None, :, None]).astype(np.uint8)
    return photo


class PictureInPicture:
    """The microscope view with an inset in a corner: an OCT-style cross-section with a moving scan line, or
    (``face=True``) the presenting surgeon's camera."""

    def __init__(self, view: SurgicalView, rng: np.random.Generator, face: bool = False):
        self.view = view
        share = rng.uniform(0.25, 0.4) if face else rng.uniform(0.2, 0.35)
        w, h = int(share * view.width), int(share * view.height)
        if face:
            photo = _face_photo(rng)
            self.inset = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
        else:
            self.inset = _oct_scan(w, h, rng)
        self.face, self.scan = face, not face
        self.border = random_colour(rng) if rng.random() < 0.7 else None
        corner = rng.integers(4)
        self.x = int(0.02 * view.width) if corner % 2 == 0 else view.width - w - int(0.02 * view.width)
        self.y = int(0.03 * view.height) if corner < 2 else view.height - h - int(0.03 * view.height)

    def frame(self, t: float) -> np.ndarray:
        img = self.view.frame(t).copy()
        h, w = self.inset.shape[:2]
        img[self.y : self.y + h, self.x : self.x + w] = self.inset
        if self.scan:
            sx = self.x + int((0.5 + 0.45 * math.sin(t)) * w)
            cv2.line(img, (sx, self.y), (sx, self.y + h - 1), (0, 200, 255), 2)
        if self.border is not None:
            cv2.rectangle(img, (self.x, self.y), (self.x + w, self.y + h), self.border, 3)
        return img


def _oct_scan(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    xs = np.linspace(-1, 1, w, dtype=np.float32)
    inset = rng.normal(20, 8, (h, w)).clip(0, 255).astype(np.float32)
    for depth, bright in ((0.3, 230), (0.36, 150), (0.62, 200), (0.7, 120)):
        ys = (depth * h + 0.18 * h * xs**2).astype(int)
        for dy in range(-2, 3):
            inset[np.clip(ys + dy, 0, h - 1), np.arange(w)] = bright - 30 * abs(dy)
    return cv2.cvtColor(cv2.GaussianBlur(inset, (3, 3), 0).clip(0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


class BurnedInText:
    """The microscope view with the recorder's stamp: patient lines in a drawn style at a drawn corner, or an
    OR-recorder caption bar (``bar``)."""

    def __init__(self, view: SurgicalView, lines: list[str], rng: np.random.Generator, bar: bool = False):
        self.view, self.lines, self.bar = view, lines, bar
        self.line_h = int(view.height * rng.uniform(0.03, 0.045))
        self.x = int(rng.uniform(0.02, 0.5) * view.width)
        self.y0 = (
            int(0.04 * view.height) if rng.random() < 0.5 else int(view.height - (len(lines) + 0.7) * 1.5 * self.line_h)
        )
        self.style = TextStyle.draw(rng)
        self.top = rng.random() < 0.5
        self.rng_seed = int(rng.integers(2**31))

    def frame(self, t: float) -> np.ndarray:
        img = self.view.frame(t).copy()
        if self.bar:
            draw_bar(img, self.lines[0], self.top, np.random.default_rng(self.rng_seed))
            return img
        for i, line in enumerate(self.lines):
            draw_text(
                img,
                line,
                self.x,
                self.y0 + int(i * 1.5 * self.line_h),
                self.line_h,
                self.style,
                self.view.width - self.x - int(0.02 * self.view.width),
            )
        return img


def dissolve(a: np.ndarray, b: np.ndarray, weight_b: float) -> np.ndarray:
    """One frame of a cross-dissolve from a to b."""
    return cv2.addWeighted(a, 1.0 - weight_b, b, weight_b, 0.0)
