"""What the visual filter stages (dynamics, quality, privacy, dedup) share: sample a window's frames, judge them
with plain functions, and record the judgement on the row.

A judgement is a :class:`Findings`: scores and flags (stored under the clip's ``scores``/``flags``, merged with
what earlier stages stored), reasons that keep the clip out of P²FT, whether the clip carries identifying content
(stored as ``flags["identifying"]``; the writer passes it to :func:`~ophora.dataset.shards.decide_subsets`), and
an optional drop reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ophora.curation.frames import FrameError, row_video_path, window_frames
from ophora.curation.stages.common import Reject, RowStage, read_meta, update_meta

IDENTIFYING_FLAG = "identifying"


@dataclass
class Findings:
    """One stage's judgement of one window."""

    scores: dict[str, float] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    p2ft_reasons: list[str] = field(default_factory=list)
    identifying: bool = False
    drop: str = ""


def record(row: dict[str, Any], stage: str, findings: Findings, model: str = "") -> None:
    """Merge ``findings`` into the row's clip metadata (scores, flags and models merged key by key; reasons
    appended as ``"<stage>: <reason>"``)."""
    meta = read_meta(row)
    scores = {**meta.get("scores", {}), **{k: float(v) for k, v in findings.scores.items()}}
    flags = {**meta.get("flags", {}), **{k: bool(v) for k, v in findings.flags.items()}}
    if findings.identifying:
        flags[IDENTIFYING_FLAG] = True
    fields: dict[str, Any] = {"scores": scores, "flags": flags}
    if model:
        fields["models"] = {**meta.get("models", {}), stage: model}
    reasons = [f"{stage}: {r}" for r in findings.p2ft_reasons]
    if reasons:
        fields["p2ft_reasons"] = reasons
    update_meta(row, **fields)


def is_identifying(row: dict[str, Any]) -> bool:
    """Whether a filter stage found identifying content in the row's window."""
    return bool(read_meta(row).get("flags", {}).get(IDENTIFYING_FLAG, False))


class FrameFilterStage(RowStage):
    """A window-level stage that samples ``frames`` frames (longer side ``max_side``) of each live window and
    judges them with :meth:`judge`. Subclasses set ``name``, ``sections`` (whose own section has ``frames`` and
    ``max_side``), ``model`` and implement ``judge``."""

    level = "window"
    optional = True
    model = ""

    def setup(self) -> None:
        self.frames, self.max_side = self.cfg.frames, self.cfg.max_side

    def judge(self, frames: np.ndarray) -> Findings:  # pragma: no cover - every filter overrides it
        raise NotImplementedError

    def window_frames(self, row: dict[str, Any]) -> np.ndarray:
        try:
            return window_frames(
                row_video_path(row), float(row["start"]), float(row["end"]), self.frames, self.max_side
            )
        except FrameError as e:
            raise Reject(f"cannot read frames: {e}") from e

    def process(self, row: dict[str, Any]) -> None:
        findings = self.judge(self.window_frames(row))
        record(row, self.name, findings, self.model)
        if findings.drop:
            raise Reject(findings.drop)
