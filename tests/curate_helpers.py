"""Helpers the curate tests share: truth look-ups and mp4 facts (kept here so each test reads as its promise)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ophora.curation.config import CurateConfig
from ophora.curation.stages.scenes import merge_intervals

# The offline profile with the rule-based refiner: SmolLM2 costs ~6 s a clip on this CPU, so only the tests of
# the LLM path (test_refine, test_curate_narration) run it. As CLI flags for the tests that run `ophora curate`:
FAST_REFINE = {"refine.backend": "extractive"}
FAST_FLAGS = ["--profile", "offline", "--set", "refine.backend=extractive"]
# The backbone alone (probe, scenes, windows, clip, write): for the tests of crashes, resume, bad files and
# scheduling, whose promises do not depend on what the content stages decide (test_curate_narration runs them all).
BACKBONE = {"skip": ["transcribe", "refine", "dynamics", "quality", "privacy", "dedup"]}
BACKBONE_FLAGS = ["--profile", "offline", "--set", "skip=[" + ",".join(BACKBONE["skip"]) + "]"]


def offline_config(**overrides) -> CurateConfig:
    """The ``offline`` profile (every model ships in a package) with :data:`FAST_REFINE` and ``overrides``
    (dotted names as keyword arguments: ``offline_config(**{"windows.num_frames": 33})``)."""
    return CurateConfig.load("offline", overrides={**FAST_REFINE, **overrides})


def truth_by_file(corpus: Path) -> dict[str, dict]:
    """Ground truth of the synthetic corpus keyed by video file name."""
    from ophora.synthetic.corpus import load_truth

    return {Path(t["file"]).name: t for t in load_truth(corpus)}


def scene_of(truth: dict, start: float, end: float) -> dict | None:
    """The ground-truth scene that holds [start, end] clear of any dissolve, or None when the span crosses one."""
    scenes = truth["scenes"]
    for i, s in enumerate(scenes):
        lo = s["start"] + s["transition_duration"] / 2
        hi = s["end"] - (scenes[i + 1]["transition_duration"] / 2 if i + 1 < len(scenes) else 0.0)
        if lo - 1e-3 <= start and end <= hi + 1e-3:
            return s
    return None


def mp4_facts(data: bytes, tmp: Path) -> dict:
    """frames (counted), width, height, r_frame_rate, pix_fmt and codec of an mp4 given as bytes."""
    path = tmp / "probe.mp4"
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
                          "stream=nb_read_frames,width,height,r_frame_rate,pix_fmt,codec_name", "-of", "json",
                          str(path)], capture_output=True, check=True).stdout
    s = json.loads(out)["streams"][0]
    return {"frames": int(s["nb_read_frames"]), "width": s["width"], "height": s["height"],
            "fps": s["r_frame_rate"], "pix_fmt": s["pix_fmt"], "codec": s["codec_name"]}


def cut_scores(truth_cuts: list[dict], boundaries: list[tuple[float, float]], tol: float = 0.1):
    """(matched truth cuts by kind, total by kind, false boundaries): a boundary interval matches a cut whose
    time lies inside it (± tol); overlapping intervals count once."""
    merged = merge_intervals(boundaries)
    hit, total, used = {}, {}, set()
    for c in truth_cuts:
        total[c["kind"]] = total.get(c["kind"], 0) + 1
        found = [i for i, (lo, hi) in enumerate(merged) if lo - tol <= c["time"] <= hi + tol]
        if found:
            hit[c["kind"]] = hit.get(c["kind"], 0) + 1
            used.update(found)
    return hit, total, len(merged) - len(used)
