"""privacy: identifying text and faces make a window identifying (dropped); any text or graphic overlay keeps it
out of P²FT; a plain microscope view stays clean. Faces are portraits the detector was not tuned on (scikit-image's
astronaut and camera, matplotlib's grace_hopper) pasted at 8-90 % of the frame height, in corners as
picture-in-picture, side-lit and grey; the four real cataract clips must show no face, text or overlay."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ophora.curation.frames import frames_at
from ophora.curation.stages.common import new_row, read_meta
from ophora.curation.stages.frame_filter import is_identifying, record
from ophora.curation.stages.privacy import (
    FaceDetector,
    PrivacyConfig,
    PrivacyStage,
    graphic_colour_share,
    identifying_text,
    rectangle_corners,
)
from ophora.dataset.shards import decide_subsets
from tests.fixtures.faces import pasted, portrait
from tests.fixtures.scenes import scene_frames

FRAMES = 2  # two frames per window keeps the OCR cost of the test low
REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"


@pytest.fixture(scope="module")
def stage():
    return PrivacyStage(PrivacyConfig(frames=FRAMES))


def judge(stage, kind, seed=0):
    return stage.judge(scene_frames(kind, seed, count=FRAMES, max_side=720))


@pytest.fixture(scope="module")
def surgical_background():
    return scene_frames("surgical", 5, count=1, max_side=720)[0]


@pytest.mark.parametrize(
    "name, share, corner, look",
    [
        ("grace_hopper", 0.15, "top-left", "plain"),
        ("astronaut", 0.3, "bottom-right", "grey"),
        ("camera", 0.45, "centre", "plain"),
        ("grace_hopper", 0.9, "centre", "side-lit"),
        ("astronaut", 0.6, "centre", "side-lit"),
        ("camera", 0.3, "top-left", "grey"),
    ],
)
def test_faces_the_detector_was_not_tuned_on_are_found(stage, surgical_background, name, share, corner, look):
    frame = pasted(surgical_background, portrait(name), share, corner, look)
    assert stage.faces(frame) >= 1
    f = stage.judge(np.stack([frame, frame]))
    assert f.identifying and f.flags["face"] and f.drop.startswith("identifying content")


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="the reference clips live in ../shared/reference")
def test_the_real_cataract_clips_show_no_face_text_or_overlay(stage):
    for clip in sorted(REFERENCE.glob("*.mp4")):
        frames = frames_at(str(clip), [0.3, 1.8, 3.3, 4.8, 5.9], 720)
        for frame in frames:
            assert stage.faces(frame) == 0, clip.name  # the eye under the microscope is not a face
        f = stage.judge(frames)
        assert f.p2ft_reasons == [] and not f.identifying, (clip.name, f.p2ft_reasons, f.scores)


def test_the_eye_gate_keeps_a_face_shaped_box_cut_by_the_frame_edge_out():
    from ophora.curation.stages.privacy.faces import Face, face_like

    eye_at_edge = Face((-16.0, 231.0, 118.0, 397.0), 0.98, [(40, 296), (96, 277), (87, 323), (83, 353)])
    presenter = Face((300.0, 100.0, 420.0, 250.0), 0.99, [(330, 160), (390, 160), (360, 190), (360, 220)])
    assert not face_like(eye_at_edge, 480, 720) and face_like(presenter, 480, 720)


@pytest.mark.parametrize("kind,seed", [("phi_text", 0), ("phi_text", 3), ("face", 0), ("face", 1)])
def test_identifying_windows_are_marked_and_dropped(stage, kind, seed):
    f = judge(stage, kind, seed)
    assert f.identifying and f.drop.startswith("identifying content")
    row = new_row(source_id="abcd", window_index=0, start=0.0, end=1.0)
    record(row, "privacy", f)
    meta = read_meta(row)
    assert is_identifying(row) and decide_subsets(meta["p2ft_reasons"], is_identifying(row)) == []


@pytest.mark.parametrize("kind, seed", [("overlay", 1), ("pip", 0), ("slide", 1)])
def test_graphics_and_harmless_text_leave_p2ft_but_stay_in_tpt(stage, kind, seed):
    f = judge(stage, kind, seed)
    assert not f.identifying and f.drop == ""
    assert f.p2ft_reasons and decide_subsets(f.p2ft_reasons, f.identifying) == ["tpt"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_plain_microscope_view_is_clean(stage, seed):
    f = judge(stage, "surgical", seed)
    assert f.p2ft_reasons == [] and not f.identifying and f.flags["privacy_examined"]
    assert decide_subsets(f.p2ft_reasons, f.identifying) == ["tpt", "p2ft"]


def test_one_unclean_frame_is_enough(stage):
    frames = scene_frames("surgical", 2, count=FRAMES, max_side=720).copy()
    cv2.putText(frames[-1], "MRN 4482913", (20, 380), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
    f = stage.judge(frames)
    assert f.identifying and f.flags["identifying_text"] and f.scores["text_area"] > 0


def test_ocr_letter_o_read_as_zero_still_counts_as_a_label():
    assert identifying_text(["D0B: 1941"]) and not identifying_text(["D0B:"[:2]]) and identifying_text(["PT: SMITH"])
    assert not identifying_text(["Capsular bag"]) and not identifying_text([])


def test_graphics_in_a_hue_foreign_to_the_frame_are_found_with_a_palette_learned_per_frame():
    surgical = scene_frames("surgical", 0, count=1, max_side=720)[0]
    assert rectangle_corners(surgical) < 3 <= rectangle_corners(scene_frames("pip", 0, count=1, max_side=720)[0])
    real = frames_at(str(REFERENCE / "hydrodissection.mp4"), [2.0], 720)[0] if REFERENCE.is_dir() else surgical
    threshold = PrivacyConfig().overlay_colour_share
    assert graphic_colour_share(real) < threshold
    for hue in (50, 65, 110, 140):  # green, cyan-green, blue, violet (this frame's palette holds 35 and 155)
        frame = real.copy()
        colour = cv2.cvtColor(np.uint8([[[hue, 255, 255]]]), cv2.COLOR_HSV2RGB)[0, 0].tolist()
        cv2.arrowedLine(frame, (60, 60), (260, 200), colour, 6, cv2.LINE_AA, tipLength=0.3)
        assert graphic_colour_share(frame) > threshold, hue


def test_haar_remains_selectable_and_a_missing_face_model_fails_with_a_clear_error(tmp_path):
    assert FaceDetector(PrivacyConfig(face_detector="haar")).id.startswith("opencv-haar")
    with pytest.raises(ValueError, match="face_model"):
        PrivacyStage(PrivacyConfig(ocr=False, face_model=str(tmp_path / "yunet.onnx")))


def test_ocr_detection_side_is_honoured(surgical_background):
    """``ocr_det_side`` bounds the detector's input (rapidocr alone would detect a 720-px frame at native size):
    a 14-px line is read at the default and lost when detection runs at 128 px."""
    from ophora.curation.stages.privacy import TextReader

    frame = surgical_background.copy()
    cv2.putText(frame, "SURGERY RECORD 2024", (40, 60), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    assert TextReader(PrivacyConfig())(frame)[0]
    assert TextReader(PrivacyConfig(ocr_det_side=128))(frame)[0] == []


def test_the_first_and_last_samples_are_read_at_full_size_and_the_middle_ones_scouted(stage, surgical_background):
    """``ocr_scout_side``: the samples between a window's first and last are detected at the smaller size (a line
    the scout cannot see is still read where it is on the first or last sample); the reader is never asked for
    more than ``ocr_det_side``."""
    from ophora.curation.stages.privacy import TextReader

    frame = surgical_background.copy()
    cv2.putText(frame, "SURGERY RECORD 2024", (40, 60), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    reader = TextReader(PrivacyConfig(ocr_scout_side=128))
    assert reader(frame, det_side=128)[0] == [] and reader(frame)[0]
    assert reader(frame, det_side=4096) and reader.side == PrivacyConfig().ocr_det_side
    sides = []
    real = stage.reader
    stage.reader = lambda f, side=0: sides.append(side) or ([], 0.0)
    try:
        stage.judge(np.stack([surgical_background] * 4))
    finally:
        stage.reader = real
    assert sides == [0, stage.cfg.ocr_scout_side, stage.cfg.ocr_scout_side, 0]


@pytest.fixture(scope="module")
def reference_window():
    """Four samples of a real clip as the stage samples a window (1.5 s apart); the reference clips are required
    here: without them nothing shows that strokes in the footage's own colours are found."""
    assert REFERENCE.is_dir(), f"the reference clips are expected in {REFERENCE}"
    return frames_at(str(REFERENCE / "hydrodissection.mp4"), [0.76, 2.29, 3.82, 5.35], 720)


