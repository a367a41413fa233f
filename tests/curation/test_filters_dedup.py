"""dedup: perceptual signatures survive re-encoding but tell scenes apart; CLIP SimHash bits track the angle
between embeddings; the bucket logic keeps the best of a group; dedup_dataset drops near duplicates across a Ray
Data run."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ophora.curation.config import CurateConfig
from ophora.curation.stages.common import new_row, rows_to_batch
from ophora.curation.stages.dedup import (
    SIGNATURE,
    DedupConfig,
    DedupStage,
    as_signature,
    band_keys,
    bucket_losers,
    frame_distances,
    signature,
    simhash,
    window_id,
)
from tests.fixtures.scenes import scene_frames


def reencoded(frames: np.ndarray, quality: int = 40) -> np.ndarray:
    """The same frames after a lossy round trip and a resize (what a re-upload does)."""
    out = []
    for f in frames:
        ok, buf = cv2.imencode(".jpg", cv2.resize(f, (256, 144)), [cv2.IMWRITE_JPEG_QUALITY, quality])
        out.append(cv2.resize(cv2.imdecode(buf, cv2.IMREAD_COLOR), (f.shape[1], f.shape[0])))
    return np.stack(out)


def test_signature_survives_reencoding_and_separates_scenes():
    a = scene_frames("surgical", 0, count=4)
    same = signature(a), signature(reencoded(a))
    assert max(frame_distances(*same)) <= DedupConfig().max_bits
    assert set(band_keys(same[0])) & set(band_keys(same[1]))  # they meet in a bucket
    other = signature(scene_frames("surgical", 5, count=4))
    assert min(frame_distances(same[0], other)) > DedupConfig().max_bits


def test_simhash_bits_track_the_angle_between_planted_embeddings():
    rng = np.random.default_rng(1)
    e = rng.normal(size=(1, 512))
    orthogonal = rng.normal(size=512)
    orthogonal -= orthogonal @ e[0] / (e[0] @ e[0]) * e[0]
    near = e + 0.1 * rng.normal(size=(1, 512)) * np.linalg.norm(e) / np.sqrt(512)  # cosine ~0.995
    (base,) = simhash(e)
    bits = [bin(base ^ h).count("1") for h in simhash(np.concatenate([e, near, orthogonal[None], -e]))]
    assert bits[0] == 0 and bits[1] <= DedupConfig().clip_max_bits < bits[2] and bits[3] == 64
    assert 20 <= bits[2] <= 44  # 90 degrees apart: about half the bits differ
    assert simhash(e) == simhash(e.copy())  # the same projections in every process


def test_clip_method_signs_windows_with_open_clip_and_needs_weights(tmp_path, tiny_open_clip):
    frames = scene_frames("surgical", 0, count=24, duration=3.0)
    _write(tmp_path / "a.mp4", frames)
    config = CurateConfig.load(
        "offline",
        overrides={"dedup.method": "clip", "quality.clip_model": tiny_open_clip, "quality.clip_pretrained": "random"},
    )
    stage = DedupStage(config)
    assert stage.model == f"simhash64-open_clip:{tiny_open_clip}@random-init@1"
    rows = [
        new_row(source_uri=str(tmp_path / "a.mp4"), source_id=sid, window_index=0, start=0.0, end=3.0)
        for sid in ("aaaa", "bbbb")
    ]
    first, second = DedupStage(config)(rows_to_batch(rows)).column(SIGNATURE).to_pylist()
    assert first == second and len(first.split(".")) == DedupConfig().frames
    assert as_signature(int(h, 16) for h in first.split(".")) == first
    with pytest.raises(ValueError, match="quality.clip_pretrained"):
        DedupStage(CurateConfig.load("offline", overrides={"dedup.method": "clip"}))


def test_bucket_keeps_the_best_and_is_order_free():
    a = signature(scene_frames("surgical", 0, count=4))
    b = signature(reencoded(scene_frames("surgical", 0, count=4)))
    c = signature(scene_frames("surgical", 5, count=4))
    members = [("x:1", 0.7, a), ("x:2", 0.9, b), ("y:1", 0.95, c)]
    assert bucket_losers(members, 10) == [("x:1", "x:2")]
    assert bucket_losers(list(reversed(members)), 10) == [("x:1", "x:2")]
    assert bucket_losers([("x:1", 0.8, a), ("x:0", 0.8, a)], 10) == [("x:1", "x:0")]  # tie: smaller id wins


def _write(path, frames, fps=8):
    h, w = frames.shape[1:3]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()


def test_dedup_dataset_drops_the_weaker_near_duplicate(tmp_path, ray_local):
    from ophora.curation.stages.dedup.grouping import dedup_dataset

    frames = scene_frames("surgical", 0, count=24, duration=3.0)
    _write(tmp_path / "a.mp4", frames)
    _write(tmp_path / "b.mp4", reencoded(frames, 60))  # a re-upload of a
    _write(tmp_path / "c.mp4", scene_frames("surgical", 5, count=24, duration=3.0))
    rows = []
    for sid, name, q in (("aaaa", "a", 0.8), ("bbbb", "b", 0.9), ("cccc", "c", 0.5)):
        rows.append(
            new_row(
                source_uri=str(tmp_path / f"{name}.mp4"),
                source_id=sid,
                window_index=0,
                start=0.0,
                end=3.0,
                meta_json=json.dumps({"scores": {"field": q}}),
            )
        )
    rows.append(
        new_row(
            source_uri=str(tmp_path / "a.mp4"),
            source_id="dddd",
            window_index=0,
            start=0.0,
            end=3.0,
            drop="quality: not a surgical field",
        )
    )
    table = DedupStage(None)(rows_to_batch(rows))
    assert all(table.column(SIGNATURE).to_pylist()[:3]) and table.column(SIGNATURE)[3].as_py() == ""
    ds = ray_local.data.from_arrow(table)
    out = {window_id(r): r for r in dedup_dataset(ds, partitions=2).take_all()}
    assert set(out) == {"aaaa:0", "bbbb:0", "cccc:0", "dddd:0"}
    assert out["aaaa:0"]["drop"] == "dedup: near duplicate (of bbbb:0)"
    assert out["bbbb:0"]["drop"] == "" and out["cccc:0"]["drop"] == ""
    assert out["dddd:0"]["drop"] == "quality: not a surgical field"
    assert "_dedup_wid" not in out["aaaa:0"]
