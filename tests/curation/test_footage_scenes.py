"""Scene boundaries on real microscope footage: the four reference cataract clips (../shared/reference, never copied
into the repo) played forward and back into continuous shots, joined by hard cuts and dissolves. Continuous surgery
(instruments, the view jumping, the ping-pong turnaround, a fluid wave, a focus pull, a flash) gives no boundary;
every join is found. Most tests feed frames straight to the detector (no codec: seconds); one goes through a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ophora.curation.config import CurateConfig
from ophora.curation.stages.scenes import Scenes, find_boundaries
from ophora.synthetic.footage_eval import Footage, Shot, frames, load_clips, render, score_boundaries, truth_of

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"
CFG = CurateConfig.load("offline").scenes
ANALYSIS = (160, 106)  # what the stage's decode hands the detector for a 3:2 source


@pytest.fixture(scope="module")
def clips():
    return load_clips(REFERENCE)


def detect(footage: Footage, clips, cfg=CFG) -> tuple[dict, dict]:
    boundaries, _ = find_boundaries(frames(footage, clips, fps=cfg.analysis_fps, size=ANALYSIS), cfg, cfg.analysis_fps)
    truth = truth_of(footage, clips)
    return truth, score_boundaries(truth, boundaries)


@pytest.mark.parametrize("effect", ["", "focus_pull", "flash"])
def test_continuous_real_surgery_has_no_boundary(clips, effect):
    for name in clips:
        _, score = detect(Footage(f"{name}-{effect}", [Shot(name, effect=effect)]), clips)
        assert score["false"] == 0, (name, effect, score["false_at"])


def test_the_unchecked_detectors_do_fire_inside_real_surgery(clips):
    """The material is hard for what PySceneDetect alone does: the check is what keeps these shots whole."""
    unchecked = CFG.model_copy(update={"verify": False})
    false = sum(detect(Footage(n, [Shot(n)]), clips, unchecked)[1]["false"] for n in clips)
    assert false >= 3


@pytest.mark.parametrize(
    "order, transitions",
    [
        ((0, 1, 2, 3), [("cut", 0), ("dissolve", 1.0), ("cut", 0)]),
        ((3, 2, 1, 0), [("dissolve", 0.5), ("dissolve", 2.0), ("cut", 0)]),
        ((1, 3, 0, 2), [("cut", 0), ("cut", 0), ("dissolve", 1.5)]),
    ],
)
def test_every_join_of_real_shots_is_found_and_nothing_else(clips, order, transitions):
    names = list(clips)
    truth, score = detect(Footage("join", [Shot(names[i]) for i in order], transitions), clips)
    assert score["found"] == score["total"], score
    assert score["false"] == 0, score["false_at"]


def test_a_rendered_join_is_found_through_the_stage_at_another_size_and_rate(clips, tmp_path):
    names = list(clips)
    footage = Footage(
        "small",
        [Shot(names[2]), Shot(names[0]), Shot(names[3])],
        [("cut", 0), ("dissolve", 1.0)],
        width=320,
        height=214,
        fps=12,
    )
    truth = render(footage, clips, tmp_path)
    stage = Scenes(CurateConfig.load("offline"))
    boundaries, decoded = stage.detect(str(tmp_path / truth["file"]), truth["width"], truth["height"])
    score = score_boundaries(truth, boundaries)
    assert decoded > 0 and score["found"] == {"cut": 1, "dissolve": 1} and score["false"] == 0, score
    assert all(c["change"] >= CFG.change_threshold for c in stage.last_checks if c["boundary"])