def test_strokes_drawn_in_the_footages_own_colours_are_found_and_clean_real_frames_are_not(
    stage, reference_window, tmp_path
):
    """A red ring and a yellow arrow (3 px, anti-aliased, re-encoded with libx264) drawn over a real clip: red and
    yellow are this footage's palette, so the hue check cannot see them; the still-stroke check does (on windows
    of three samples or more: two may meet in a moment of no motion)."""
    from ophora.curation.stages.privacy.strokes import still_stroke
    from tests.fixtures.strokes import draw_stroke, encode, read_all

    clean = stage.judge(reference_window)
    assert clean.p2ft_reasons == [] and clean.scores["still_stroke"] < stage.cfg.stroke_min_pixels
    ring = ("ring", {"c": (360, 230), "r": 110}, (230, 30, 30))
    arrow = ("arrow", {"c": (330, 250), "tail": (470, 130)}, (255, 230, 40))
    for kind, shape, colour in (ring, arrow):
        drawn = np.stack([draw_stroke(f, kind, shape, colour, 3) for f in reference_window])
        assert max(graphic_colour_share(f) for f in drawn) < stage.cfg.overlay_colour_share, kind  # the gap
        window = read_all(encode(drawn, tmp_path / f"{kind}.mp4"))
        f = stage.judge(window)
        assert f.flags["overlay"] and any("drawn stroke" in r for r in f.p2ft_reasons), (kind, f.scores)
        assert decide_subsets(f.p2ft_reasons, f.identifying) == ["tpt"]
        assert still_stroke(window[:2]) == 0.0 < still_stroke(window[:2], min_samples=2), kind
