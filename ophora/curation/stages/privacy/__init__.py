"""privacy: burned-in text (OCR), faces and graphic overlays in a clip window's sampled frames.

- Text (RapidOCR, PP-OCR models shipped in the package): any readable text keeps the clip out of P²FT; text that
  :func:`ophora.curation.phi.looks_identifying` flags (names, dates, record numbers, "PT:"/"DOB" labels) makes
  the clip identifying: out of every subset.
- Faces (two OpenCV Haar cascades with a high agreement bar, or a YuNet ONNX model when ``face_model`` names one):
  identifying.
- Graphic overlays (picture-in-picture insets and drawn panels: rectangle corners; arrows and markers: saturated
  green/blue/magenta/yellow strokes that tissue does not have; rings, arrows and lines in the footage's own colours:
  a thin stroke that stays at the same pixels across the window's samples, :mod:`.strokes`): out of P²FT.

A clip goes to P²FT only when every sampled frame is clean. Identifying windows are dropped when
``drop_identifying`` (the default: nothing downstream may use them, so they are not transcoded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ophora.curation import phi
from ophora.curation.stages.base import stage_resources
from ophora.curation.stages.frame_filter import Findings, FrameFilterStage
from ophora.curation.stages.privacy.strokes import still_stroke

_WORDISH = re.compile(r"[A-Za-z0-9]")
EXAMINED_FLAG = "privacy_examined"  # set on every window the privacy stage judged: p2ft/ admits no other
NOT_EXAMINED = "privacy not examined (the privacy stage did not run on this clip)"
# OCR reads the letter O as a zero inside words ("D0B"); PHI labels need the letters back
_ZERO_IN_WORD = re.compile(r"(?<=[A-Za-z])0|0(?=[A-Za-z])")


class PrivacyConfig(BaseModel):
    """The ``privacy`` section: burned-in text, faces, overlays."""

    model_config = ConfigDict(extra="forbid")

    frames: int = Field(4, ge=1, description="frames sampled per window; every one must be clean for P2FT")
    max_side: int = Field(
        720,
        ge=64,
        description="sampled frames are downscaled to this longer side (OCR needs text at least ~10 px high)",
    )
    ocr: bool = Field(True, description="read burned-in text with RapidOCR")
    ocr_det_side: int = Field(
        736,
        ge=64,
        description="OCR detection runs at this longer side at most (lower is "
        "faster and misses small text: at 512 px, 8 of 60 "
        "frames of planted identifying text were not read as "
        "identifying)",
    )
    ocr_scout_side: int = Field(
        512,
        ge=0,
        description="the samples between a window's first and last are read with OCR detection at this longer side "
        "(~half the cost at 512 px): burned-in stamps, bars and small labels stay on screen and are read at "
        "ocr_det_side on the first and last sample, and a caption that shows up inside a window is large "
        "enough for the smaller size; 0 reads every sample at ocr_det_side",
    )
    ocr_min_score: float = Field(0.6, ge=0, le=1, description="OCR lines recognised with less confidence are ignored")
    ocr_min_chars: int = Field(
        3,
        ge=1,
        description="OCR lines with fewer letters/digits are ignored (a lone "
        '"55" read off vessels on a surgical frame is noise)',
    )
    ocr_threads: int = Field(1, ge=1, description="onnxruntime threads per OCR engine")
    face_detector: Literal["mtcnn", "blazeface", "haar"] = Field(
        "mtcnn",
        description="faces: facenet-pytorch MTCNN (weights in the wheel; chosen by measurement, see "
        "benchmarks/bench_privacy.py), MediaPipe BlazeFace full-range, or OpenCV Haar cascades",
    )
    face_model: str = Field(
        "",
        description="optional YuNet face-detector ONNX file (cv2.FaceDetectorYN); it replaces face_detector when set",
    )
    face_frames: int = Field(
        2,
        ge=1,
        description="frames of each window the face detector looks at (spread over the window; the costliest detector)",
    )
    face_min_height: float = Field(
        0.06,
        gt=0,
        lt=1,
        description="smallest face searched for and counted, as a "
        "share of the frame height (picture-in-picture "
        "faces are ~8 %; detector boxes vary around it)",
    )
    face_score: float = Field(0.9, ge=0, le=1, description="minimum detector score of a face")
    face_presence: float = Field(
        0.5,
        ge=0,
        le=1,
        description="a detection counts when MediaPipe's face-landmark "
        "model gives its crop at least this face probability "
        "(0: no second opinion)",
    )
    face_threads: int = Field(1, ge=1, description="torch threads of the face detector")
    face_min_neighbors: int = Field(
        12, ge=1, description="Haar: a face needs this many overlapping detections in both cascades"
    )
    face_max_side: int = Field(720, ge=64, description="faces are searched on frames downscaled to this longer side")
    overlay_corners: int = Field(3, ge=1, description="rectangle corners (inset or panel) that mark an overlay")
    overlay_colour_share: float = Field(
        0.003,
        ge=0,
        le=1,
        description="a saturated non-tissue colour stroke larger than this share of the frame marks a drawn graphic",
    )
    stroke_side: int = Field(360, ge=64, description="drawn strokes are looked for at this longer side")
    stroke_contrast: int = Field(90, ge=1, le=255, description="drawn stroke: top/black-hat levels, every sample")
    stroke_steadiness: int = Field(40, ge=1, le=255, description="a drawn stroke's pixels vary less across samples")
    stroke_min_pixels: int = Field(24, ge=1, description="still thin pixels in one run (at stroke_side): a stroke")
    stroke_min_samples: int = Field(3, ge=2, description="fewer samples are not judged for strokes (see .strokes)")
    drop_identifying: bool = Field(True, description="drop identifying windows here instead of only flagging them")


@dataclass
class FrameFindings:
    """What one frame shows: OCR'd lines, their area share, faces, overlay evidence."""

    lines: list[str] = field(default_factory=list)
    text_area: float = 0.0
    identifying_text: bool = False
    faces: int = 0
    corners: int = 0
    graphic_share: float = 0.0


