"""quality: is this window a usable surgical microscope view? Surgical-field score, sharpness, exposure, borders.

The surgical-field score comes from open_clip zero-shot classification (a prompt ensemble per class: the
surgical field against slides, people, text, animations and black screens) when weights are configured
(``clip_pretrained``: a local weights file, or a tag when the hub is reachable), otherwise from a shipped
colour/structure heuristic for a microscope view of an eye (:func:`eye_field_heuristic`). ``models["quality"]``
says which one ran. Black borders are measured, not dropped: ``scores["border_*"]`` hold the share of each side
to crop, and :func:`crop_filter` turns them into the ffmpeg crop the clip stage applies before resizing.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ophora.curation.stages.base import stage_resources
from ophora.curation.stages.frame_filter import Findings, FrameFilterStage
from ophora.openclip import OpenClipModel

HEURISTIC_MODEL = "eye-field-heuristic@1"
RANDOM_WEIGHTS = "random"  # clip_pretrained value for a randomly initialised model (tests, benchmarks only)

DEFAULT_PROMPTS: dict[str, list[str]] = {
    "surgical field": [
        "a surgical microscope view of an eye",
        "a close-up of eye surgery through an operating microscope",
        "cataract surgery with instruments inside the eye",
        "the red reflex of the pupil during ophthalmic surgery",
    ],
    "slide": ["a presentation slide", "a title slide with text and a logo"],
    "person": ["a photo of a person", "a photo of a surgeon's face"],
    "text": ["a screen full of text", "a scanned document"],
    "animation": ["a cartoon animation", "a computer-generated medical illustration"],
    "black screen": ["a black screen", "an empty dark image"],
}
BORDER_SIDES = ("left", "top", "right", "bottom")


class QualityConfig(BaseModel):
    """The ``quality`` section: surgical-field score (open_clip or heuristic), blur, exposure, borders."""

    model_config = ConfigDict(extra="forbid")

    frames: int = Field(8, ge=1, description="frames sampled per window")
    max_side: int = Field(320, ge=32, description="sampled frames are downscaled to this longer side")
    clip_model: str = Field("ViT-L-14", description="open_clip architecture name")
    clip_pretrained: str = Field(
        "",
        description="open_clip weights: a local file, or a tag such as 'openai' when "
        "the hub is reachable; empty: the shipped heuristic scores the "
        "surgical field; 'random': random weights (tests only)",
    )
    clip_device: str = Field("auto", description="'auto' (cuda when available), 'cpu' or 'cuda'")
    clip_batch: int = Field(16, ge=1, description="frames per CLIP forward pass")
    clip_prompts: dict[str, list[str]] = Field(
        default_factory=lambda: dict(DEFAULT_PROMPTS), description="class -> prompt ensemble"
    )
    clip_positive: list[str] = Field(
        default_factory=lambda: ["surgical field"], description="classes that count as the surgical field"
    )
    min_field: float = Field(0.5, ge=0, le=1, description="drop below this surgical-field score")
    p2ft_field: float = Field(0.7, ge=0, le=1, description="keep out of P2FT below this surgical-field score")
    min_sharpness: float = Field(5.0, ge=0, description="drop below this variance of the Laplacian")
    p2ft_sharpness: float = Field(15.0, ge=0, description="keep out of P2FT below this variance of the Laplacian")
    min_brightness: float = Field(16.0, ge=0, description="drop below this mean luma (0-255)")
    max_dark_share: float = Field(0.85, ge=0, le=1, description="drop when more pixels than this are near black")
    max_clipped_share: float = Field(
        0.2, ge=0, le=1, description="keep out of P2FT when more pixels than this are blown out"
    )
    border_level: int = Field(24, ge=0, le=255, description="luma under which an edge row/column is border")
    min_border: float = Field(0.02, ge=0, lt=0.5, description="borders thinner than this share are ignored")


# ---------------------------------------------------------------- plain measurements


def _luma(frames: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def border_shares(frames: np.ndarray, level: int = 24, min_share: float = 0.02) -> dict[str, float]:
    """Share of the width/height to crop on each side: leading rows/columns that are dark in every frame
    (letterbox, pillarbox, black recorder frame). Shares under ``min_share`` read as 0."""
    bright = _luma(frames).max(axis=0)  # a pixel is border only if it is dark in every sampled frame
    h, w = bright.shape
    rows = np.percentile(bright, 99, axis=1) < level
    cols = np.percentile(bright, 99, axis=0) < level

    def run(flags: np.ndarray) -> int:
        return int(np.argmin(flags)) if not flags.all() else len(flags)

    out = {"left": run(cols) / w, "top": run(rows) / h, "right": run(cols[::-1]) / w, "bottom": run(rows[::-1]) / h}
    if out["left"] + out["right"] >= 0.9 or out["top"] + out["bottom"] >= 0.9:
        return dict.fromkeys(BORDER_SIDES, 0.0)  # all dark: exposure's business, not a border
    return {k: (v if v >= min_share else 0.0) for k, v in out.items()}


def crop_box(borders: dict[str, float], width: int, height: int) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) in source pixels (even sizes) that removes the borders; None when nothing to crop."""
    x0, y0 = int(round(borders.get("left", 0) * width)), int(round(borders.get("top", 0) * height))
    x1 = width - int(round(borders.get("right", 0) * width))
    y1 = height - int(round(borders.get("bottom", 0) * height))
    w, h = (x1 - x0) // 2 * 2, (y1 - y0) // 2 * 2
    if (x0, y0, w, h) == (0, 0, width // 2 * 2, height // 2 * 2) or w <= 0 or h <= 0:
        return None
    return x0, y0, w, h


def border_box(scores: dict[str, float], width: int, height: int) -> tuple[int, int, int, int] | None:
    """:func:`crop_box` of a clip's ``border_*`` scores (what the clip stage crops before resizing)."""
    return crop_box({s: scores.get(f"border_{s}", 0.0) for s in BORDER_SIDES}, width, height)


def crop_filter(scores: dict[str, float], width: int, height: int) -> str | None:
    """The ffmpeg ``crop=w:h:x:y`` filter for a clip's ``border_*`` scores, or None."""
    box = border_box(scores, width, height)
    return None if box is None else f"crop={box[2]}:{box[3]}:{box[0]}:{box[1]}"


def inner(frames: np.ndarray, borders: dict[str, float]) -> np.ndarray:
    """The frames without their borders."""
    h, w = frames.shape[1:3]
    y0, y1 = int(borders["top"] * h), h - int(borders["bottom"] * h)
    x0, x1 = int(borders["left"] * w), w - int(borders["right"] * w)
    return frames[:, y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]


def exposure(frames: np.ndarray) -> dict[str, float]:
    """Mean luma (0-255), share of near-black pixels (< 16) and share of blown-out pixels (>= 250)."""
    y = _luma(frames)
    return {
        "brightness": float(y.mean()),
        "dark_share": float((y < 16).mean()),
        "clipped_share": float((y >= 250).mean()),
    }


def sharpness(frames: np.ndarray) -> float:
    """Median over frames of the variance of the Laplacian (higher is sharper; depends on frame size)."""
    return float(np.median([cv2.Laplacian(y, cv2.CV_64F).var() for y in _luma(frames)]))


def eye_field_heuristic(frame: np.ndarray) -> float:
    """A 0-1 score for "a microscope view of an eye" without a learnt model: red-orange tissue and reflex
    (warm, saturated hues) over a field with detail everywhere. Slides, text screens and black frames score
    near 0; faces score in between (the privacy stage handles them)."""
    small = cv2.resize(frame, (160, max(8, int(frame.shape[0] * 160 / frame.shape[1]))), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    warm = (((hue <= 22) | (hue >= 160)) & (sat >= 60) & (val >= 50)).mean()
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    h8, w8 = grey.shape[0] // 8 * 8, grey.shape[1] // 8 * 8
    blocks = grey[:h8, :w8].reshape(h8 // 8, 8, w8 // 8, 8).std(axis=(1, 3))
    detail = (blocks > 3).mean()
    return float(np.sqrt(np.clip(warm / 0.25, 0, 1) * np.clip((detail - 0.3) / 0.5, 0, 1)))


# ---------------------------------------------------------------- CLIP zero-shot


def class_embeddings(prompt_embeddings: np.ndarray, groups: list[int], classes: int) -> np.ndarray:
    """One unit vector per class: the mean of its prompts' unit embeddings (``groups[i]`` is prompt i's class)."""
    e = prompt_embeddings / np.linalg.norm(prompt_embeddings, axis=1, keepdims=True)
    out = np.stack([e[np.asarray(groups) == c].mean(axis=0) for c in range(classes)])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def field_probability(
    image_embeddings: np.ndarray, class_emb: np.ndarray, positive: np.ndarray, logit_scale: float
) -> np.ndarray:
    """Per image, the softmax probability mass of the positive classes (cosine logits times ``logit_scale``)."""
    img = image_embeddings / np.linalg.norm(image_embeddings, axis=1, keepdims=True)
    logits = logit_scale * img @ class_emb.T
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return p[:, np.asarray(positive, bool)].sum(axis=1)


class OpenClipFieldScorer:
    """open_clip zero-shot surgical-field probability per frame. Loads the model and encodes the prompts once."""

    def __init__(self, cfg: QualityConfig):
        unknown = set(cfg.clip_positive) - set(cfg.clip_prompts)
        if unknown or len(cfg.clip_positive) == len(cfg.clip_prompts):
            raise ValueError(f"quality.clip_positive must name some, not all, of the prompt classes ({unknown or ''})")
        self.encoder = openclip_model(cfg)
        names = list(cfg.clip_prompts)
        prompts = [(i, p) for i, n in enumerate(names) for p in cfg.clip_prompts[n]]
        text = self.encoder.text_embeddings([p for _, p in prompts])
        self.class_emb = class_embeddings(text, [i for i, _ in prompts], len(names))
        self.positive = np.array([n in cfg.clip_positive for n in names])
        self.logit_scale, self.id = self.encoder.logit_scale, self.encoder.id

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return field_probability(self.encoder.image_embeddings(frames), self.class_emb, self.positive, self.logit_scale)


def openclip_model(cfg: QualityConfig) -> OpenClipModel:
    """The open_clip model the ``quality`` section names (``clip_pretrained='random'``: random weights)."""
    pretrained = None if cfg.clip_pretrained == RANDOM_WEIGHTS else cfg.clip_pretrained
    try:
        return OpenClipModel(cfg.clip_model, pretrained, cfg.clip_device, cfg.clip_batch)
    except ValueError as e:
        raise ValueError(f"quality: {e}") from e


# ---------------------------------------------------------------- the judgement


def judge_quality(frames: np.ndarray, field_scores: np.ndarray, cfg: QualityConfig) -> Findings:
    """Scores and the drop / P2FT decision of one window from its frames and per-frame surgical-field scores."""
    borders = border_shares(frames, cfg.border_level, cfg.min_border)
    content = inner(frames, borders)
    exp = exposure(content)
    sharp = sharpness(content)
    field = float(np.mean(field_scores))
    scores = {"field": field, "sharpness": sharp, **exp, **{f"border_{k}": v for k, v in borders.items()}}
    findings = Findings(scores=scores, flags={"letterboxed": any(v > 0 for v in borders.values())})
    if exp["brightness"] < cfg.min_brightness or exp["dark_share"] > cfg.max_dark_share:
        findings.drop = f"black or underexposed (mean luma {exp['brightness']:.0f})"
    elif field < cfg.min_field:
        findings.drop = f"not a surgical field (score {field:.2f})"
    elif sharp < cfg.min_sharpness:
        findings.drop = f"out of focus (sharpness {sharp:.1f})"
    if field < cfg.p2ft_field:
        findings.p2ft_reasons.append(f"weak surgical-field score ({field:.2f})")
    if sharp < cfg.p2ft_sharpness:
        findings.p2ft_reasons.append(f"soft focus (sharpness {sharp:.1f})")
    if exp["clipped_share"] > cfg.max_clipped_share:
        findings.p2ft_reasons.append(f"overexposed ({exp['clipped_share']:.0%} blown out)")
    return findings


class QualityStage(FrameFilterStage):
    """Window stage: surgical-field score (open_clip or the heuristic), sharpness, exposure and borders."""

    name = "quality"
    sections = {"quality": QualityConfig}
    resources = stage_resources(0.1, (1, 2), 4, 400)  # give it num_gpus for open_clip on a GPU node

    def setup(self) -> None:
        super().setup()
        self.clip = OpenClipFieldScorer(self.cfg) if self.cfg.clip_pretrained else None
        self.model = self.clip.id if self.clip else HEURISTIC_MODEL

    def field_scores(self, frames: np.ndarray) -> np.ndarray:
        if self.clip is not None:
            return self.clip(frames)
        return np.array([eye_field_heuristic(f) for f in frames])

    def judge(self, frames: np.ndarray) -> Findings:
        return judge_quality(frames, self.field_scores(frames), self.cfg)
