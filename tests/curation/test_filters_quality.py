"""quality: the surgical-field score (open_clip zero-shot logic with planted embeddings, a randomly initialised
open_clip end to end, the shipped heuristic), sharpness, exposure and border crop."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ophora.curation.stages.quality import (
    HEURISTIC_MODEL,
    OpenClipFieldScorer,
    QualityConfig,
    QualityStage,
    border_shares,
    class_embeddings,
    crop_filter,
    eye_field_heuristic,
    field_probability,
    judge_quality,
)
from tests.fixtures.scenes import scene_frames

CFG = QualityConfig()


def test_planted_embeddings_score_the_surgical_field_high_and_the_rest_low():
    rng = np.random.default_rng(0)
    axes = np.linalg.qr(rng.normal(size=(32, 32)))[0][:3]  # three orthonormal directions: field, slide, face
    prompts = np.concatenate([axes[[0, 0]] + 0.05 * rng.normal(size=(2, 32)), axes[[1]], axes[[2]]])
    classes = class_embeddings(prompts, [0, 0, 1, 2], 3)
    positive = np.array([True, False, False])
    images = np.stack([axes[0] + 0.1 * axes[1], axes[1], axes[2] + 0.2 * axes[0], -axes[0]])
    p = field_probability(images, classes, positive, logit_scale=100.0)
    assert p[0] > 0.99 and p[1] < 0.01 and p[2] < 0.01 and p[3] < 0.01
    # the same images scored against swapped classes flip: a wrong sign or a swapped mask would fail above
    assert field_probability(images, classes, ~positive, 100.0)[0] < 0.01
    assert np.allclose(np.linalg.norm(classes, axis=1), 1.0)


def test_judge_thresholds_the_field_score_the_right_way_round():
    frames = scene_frames("surgical", 0)
    assert judge_quality(frames, np.full(8, 0.9), CFG).drop == ""
    low = judge_quality(frames, np.full(8, 0.3), CFG)
    assert low.drop.startswith("not a surgical field")
    mid = judge_quality(frames, np.full(8, 0.6), CFG)
    assert mid.drop == "" and any("surgical-field" in r for r in mid.p2ft_reasons)


@pytest.fixture(scope="module")
def tiny_clip_config(tiny_open_clip):
    return QualityConfig(clip_model=tiny_open_clip, clip_pretrained="random", clip_device="cpu", clip_batch=4)


def test_random_open_clip_runs_batched_and_names_itself(tiny_clip_config):
    scorer = OpenClipFieldScorer(tiny_clip_config)
    p = scorer(scene_frames("surgical", 0, count=6))
    assert p.shape == (6,) and np.all((p >= 0) & (p <= 1))
    assert scorer.id == "open_clip:ophora-tiny-test@random-init"
    assert scorer.class_emb.shape == (len(tiny_clip_config.clip_prompts), 32)


def test_missing_clip_weights_fail_with_a_clear_error(tiny_clip_config, tmp_path):
    cfg = tiny_clip_config.model_copy(update={"clip_pretrained": str(tmp_path / "nowhere.bin")})
    with pytest.raises(ValueError, match="cannot load open_clip"):
        OpenClipFieldScorer(cfg)


@pytest.mark.parametrize("kind,keep", [("surgical", True), ("overlay", True), ("slide", False), ("black", False)])
def test_heuristic_field_score_separates_microscope_views(kind, keep):
    scores = [eye_field_heuristic(f) for f in scene_frames(kind, seed=2, count=3)]
    assert (min(scores) >= CFG.p2ft_field) if keep else (max(scores) < CFG.min_field)


def test_stage_without_weights_runs_the_heuristic_and_says_so():
    stage = QualityStage(None)
    assert stage.model == HEURISTIC_MODEL and stage.clip is None
    assert stage.judge(scene_frames("black", 0)).drop.startswith("black or underexposed")
    assert stage.judge(scene_frames("slide", 0)).drop.startswith("not a surgical field")
    kept = stage.judge(scene_frames("surgical", 1))
    assert kept.drop == "" and kept.p2ft_reasons == []


def test_blurred_view_scores_softer_and_leaves_p2ft():
    frames = scene_frames("surgical", 0)
    sharp = judge_quality(frames, np.ones(8), CFG)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 6) for f in frames])
    soft = judge_quality(blurred, np.ones(8), CFG)
    assert soft.scores["sharpness"] < sharp.scores["sharpness"] / 10
    assert any("soft focus" in r for r in soft.p2ft_reasons) and sharp.p2ft_reasons == []


def test_letterbox_is_measured_and_turned_into_a_crop():
    frames = scene_frames("surgical", 0).copy()  # 320 x 180
    frames[:, :18] = 0
    frames[:, -18:] = 0
    frames[:, :, :32] = 3
    b = border_shares(frames)
    assert b["top"] == pytest.approx(0.1, abs=0.01) and b["bottom"] == pytest.approx(0.1, abs=0.01)
    assert b["left"] == pytest.approx(0.1, abs=0.01) and b["right"] == 0.0
    scores = {f"border_{k}": v for k, v in b.items()}
    assert crop_filter(scores, 1280, 720) == "crop=1152:576:128:72"
    assert crop_filter({}, 1280, 720) is None
    findings = judge_quality(frames, np.ones(8), CFG)
    assert findings.flags["letterboxed"] and findings.scores["dark_share"] < 0.05  # exposure ignores the bars
    assert border_shares(scene_frames("black", 0)) == dict.fromkeys(b, 0.0)