# ---------------------------------------------------------------- plain detectors


def identifying_text(lines: list[str]) -> bool:
    """Whether OCR'd lines (one frame) carry identifying content, read line by line and as one block."""
    candidates = lines + ["\n".join(lines)] if lines else []
    return any(phi.looks_identifying(t) or phi.looks_identifying(_ZERO_IN_WORD.sub("O", t)) for t in candidates)


def rectangle_corners(frame: np.ndarray, edge: float = 120.0, min_len: float = 0.12) -> int:
    """How many corners where a long horizontal edge meets a long vertical edge (picture-in-picture insets and
    drawn panels have four; tissue and instruments almost never run straight along both axes)."""
    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = g.shape
    gy = np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)) > edge
    gx = np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)) > edge
    hmask = cv2.morphologyEx(gy.astype(np.uint8), cv2.MORPH_OPEN, np.ones((1, max(3, int(min_len * w))), np.uint8))
    vmask = cv2.morphologyEx(gx.astype(np.uint8), cv2.MORPH_OPEN, np.ones((max(3, int(min_len * h)), 1), np.uint8))
    hsegs = cv2.connectedComponentsWithStats(hmask)[2][1:]
    vsegs = cv2.connectedComponentsWithStats(vmask)[2][1:]
    tol = 0.02 * max(h, w)
    corners = 0
    for x, y, bw, bh, _ in hsegs:
        yc = y + bh / 2
        for xe in (x, x + bw):
            for vx, vy, vw, vh, _ in vsegs:
                if abs(vx + vw / 2 - xe) < tol and (abs(yc - vy) < tol or abs(yc - (vy + vh)) < tol):
                    corners += 1
    return corners


