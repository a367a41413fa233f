"""The procedurally rendered surgical microscope view of one eye during one cataract phase.

The still parts (drape, lids, sclera with vessels, iris, red-orange reflex, speculum, microscope vignette) are
painted once per scene at the output resolution; each frame is one small affine warp (camera drift) plus cheap
cv2 drawing of what moves (instruments, the tearing rhexis, the shrinking nucleus, the unfolding lens,
reflections) and an occasional focus drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ophora.synthetic.narration import phases

# which instruments each phase uses, and through which port (main incision or side port)
TOOLS = {
    "incision": [("keratome", "main")],
    "viscoelastic_injection": [("cannula", "main")],
    "capsulorhexis": [("cystotome", "main")],
    "hydrodissection": [("cannula", "main")],
    "phacoemulsification": [("phaco", "main"), ("chopper", "side")],
    "irrigation_aspiration": [("aspirator", "main"), ("irrigator", "side")],
    "capsule_polishing": [("aspirator", "main")],
    "lens_implantation": [("injector", "main")],
    "lens_positioning": [("hook", "side")],
    "viscoelastic_removal": [("aspirator", "main")],
    "anterior_chamber_flushing": [("cannula", "side")],
    "wound_hydration": [("cannula", "main")],
}
# (thickness in iris radii, BGR body colour, where the tip works)
_TOOL_LOOK = {
    "keratome": (0.05, (170, 172, 178), "wound"),
    "cannula": (0.025, (190, 190, 195), "sweep"),
    "cystotome": (0.02, (175, 175, 180), "orbit"),
    "phaco": (0.09, (205, 205, 210), "center"),
    "chopper": (0.03, (150, 152, 158), "sweep"),
    "aspirator": (0.07, (185, 185, 190), "sweep"),
    "irrigator": (0.06, (185, 185, 190), "center"),
    "injector": (0.14, (210, 175, 140), "wound"),
    "hook": (0.025, (160, 160, 165), "sweep"),
}


@dataclass(frozen=True)
class EyeLook:
    """One patient's eye and one theatre's microscope: fixed for a whole video."""

    iris_bgr: tuple[int, int, int]
    pupil_ratio: float
    skin_bgr: tuple[int, int, int]
    drape_bgr: tuple[int, int, int]
    main_port_deg: float
    vessel_count: int
    seed: int


def make_eye_look(rng: np.random.Generator) -> EyeLook:
    irises = [(40, 70, 110), (120, 110, 70), (60, 110, 90), (30, 50, 80), (140, 130, 110)]
    skins = [(150, 170, 215), (120, 150, 200), (80, 110, 160), (160, 180, 225)]
    drapes = [(150, 120, 60), (120, 140, 70), (170, 150, 90)]
    return EyeLook(
        irises[rng.integers(len(irises))],
        float(rng.uniform(0.5, 0.62)),
        skins[rng.integers(len(skins))],
        drapes[rng.integers(len(drapes))],
        float(rng.choice([0.0, 180.0]) + rng.uniform(-25, 25)),
        int(rng.integers(18, 40)),
        int(rng.integers(2**31)),
    )


def _radial_fill(img: np.ndarray, c: tuple[float, float], r: float, inner: np.ndarray, outer: np.ndarray) -> None:
    """Fill a disc with a colour that goes from inner (centre) to outer (rim)."""
    h, w = img.shape[:2]
    x0, x1 = max(0, int(c[0] - r)), min(w, int(c[0] + r) + 1)
    y0, y1 = max(0, int(c[1] - r)), min(h, int(c[1] + r) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = np.sqrt((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / r
    inside = d <= 1.0
    mix = np.clip(d, 0, 1)[..., None] ** 1.5
    colour = inner * (1 - mix) + outer * mix
    patch = img[y0:y1, x0:x1]
    patch[inside] = colour[inside].astype(np.uint8)


def paint_eye(look: EyeLook, phase: str, width: int, height: int, rng: np.random.Generator):
    """The still view for one scene; returns (image, eye centre, iris radius). Framing varies per scene."""
    zoom = rng.uniform(0.8, 1.25)
    r_iris = 0.3 * height * zoom
    c = (width / 2 + rng.uniform(-0.07, 0.07) * width, height / 2 + rng.uniform(-0.06, 0.06) * height)
    low = cv2.resize(
        rng.random((height // 40 + 2, width // 40 + 2)).astype(np.float32),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    img = (np.array(look.drape_bgr, np.float32) * (0.75 + 0.4 * low)[..., None]).clip(0, 255).astype(np.uint8)
    ci = (int(c[0]), int(c[1]))
    cv2.ellipse(img, ci, (int(2.7 * r_iris), int(2.0 * r_iris)), 0, 0, 360, look.skin_bgr, -1, cv2.LINE_AA)
    sclera_axes = (int(2.1 * r_iris), int(1.35 * r_iris))
    cv2.ellipse(img, ci, sclera_axes, 0, 0, 360, (205, 215, 235), -1, cv2.LINE_AA)
    vrng = np.random.default_rng([look.seed, 1])  # the same patient keeps the same vessels in every scene
    for _ in range(look.vessel_count):
        a = vrng.uniform(0, 2 * math.pi)
        p = np.array([c[0] + 0.97 * sclera_axes[0] * math.cos(a), c[1] + 0.97 * sclera_axes[1] * math.sin(a)])
        pts = [p.copy()]
        for _ in range(40):
            to_c = np.array(c) - p
            dist = np.linalg.norm(to_c)
            if dist < 1.08 * r_iris:
                break
            step = to_c / dist + vrng.normal(0, 0.6, 2)
            p = p + step / np.linalg.norm(step) * 0.07 * r_iris
            pts.append(p.copy())
        thick = max(1, int(round(vrng.uniform(0.004, 0.012) * r_iris)))
        shade = (int(vrng.integers(40, 70)), int(vrng.integers(40, 70)), int(vrng.integers(140, 190)))
        cv2.polylines(img, [np.array(pts, np.int32)], False, shade, thick, cv2.LINE_AA)
    cv2.ellipse(img, ci, sclera_axes, 0, 0, 360, look.skin_bgr, max(2, int(0.12 * r_iris)), cv2.LINE_AA)
    # iris: base colour, radial streaks, dark limbal ring
    cv2.circle(img, ci, int(r_iris), look.iris_bgr, -1, cv2.LINE_AA)
    r_pupil = look.pupil_ratio * r_iris
    for k in range(160):
        a = 2 * math.pi * k / 160 + rng.uniform(0, 0.02)
        shade = tuple(int(np.clip(v * rng.uniform(0.6, 1.4), 0, 255)) for v in look.iris_bgr)
        p0 = (int(c[0] + r_pupil * math.cos(a)), int(c[1] + r_pupil * math.sin(a)))
        p1 = (int(c[0] + r_iris * math.cos(a)), int(c[1] + r_iris * math.sin(a)))
        cv2.line(img, p0, p1, shade, max(1, int(0.012 * r_iris)), cv2.LINE_AA)
    cv2.circle(img, ci, int(r_iris), (30, 35, 45), max(2, int(0.07 * r_iris)), cv2.LINE_AA)
    # the red-orange fundus reflex, hazier and yellower while the cataract is still in
    order = phases()
    before_phaco = order.index(phase) < order.index("phacoemulsification")
    inner = np.array((90, 170, 250) if not before_phaco else (120, 185, 225), np.float32)
    outer = np.array((30, 50, 190) if not before_phaco else (70, 110, 170), np.float32)
    _radial_fill(img, c, r_pupil, inner, outer)
    if order.index(phase) > order.index("capsulorhexis"):
        cv2.circle(img, ci, int(0.82 * r_pupil), (150, 200, 240), max(1, int(0.01 * r_iris)), cv2.LINE_AA)
    if order.index(phase) > order.index("lens_positioning"):
        draw_lens(img, c, r_pupil, 1.0, 20.0, 1.0)
    _draw_speculum(img, c, r_iris)
    # microscope field: light falls off towards the edges of the round field of view
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    d = np.sqrt((xx - width / 2) ** 2 + (yy - height / 2) ** 2) / (0.62 * math.hypot(width, height))
    tint = np.array(rng.uniform(0.9, 1.08, 3), np.float32) * rng.uniform(0.85, 1.08)
    shade = np.clip(1.15 - d**2.2, 0.15, 1.0)[..., None] * tint
    img = np.clip(img.astype(np.float32) * shade + rng.normal(0, 2.0, img.shape).astype(np.float32), 0, 255)
    return img.astype(np.uint8), c, r_iris


def _draw_speculum(img: np.ndarray, c: tuple[float, float], r: float) -> None:
    """The lid speculum: two wire loops holding the lids, metal with a dark edge and a highlight."""
    ci = (int(c[0]), int(c[1]))
    for start, end, ay in ((200, 340, 1.55), (20, 160, 1.55)):
        axes = (int(2.2 * r), int(ay * r))
        for colour, thick in (((70, 70, 75), 0.09), ((175, 178, 185), 0.06), ((240, 240, 245), 0.015)):
            cv2.ellipse(img, ci, axes, 0, start, end, colour, max(1, int(thick * r)), cv2.LINE_AA)


def draw_lens(
    img: np.ndarray, c: tuple[float, float], r_pupil: float, unfold: float, angle: float, scale: float
) -> None:
    """An intraocular lens: round optic and two C-loop haptics; unfold in (0, 1] flattens it while injecting."""
    ci = (int(c[0]), int(c[1]))
    ro = 0.72 * r_pupil * scale
    colour, thick = (235, 225, 205), max(1, int(0.025 * r_pupil * scale))
    cv2.ellipse(img, ci, (int(ro), max(1, int(ro * unfold))), angle, 0, 360, colour, thick, cv2.LINE_AA)
    a = math.radians(angle)
    for sign in (1, -1):
        hx, hy = c[0] + sign * ro * math.cos(a), c[1] + sign * ro * math.sin(a) * unfold
        cv2.ellipse(
            img,
            (int(hx), int(hy)),
            (int(0.9 * ro), max(1, int(0.45 * ro * unfold))),
            angle + (0 if sign > 0 else 180),
            -90,
            60,
            colour,
            thick,
            cv2.LINE_AA,
        )


class SurgicalView:
    """Frames of one eye during one phase: call frame(t) with t in seconds from the scene start (may be < 0)."""

    def __init__(self, look: EyeLook, phase: str, width: int, height: int, duration: float, rng: np.random.Generator):
        self.phase, self.width, self.height, self.duration = phase, width, height, duration
        self.base, self.centre, self.r_iris = paint_eye(look, phase, width, height, rng)
        self.r_pupil = look.pupil_ratio * self.r_iris
        side = look.main_port_deg + rng.choice([-1, 1]) * rng.uniform(70, 110)
        self.tools = [
            (name, math.radians(look.main_port_deg if port == "main" else side)) for name, port in TOOLS[phase]
        ]
        self.drift = rng.uniform(0.004, 0.014, 2) * height, rng.uniform(0.05, 0.25, 4), rng.uniform(0, 6.3, 6)
        self.tip_speed = rng.uniform(0.3, 0.8, 4)
        self.focus_at = rng.uniform(1.0, max(1.0, duration - 2.0)) if rng.random() < 0.6 else None
        self.enter_after = rng.uniform(0.0, 0.6)

    def eye_at(self, t: float) -> tuple[np.ndarray, float]:
        """Where the eye centre is in the frame at time t, and the camera's scale factor."""
        m = self.camera(t)
        return m @ np.array([self.centre[0], self.centre[1], 1.0]), math.sqrt(abs(np.linalg.det(m[:, :2])))

    def camera(self, t: float) -> np.ndarray:
        """The 2x3 affine of the microscope's drift at time t (slow sway, breathing zoom, slight roll)."""
        (ax, ay), f, ph = self.drift
        dx = ax * math.sin(2 * math.pi * f[0] * t + ph[0]) + 0.4 * ax * math.sin(2 * math.pi * f[2] * t + ph[2])
        dy = ay * math.sin(2 * math.pi * f[1] * t + ph[1]) + 0.4 * ay * math.sin(2 * math.pi * f[3] * t + ph[3])
        scale = 1.0 + 0.012 * math.sin(2 * math.pi * 0.07 * t + ph[4])
        rot = 0.4 * math.sin(2 * math.pi * 0.05 * t + ph[5])
        m = cv2.getRotationMatrix2D(self.centre, rot, scale)
        m[:, 2] += (dx, dy)
        return m

    def _tip(self, name: str, port: float, t: float, c: np.ndarray, s: float) -> np.ndarray:
        """Where an instrument's tip is at time t: it enters from outside, then works where its phase needs."""
        rp, sp = self.r_pupil * s, self.tip_speed
        where = _TOOL_LOOK[name][2]
        if where == "orbit":
            a = port + 2 * math.pi * np.clip(t / max(self.duration, 1e-3), 0, 1)
            work = c + 0.8 * rp * np.array([math.cos(a), math.sin(a)])
        elif where == "center":
            work = c + 0.3 * rp * np.array([math.sin(sp[0] * 3 * t), 0.8 * math.sin(sp[1] * 2.3 * t + 1)])
        elif where == "sweep":
            a = port + math.pi + 1.2 * math.sin(sp[2] * 1.7 * t)
            work = c + 0.65 * rp * np.array([math.cos(a), math.sin(a)])
        else:  # at the wound, pushing in and out a little
            depth = 0.95 - 0.25 * (0.5 + 0.5 * math.sin(sp[3] * 2 * t))
            work = c + depth * self.r_iris * s * np.array([math.cos(port), math.sin(port)])
        u = np.clip((t - self.enter_after) / 0.8, 0.0, 1.0)
        outside = c + 3.0 * self.r_iris * s * np.array([math.cos(port), math.sin(port)])
        return outside + (work - outside) * (u * u * (3 - 2 * u))

    def _draw_tool(self, img: np.ndarray, name: str, port: float, t: float, c: np.ndarray, s: float) -> None:
        tip = self._tip(name, port, t, c, s)
        wound = c + self.r_iris * s * np.array([math.cos(port), math.sin(port)])
        d = wound - tip
        n = np.linalg.norm(d)
        d = d / n if n > 1e-3 else np.array([math.cos(port), math.sin(port)])
        far = tip + d * 3 * max(self.width, self.height)
        thick, body, _ = _TOOL_LOOK[name]
        w = max(2.0, thick * self.r_iris * s)
        perp = np.array([-d[1], d[0]]) * w * 0.2
        p0, p1 = tuple(tip.astype(int)), tuple(far.astype(int))
        cv2.line(img, p0, p1, (55, 55, 60), int(w + 2), cv2.LINE_AA)
        cv2.line(img, p0, p1, body, int(w), cv2.LINE_AA)
        cv2.line(
            img,
            tuple((tip + perp).astype(int)),
            tuple((far + perp).astype(int)),
            (245, 245, 250),
            max(1, int(w * 0.2)),
            cv2.LINE_AA,
        )
        if name == "keratome":  # the blade: a flat triangle ahead of the shaft
            side = np.array([-d[1], d[0]]) * 2.2 * w
            blade = np.array([tip - d * 3 * w, tip + side, tip - side], np.int32)
            cv2.fillConvexPoly(img, blade, (215, 215, 222), cv2.LINE_AA)
        elif name in ("chopper", "hook"):
            cv2.line(img, p0, tuple((tip + np.array([-d[1], d[0]]) * 3 * w).astype(int)), body, int(w), cv2.LINE_AA)

    def _draw_phase(self, img: np.ndarray, t: float, c: np.ndarray, s: float) -> None:
        u = float(np.clip(t / max(self.duration, 1e-3), 0.0, 1.0))
        rp, ci = self.r_pupil * s, (int(c[0]), int(c[1]))
        line = max(1, int(0.012 * self.r_iris * s))
        if self.phase == "capsulorhexis":
            start = math.degrees(self.tools[0][1])
            cv2.ellipse(
                img, ci, (int(0.8 * rp), int(0.8 * rp)), 0, start, start + 360 * u, (160, 210, 245), line, cv2.LINE_AA
            )
        elif self.phase == "hydrodissection":
            x = c[0] + (2 * ((t * 0.4) % 1.0) - 1) * 0.7 * rp
            cv2.ellipse(
                img, (int(x), ci[1]), (int(0.15 * rp), int(0.6 * rp)), 0, 0, 360, (170, 220, 250), line, cv2.LINE_AA
            )
        elif self.phase == "phacoemulsification":
            rn = 0.75 * rp * (1.0 - 0.75 * u)
            cv2.circle(img, ci, int(rn), (110, 165, 195), -1, cv2.LINE_AA)
            cv2.line(img, (int(c[0] - rn), ci[1]), (int(c[0] + rn), ci[1]), (70, 110, 140), line * 2, cv2.LINE_AA)
        elif self.phase == "lens_implantation":
            draw_lens(img, c, self.r_pupil, max(0.08, u), 15.0, s)
        elif self.phase == "lens_positioning":
            draw_lens(img, c, self.r_pupil, 1.0, 20.0 + 60.0 * (1 - u), s)

    def frame(self, t: float) -> np.ndarray:
        img = cv2.warpAffine(self.base, self.camera(t), (self.width, self.height), borderMode=cv2.BORDER_REFLECT)
        c, s = self.eye_at(t)
        self._draw_phase(img, t, c, s)
        for name, port in self.tools:
            self._draw_tool(img, name, port, t, c, s)
        r = self.r_iris * s  # the microscope lamp's reflections on the cornea
        for (ox, oy), size in (((-0.32, -0.38), 0.05), ((0.22, -0.42), 0.03)):
            cv2.ellipse(
                img,
                (int(c[0] + ox * r), int(c[1] + oy * r)),
                (int(size * r * 1.6), max(1, int(size * r))),
                -20,
                0,
                360,
                (252, 252, 252),
                -1,
                cv2.LINE_AA,
            )
        if self.focus_at is not None and 0.0 <= t - self.focus_at <= 1.5:
            k = 1 + 2 * int(round(3 * math.sin(math.pi * (t - self.focus_at) / 1.5)))
            if k > 1:
                img = cv2.blur(img, (k, k))
        return img
