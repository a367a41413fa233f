"""How well the visual filters (dynamics -> quality -> privacy -> dedup) do on a synthetic corpus's ground truth.

One window per truth scene (inside the scene, clear of its transition) goes through the filter chain; each
outcome (dropped, or the subsets :func:`~ophora.dataset.shards.decide_subsets` gives) is compared with the
scene's ``expect_tpt`` / ``expect_p2ft``. The privacy detectors are also run on every window on their own, so
their recall and precision do not depend on what earlier stages dropped. Used by the tests and the benchmark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ophora.curation.stages.common import new_row, read_meta, rows_to_batch
from ophora.curation.stages.frame_filter import is_identifying
from ophora.dataset.shards import decide_subsets

# scene kinds whose windows carry identifying content the privacy stage must find
PLANTED = ("phi_text", "face", "face_pip")


@dataclass
class WindowOutcome:
    video: str
    kind: str
    start: float
    end: float
    expect: list[str]
    planted: bool
    drop: str = ""
    subsets: list[str] = field(default_factory=list)
    privacy_identifying: bool = False
    privacy_reasons: list[str] = field(default_factory=list)

    @property
    def as_expected(self) -> bool:
        return self.subsets == self.expect


def truth_windows(corpus_dir: str | Path, length: float = 6.125, margin: float = 0.25) -> list[tuple[dict, dict]]:
    """(window row, truth scene) for every scene of every video: the first ``length`` seconds of the scene after
    its incoming transition, ``margin`` clear of both ends (shorter when the scene is)."""
    from ophora.synthetic.corpus import load_truth

    out = []
    for truth in load_truth(corpus_dir):
        path = str(Path(corpus_dir) / truth["file"])
        for i, scene in enumerate(truth["scenes"]):
            start = scene["start"] + scene.get("transition_duration", 0.0) + margin
            end = min(scene["end"] - margin, start + length)
            if end - start < 0.2:
                continue
            row = new_row(
                source_uri=path,
                source_id=f"{abs(hash(truth['name'])) % 10**8:08d}",
                window_index=i,
                scene_index=i,
                start=round(start, 3),
                end=round(end, 3),
            )
            out.append((row, {**scene, "video": truth["name"]}))
    return out


def run_stage(stage, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float]:
    """The rows after one stage (through its batch interface) and the seconds it took."""
    t0 = time.perf_counter()
    out = stage(rows_to_batch(rows)).to_pylist()
    return out, time.perf_counter() - t0


def evaluate(corpus_dir: str | Path, stages: list, privacy_stage=None) -> dict[str, Any]:
    """Outcomes per truth window and the summary numbers: privacy recall/precision, surgical windows wrongly
    dropped, P2FT share of TPT, agreement with the truth, and each stage's milliseconds per window."""
    pairs = truth_windows(corpus_dir)
    rows = [r for r, _ in pairs]
    cost: dict[str, float] = {}
    for stage in stages:
        live = sum(1 for r in rows if not r["drop"])
        rows, seconds = run_stage(stage, rows)
        cost[stage.name] = 1000 * seconds / max(live, 1)
    outcomes = []
    for row, (_, scene) in zip(rows, pairs):
        meta = read_meta(row)
        subsets = (
            [] if row["drop"] or row["error"] else decide_subsets(meta.get("p2ft_reasons", []), is_identifying(row))
        )
        expect = ["tpt", "p2ft"][: int(scene["expect_tpt"]) + int(scene["expect_p2ft"])]
        outcomes.append(
            WindowOutcome(
                scene["video"],
                scene["kind"],
                row["start"],
                row["end"],
                expect,
                scene["kind"] in PLANTED,
                row["drop"] or row["error"],
                subsets,
            )
        )
    if privacy_stage is not None:  # the detectors alone, on every window
        alone, seconds = run_stage(privacy_stage, [r for r, _ in pairs])
        cost["privacy (every window)"] = 1000 * seconds / max(len(alone), 1)
        for o, row in zip(outcomes, alone):
            o.privacy_identifying = is_identifying(row)
            o.privacy_reasons = read_meta(row).get("p2ft_reasons", [])
    return {"outcomes": outcomes, "ms_per_window": cost, **summarise(outcomes, privacy_stage is not None)}


def summarise(outcomes: list[WindowOutcome], privacy_alone: bool) -> dict[str, Any]:
    planted = [o for o in outcomes if o.planted]
    surgical = [o for o in outcomes if o.kind == "surgical"]
    tpt = [o for o in outcomes if "tpt" in o.subsets]
    out: dict[str, Any] = {
        "windows": len(outcomes),
        "as_expected": sum(o.as_expected for o in outcomes) / max(len(outcomes), 1),
        "planted_in_a_subset": sum(1 for o in planted if o.subsets),
        "surgical_wrongly_dropped": sum(1 for o in surgical if o.drop) / max(len(surgical), 1),
        "surgical_kept_out_of_p2ft": sum(1 for o in surgical if "p2ft" not in o.subsets) / max(len(surgical), 1),
        "p2ft_share_of_tpt": sum(1 for o in tpt if "p2ft" in o.subsets) / max(len(tpt), 1),
    }
    if privacy_alone:
        flagged = [o for o in outcomes if o.privacy_identifying]
        out["privacy_recall"] = sum(1 for o in planted if o.privacy_identifying) / max(len(planted), 1)
        # slides that name the surgeon or the clinic are identifying too: they count as true finds
        out["privacy_precision"] = sum(1 for o in flagged if o.planted or o.kind == "slide") / max(len(flagged), 1)
        out["privacy_false_flags"] = [
            (o.video, o.kind, o.start) for o in flagged if not (o.planted or o.kind == "slide")
        ]
    return out
