"""privacy: identifying text and faces make a window identifying (dropped); any text or graphic overlay keeps it
out of P²FT; a plain microscope view stays clean."""

from __future__ import annotations

import cv2
import pytest

from filters_scenes import scene_frames
from ophora.curation.stages.common import new_row, read_meta
from ophora.curation.stages.frame_filter import is_identifying, record
from ophora.curation.stages.privacy import (PrivacyConfig, PrivacyStage, graphic_colour_share, identifying_text,
                                            rectangle_corners)
from ophora.curation.shards import decide_subsets

FRAMES = 2  # two frames per window keeps the OCR cost of the test low


@pytest.fixture(scope="module")
def stage():
    return PrivacyStage(PrivacyConfig(frames=FRAMES))


def judge(stage, kind, seed=0):
    return stage.judge(scene_frames(kind, seed, count=FRAMES, max_side=720))


@pytest.mark.parametrize("kind,seed", [("phi_text", 0), ("phi_text", 3), ("face", 0), ("face", 1)])
def test_identifying_windows_are_marked_and_dropped(stage, kind, seed):
    f = judge(stage, kind, seed)
    assert f.identifying and f.drop.startswith("identifying content")
    row = new_row(source_id="abcd", window_index=0, start=0.0, end=1.0)
    record(row, "privacy", f)
    meta = read_meta(row)
    assert is_identifying(row) and decide_subsets(meta["p2ft_reasons"], is_identifying(row)) == []


@pytest.mark.parametrize("kind", ["overlay", "pip", "slide"])
def test_graphics_and_harmless_text_leave_p2ft_but_stay_in_tpt(stage, kind):
    f = judge(stage, kind, 1)
    assert not f.identifying and f.drop == ""
    assert f.p2ft_reasons and decide_subsets(f.p2ft_reasons, f.identifying) == ["tpt"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_plain_microscope_view_is_clean(stage, seed):
    f = judge(stage, "surgical", seed)
    assert f.p2ft_reasons == [] and not f.identifying
    assert decide_subsets(f.p2ft_reasons, f.identifying) == ["tpt", "p2ft"]


def test_one_unclean_frame_is_enough(stage):
    frames = scene_frames("surgical", 2, count=FRAMES, max_side=720).copy()
    cv2.putText(frames[-1], "MRN 4482913", (20, 380), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
    f = stage.judge(frames)
    assert f.identifying and f.flags["identifying_text"] and f.scores["text_area"] > 0


def test_ocr_letter_o_read_as_zero_still_counts_as_a_label():
    assert identifying_text(["D0B: 1941"]) and not identifying_text(["D0B:"[:2]]) and identifying_text(["PT: SMITH"])
    assert not identifying_text(["Capsular bag"]) and not identifying_text([])


def test_overlay_detectors_fire_on_graphics_only():
    surgical = scene_frames("surgical", 0, count=1, max_side=720)[0]
    pip = scene_frames("pip", 0, count=1, max_side=720)[0]
    arrows = scene_frames("overlay", 0, count=1, max_side=720)[0]
    assert rectangle_corners(surgical) < 3 <= rectangle_corners(pip)
    assert graphic_colour_share(surgical) < 0.002 < graphic_colour_share(arrows)


def test_missing_face_model_fails_with_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="face_model"):
        PrivacyStage(PrivacyConfig(ocr=False, face_model=str(tmp_path / "yunet.onnx")))