def graphic_colour_share(
    frame: np.ndarray, min_saturation: int = 110, hue_gap: int = 10, palette_share: float = 0.01
) -> float:
    """The largest connected stroke of saturated colour foreign to this frame, as a share of the frame: drawn
    arrows, rings, markers. The frame's palette is learned from the frame itself (hues holding
    ``palette_share`` of its broad tinted areas, smoothed over neighbouring hues; never a fixed list of colours:
    thin strokes are opened away first, so a drawn arrow never teaches the palette its own colour); a stroke is
    foreign when its hue is at least ``hue_gap`` (OpenCV units, 0-179) from every palette hue."""
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    k = max(3, (min(frame.shape[:2]) // 30) | 1)
    tinted = cv2.morphologyEx(
        ((sat >= 40) & (val >= 60)).astype(np.uint8), cv2.MORPH_OPEN, np.ones((k, k), np.uint8)
    ).astype(bool)
    if not tinted.any():
        return 0.0
    counts = np.bincount(hue[tinted].ravel(), minlength=180).astype(np.float64)
    pooled = np.convolve(np.r_[counts[-6:], counts, counts[:6]], np.ones(13), "valid") / counts.sum()
    palette = np.flatnonzero(pooled >= palette_share)
    gap = np.abs(np.arange(180)[:, None] - palette[None, :])
    near = (np.minimum(gap, 180 - gap) < hue_gap).any(axis=1) if len(palette) else np.zeros(180, bool)
    mask = ((sat >= min_saturation) & (val >= 90) & ~near[hue]).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    return float(stats[1:, cv2.CC_STAT_AREA].max()) / mask.size if n > 1 else 0.0


class FaceDetector:
    """How many faces an RGB frame shows: MTCNN or BlazeFace behind the :func:`~ophora.curation.stages.privacy.faces.face_like`
    gate and a second opinion (:class:`~ophora.curation.stages.privacy.faces.FacePresence`), YuNet when a model file is given, or
    two Haar cascades that must both be sure (then 0 or 1)."""

    def __init__(self, cfg: PrivacyConfig):
        self.cfg, self.learned, self.yunet, self.presence = cfg, None, None, None
        if cfg.face_model:
            try:
                self.yunet = cv2.FaceDetectorYN.create(cfg.face_model, "", (320, 320), cfg.face_score)
            except cv2.error as e:
                raise ValueError(f"privacy.face_model {cfg.face_model!r}: cannot load YuNet ({e})") from e
            self.id = "opencv-yunet:" + cfg.face_model.replace("\\", "/").rsplit("/", 1)[-1]
        elif cfg.face_detector in ("mtcnn", "blazeface"):
            from ophora.curation.stages.privacy.faces import BlazeFace, FacePresence, Mtcnn

            self.learned = (
                Mtcnn(cfg.face_score, threads=cfg.face_threads)
                if cfg.face_detector == "mtcnn"
                else BlazeFace(min(cfg.face_score, 0.6), threads=cfg.face_threads)
            )
            self.presence = FacePresence(cfg.face_threads) if cfg.face_presence > 0 else None
            self.id = self.learned.id + (f"+{self.presence.id}" if self.presence else "")
        else:
            self.cascades = [
                cv2.CascadeClassifier(cv2.data.haarcascades + name)
                for name in ("haarcascade_frontalface_alt2.xml", "haarcascade_frontalface_default.xml")
            ]
            if any(c.empty() for c in self.cascades):
                raise ValueError(f"OpenCV Haar cascades missing under {cv2.data.haarcascades}")
            self.id = "opencv-haar-frontalface@" + cv2.__version__

    def __call__(self, frame: np.ndarray) -> int:
        h, w = frame.shape[:2]
        scale = min(1.0, self.cfg.face_max_side / max(h, w))
        if scale < 1:
            frame = cv2.resize(frame, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
            h, w = frame.shape[:2]
        if self.learned is not None:
            from ophora.curation.stages.privacy.faces import face_like

            smallest = self.cfg.face_min_height * h
            return sum(
                1
                for f in self.learned(frame, smallest)
                if face_like(f, h, w)
                and f.height >= smallest
                and (self.presence is None or self.presence(frame, f) >= self.cfg.face_presence)
            )
        if self.yunet is not None:
            self.yunet.setInputSize((w, h))
            _, faces = self.yunet.detect(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            return 0 if faces is None else len(faces)
        grey = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
        side = max(24, int(self.cfg.face_min_height * min(grey.shape)))
        for cascade in self.cascades:  # false hits on tissue rarely convince both; stop at the first doubt
            _, neighbours = cascade.detectMultiScale2(grey, scaleFactor=1.1, minNeighbors=3, minSize=(side, side))
            if not len(neighbours) or int(max(neighbours)) < self.cfg.face_min_neighbors:
                return 0
        return 1


class TextReader:
    """Readable text lines of an RGB frame (RapidOCR detection + recognition), with their area share."""

    def __init__(self, cfg: PrivacyConfig):
        from rapidocr_onnxruntime import RapidOCR

        self.cfg, self.side = cfg, cfg.ocr_det_side
        self.engine = RapidOCR(
            det_limit_side_len=cfg.ocr_det_side,
            det_limit_type="max",
            intra_op_num_threads=cfg.ocr_threads,
            inter_op_num_threads=1,
        )
        # rapidocr 1.4 ignores the limit for "max" below 960 px and detects at native size; hold it to ours
        # (the boxes still map back to the full frame, so recognition reads full-resolution crops)
        det = self.engine.text_det
        if hasattr(det, "get_preprocess"):
            from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

            class Float32Pre(DetPreProcess):  # the package normalises in float64: ~10 ms a frame for nothing
                def normalize(self, img: np.ndarray) -> np.ndarray:
                    scale = np.float32(self.scale)
                    return (img.astype(np.float32) * scale - self.mean.astype(np.float32)) / self.std.astype(np.float32)

            det.get_preprocess = lambda _side: Float32Pre(self.side, "max", det.mean, det.std)
        try:
            from importlib.metadata import version

            self.id = "rapidocr-onnxruntime@" + version("rapidocr-onnxruntime")
        except Exception:  # noqa: BLE001 - the version is only a label
            self.id = "rapidocr-onnxruntime"

    def __call__(self, frame: np.ndarray, det_side: int = 0) -> tuple[list[str], float]:
        """``det_side``: detect at this longer side instead of ``ocr_det_side`` (never larger)."""
        self.side = min(det_side, self.cfg.ocr_det_side) if det_side else self.cfg.ocr_det_side
        result, _ = self.engine(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), use_cls=False)
        lines, area = [], 0.0
        for box, text, score in result or []:
            if float(score) < self.cfg.ocr_min_score or len(_WORDISH.findall(text)) < self.cfg.ocr_min_chars:
                continue
            lines.append(text.strip())
            area += abs(cv2.contourArea(np.asarray(box, np.float32)))
        return lines, area / (frame.shape[0] * frame.shape[1])


def judge_privacy(per_frame: list[FrameFindings], cfg: PrivacyConfig, stroke: float = 0.0) -> Findings:
    """The window's judgement from its frames: any identifying frame makes it identifying, any unclean frame
    keeps it out of P2FT; ``stroke`` (:func:`~.strokes.still_stroke` of the window) above ``stroke_min_pixels`` is
    a drawn overlay over the whole window."""
    text_frames = sum(1 for f in per_frame if f.lines)
    face_frames = sum(1 for f in per_frame if f.faces)
    phi_frames = sum(1 for f in per_frame if f.identifying_text)
    overlay_frames = sum(
        1 for f in per_frame if f.corners >= cfg.overlay_corners or f.graphic_share > cfg.overlay_colour_share
    )
    findings = Findings(
        scores={
            "text_area": max(f.text_area for f in per_frame),
            "faces": float(max(f.faces for f in per_frame)),
            "overlay_corners": float(max(f.corners for f in per_frame)),
            "graphic_share": max(f.graphic_share for f in per_frame),
            "still_stroke": stroke,
        },
        flags={
            "text": text_frames > 0,
            "identifying_text": phi_frames > 0,
            "face": face_frames > 0,
            "overlay": overlay_frames > 0,
            EXAMINED_FLAG: True,
        },
    )
    if text_frames:
        findings.p2ft_reasons.append(f"burned-in text (in {text_frames}/{len(per_frame)} frames)")
    if overlay_frames:
        findings.p2ft_reasons.append(f"graphic overlay (in {overlay_frames}/{len(per_frame)} frames)")
    if stroke >= cfg.stroke_min_pixels:
        findings.flags["overlay"] = True
        findings.p2ft_reasons.append(f"drawn stroke still over all {len(per_frame)} frames ({stroke:.0f} px)")
    kinds = [k for k, n in (("identifying text", phi_frames), ("face", face_frames)) if n]
    if kinds:
        findings.identifying = True
        findings.p2ft_reasons.append("identifying content: " + ", ".join(kinds))
        if cfg.drop_identifying:
            findings.drop = "identifying content: " + ", ".join(kinds)
    return findings


def privacy_examined(meta: dict) -> bool:
    """Whether the privacy stage judged the clip whose metadata this is."""
    return bool(meta.get("flags", {}).get(EXAMINED_FLAG, False))


def p2ft_verdict(privacy_ran: bool, not_examined: int) -> str:
    """One line for a run's summary: what p2ft/ holds, and why it is empty when privacy did not run."""
    if not privacy_ran:
        return (
            "empty: the privacy stage was skipped in this run (skip=[privacy]), and p2ft/ admits only clips "
            "privacy examined and found clean"
        )
    if not_examined:
        return f"privacy-clean clips only; {not_examined} clips privacy did not examine were kept out"
    return "privacy-clean clips only"


class PrivacyStage(FrameFilterStage):
    """Window stage: OCR text, faces and graphic overlays; identifying windows are flagged (and dropped)."""

    name = "privacy"
    sections = {"privacy": PrivacyConfig}
    resources = stage_resources(0.1, (1, 2), 4, 500)

    def setup(self) -> None:
        super().setup()
        phi.use_model(self.run.models.get("phi"))  # loaded once per actor, here
        self.reader = TextReader(self.cfg) if self.cfg.ocr else None
        self.faces = FaceDetector(self.cfg)
        self.model = ",".join(x for x in (self.reader.id if self.reader else "", self.faces.id) if x)

    def inspect(self, frame: np.ndarray, faces: bool = True, scout: bool = False) -> FrameFindings:
        """What one RGB frame shows (``faces=False``: the face detector does not look at it; ``scout``: OCR
        detection at ``ocr_scout_side``)."""
        lines, area = self.reader(frame, self.cfg.ocr_scout_side if scout else 0) if self.reader else ([], 0.0)
        return FrameFindings(
            lines=lines,
            text_area=area,
            identifying_text=identifying_text(lines),
            faces=self.faces(frame) if faces else 0,
            corners=rectangle_corners(frame),
            graphic_share=graphic_colour_share(frame),
        )

    def judge(self, frames: np.ndarray) -> Findings:
        looked = set(np.linspace(0, len(frames) - 1, min(self.cfg.face_frames, len(frames))).round().astype(int))
        last = len(frames) - 1
        per_frame = [self.inspect(f, i in looked, scout=0 < i < last) for i, f in enumerate(frames)]
        c = self.cfg
        stroke = still_stroke(frames, c.stroke_side, c.stroke_contrast, c.stroke_steadiness, c.stroke_min_samples)
        return judge_privacy(per_frame, self.cfg, stroke)
