"""windows: the 1 -> many split of a source into clip windows that fit the trainer's frame budget.

Each scene (after a ``windows.cut_margin`` is kept clear at both ends) gets windows of ``num_frames / fps`` seconds
spread evenly over it; a window never spans a scene boundary. When a scene is a little longer than a whole number of
windows, one more window is placed and neighbours overlap (by at most ``windows.overlap`` of a window) so the
footage up to the scene's end is used: a 12 s shot gives two clips instead of one and a 5.6 s leftover. What no
window covers is dropped with a reason, as a window row of its own, so the ledger counts it.

When the transcribe stage ran, the split also hands each window its narration (``align.narrate_window_rows``:
words by time, completed to sentences, PHI-scrubbed) and drops windows nobody speaks over; the source's transcript
goes no further than this stage.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ophora.curation.stages.align import AlignConfig, narrate_window_rows
from ophora.curation.stages.base import Stage, stage_resources
from ophora.curation.stages.common import new_row

_EPS = 1e-6


class WindowsConfig(BaseModel):
    """The ``windows`` section: clip windows inside scenes (the clip geometry)."""

    model_config = ConfigDict(extra="forbid")

    num_frames: int = Field(49, gt=0, description="frames per clip (the trainer's frame budget)")
    fps: float = Field(8.0, gt=0, description="frame rate of the clips")
    cut_margin: float = Field(0.25, ge=0, description="seconds kept clear of each scene boundary (cuts, dissolves)")
    max_windows_per_scene: int = Field(0, ge=0, description="cap on windows per scene (0 = no cap)")
    overlap: float = Field(
        0.5,
        ge=0,
        lt=1,
        description="a scene's rest after its whole windows gets one more window when that window "
        "shares at most this share of itself with the others (windows then spread "
        "evenly and overlap): a 12 s shot gives two 6.1 s clips sharing 0.6 s "
        "instead of one clip and a 5.6 s leftover; 0: windows never share frames",
    )

    @property
    def duration(self) -> float:
        """Seconds of source one clip covers (49 frames at 8 fps = 6.125 s)."""
        return self.num_frames / self.fps


class Windows(Stage):
    """``__call__(source row) -> [window rows]``: one row per clip window (``window_index`` 0.. in time order,
    ``windows_total`` on each), plus one row per short leftover with ``drop`` set. A settled source (rejected or
    failed) passes through as its single row with ``windows_total = 0``."""

    name = "windows"
    kind = "flat_map"
    sections = {"windows": WindowsConfig, "align": AlignConfig}  # narration is aligned to the windows here
    resources = stage_resources(0.1, (1, 1))
    holds_model = False  # cheap to build: Ray tasks in pooled workers, not an actor process of its own

    def setup(self) -> None:
        align = self.conf["align"]
        if not align.phi_model and self.run.models.get("phi"):  # the scrubber's model is models.phi everywhere
            align = align.model_copy(update={"phi_model": self.run.models["phi"]})
        self.align = align
        self.narrate = self.run.runs("transcribe")
        # The clip stage samples frames at start + k/fps, k < num_frames: it needs this much source time.
        self.span = self.cfg.num_frames / self.cfg.fps

    def starts(self, lo: float, usable: float) -> list[float]:
        """Window starts that cover ``[lo, lo + usable]`` evenly: as many whole windows as fit, plus one when the
        rest is long enough that the extra window shares at most ``windows.overlap`` of itself with the others;
        spread from the first usable second to the last (a single window sits in the middle)."""
        span, cfg = self.span, self.cfg
        if usable + _EPS < span:
            return []
        count = int(math.floor((usable + _EPS) / span))
        rest = usable - count * span
        if cfg.overlap and rest >= 1 / cfg.fps and span - rest <= cfg.overlap * span + _EPS:
            count += 1
        if cfg.max_windows_per_scene:
            count = min(count, cfg.max_windows_per_scene)
        if count == 1:
            return [lo + (usable - span) / 2]
        return [lo + k * (usable - span) / (count - 1) for k in range(count)]

    def plan(self, scenes: list[tuple[float, float]]) -> list[tuple[int, float, float, str]]:
        """(scene index, start, end, drop reason or "") for every window and every stretch of a scene no window
        covers (a short leftover, dropped with that reason), in time order."""
        out = []
        for si, (a, b) in enumerate(scenes):
            lo, hi = a + self.cfg.cut_margin, b - self.cfg.cut_margin
            starts = self.starts(lo, hi - lo)
            out += [(si, s, s + self.span, "") for s in starts]
            if starts and self.cfg.max_windows_per_scene:
                continue  # a capped scene leaves the rest on purpose
            edges = [(lo, lo)] + [(s, s + self.span) for s in starts] + [(hi, hi)]
            for (_, end), (start, _) in zip(edges, edges[1:]):
                left = start - end
                # A stretch shorter than one clip frame is rounding, not lost footage.
                if left >= 1 / self.cfg.fps or not starts:
                    s0, s1 = (end, max(end + _EPS, start)) if hi > lo else (a, max(a + _EPS, b))
                    out.append(
                        (si, s0, s1, f"windows: short leftover ({max(0.0, left):.2f} s < {self.span:.3f} s window)")
                    )
        return sorted(out, key=lambda w: (w[1], w[2]))

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        if row["reject"] or row["error"]:
            return [{**row, "window_index": -1, "windows_total": 0}]
        scenes = [tuple(s) for s in json.loads(row["scenes_json"])]
        plan = self.plan(scenes)
        if not any(not reason for *_, reason in plan):
            return [
                {
                    **row,
                    "window_index": -1,
                    "windows_total": 0,
                    "reject": f"windows: no scene holds a {self.span:.3f} s window",
                }
            ]
        base = {k: v for k, v in row.items() if k not in ("scenes_json", "transcript_json")}
        rows = [
            new_row(
                **{
                    **base,
                    "window_index": i,
                    "windows_total": len(plan),
                    "scene_index": si,
                    "start": round(start, 4),
                    "end": round(end, 4),
                    "drop": reason,
                }
            )
            for i, (si, start, end, reason) in enumerate(plan)
        ]
        if self.narrate:
            live = [r for r in rows if not r["drop"]]
            try:
                narrate_window_rows(row.get("transcript_json") or "{}", live, self.align)
            except Exception as e:  # noqa: BLE001 - a bad transcript fails this source, never the run
                for r in live:
                    r["error"] = f"align: {type(e).__name__}: {e}"[:2000]
        return rows
