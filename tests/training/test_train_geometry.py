"""The clip geometry comes from the data, and the paper's configs are checked by a dry run: no Ray, no GPU, no
model weights."""

from __future__ import annotations

import itertools

import pytest

from ophora.clip_geometry import ClipGeometry
from ophora.training.config import load_config
from ophora.training.data import ClipStream, find_shards
from ophora.training.data_geometry import (
    GeometryMismatch,
    ModelGeometry,
    model_geometry,
    resolve_geometry,
    shard_geometry,
    with_geometry,
)
from ophora.training.dry_run import dry_run
from ophora.training.models import make_tiny_model
from ophora.training.trainer import run_training
from tests.fixtures.shards import write_clip_shards


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-geometry"), seed=0))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> str:
    """Two 9-frame 64x96 clips at 4 fps (the fixtures' default rate is 8: this one is the shards' own)."""
    root = tmp_path_factory.mktemp("geometry-shards")
    write_clip_shards(root, {"tpt": 2}, per_shard=2, fps=4.0)
    return str(root)


def test_the_run_takes_frames_fps_and_size_from_the_shards(tiny_model, clips):
    cfg = load_config("tiny", {"model": tiny_model})
    geometry = resolve_geometry(cfg.data, find_shards(clips, "tpt"), "raw", model_geometry(tiny_model))
    assert geometry == ClipGeometry(num_frames=9, fps=4.0, height=64, width=96)


def test_a_config_asking_for_other_clips_is_refused_in_one_line_before_training(tiny_model, clips, tmp_path):
    cfg = load_config("tiny", {"model": tiny_model, "data.num_frames": 13, "data.fps": 8})
    with pytest.raises(GeometryMismatch) as refused:
        run_training(cfg, clips, tmp_path, "tpt")
    message = str(refused.value)
    assert "\n" not in message and "9 frames of 64x96 at 4 fps" in message
    assert "num_frames=13" in message and "fps=8" in message and "height" not in message.split("asks for")[1]
    assert not (tmp_path / "ray").exists()  # refused before any worker started


def test_a_model_that_cannot_take_the_shards_clips_is_named(clips):
    cfg = load_config("tiny").data
    shards = find_shards(clips, "tpt")
    learned_positions = ModelGeometry(4, 8, 2, 16, fixed_size=(480, 720))
    with pytest.raises(GeometryMismatch, match="learned position embeddings only take 480x720"):
        resolve_geometry(cfg, shards, "raw", learned_positions)
    with pytest.raises(GeometryMismatch, match="9 frames: the model needs 16k\\+1 frames"):
        resolve_geometry(cfg, shards, "raw", ModelGeometry(16, 8, 2, 16, None))


def test_keep_native_clips_are_cropped_to_the_configured_size_only_when_asked(tiny_model, clips):
    shards = find_shards(clips, "tpt")
    model = model_geometry(tiny_model)
    asked = load_config("tiny", {"data.height": 32, "data.width": 48}).data
    with pytest.raises(GeometryMismatch, match="height=32, width=48"):
        resolve_geometry(asked, shards, "raw", model)
    cropped = asked.model_copy(update={"resize_clips": True})
    geometry = resolve_geometry(cropped, shards, "raw", model)
    assert geometry == ClipGeometry(9, 4.0, 32, 48)
    batch = next(iter(ClipStream(shards, with_geometry(cropped, geometry), 1, 0, 0, 1, "raw")))
    assert batch["pixels"].shape == (1, 3, 9, 32, 48)


def test_latent_shards_give_their_geometry_by_the_latents_shape(tiny_model, clips, tmp_path):
    from ophora.training.precompute import LatentEncoder

    shards = find_shards(clips, "tpt")
    LatentEncoder(tiny_model, str(tmp_path), 9, 64, 96, 48)({"shard": shards, "subset": ["tpt"]})
    latents = find_shards(str(tmp_path), "tpt")
    geometry, where = shard_geometry(latents, "latents", model_geometry(tiny_model))
    assert geometry == ClipGeometry(9, 4.0, 64, 96) and latents[0] in where
    wrong_channels = ModelGeometry(4, 8, 2, 16, None)
    with pytest.raises(GeometryMismatch, match=r"shaped \(3, 4, 8, 12\)"):
        shard_geometry(latents, "latents", wrong_channels)


def test_clips_of_another_geometry_in_the_stream_are_skipped_and_counted(clips, tmp_path):
    write_clip_shards(tmp_path, {"tpt": 3}, per_shard=3, fps=8.0)  # one shard of 8 fps clips next to 4 fps ones
    shards = find_shards(clips, "tpt") + find_shards(str(tmp_path), "tpt")
    data = load_config("tiny", {"data.max_bad_fraction": 0.9}).data
    data = with_geometry(data, ClipGeometry(9, 4.0, 64, 96))
    batches = list(itertools.islice(iter(ClipStream(shards, data, 1, 0, 0, 1, "raw")), 4))
    assert batches[-1]["bad"]["samples"] >= 3  # every 8 fps clip refused, none cropped or retimed silently


def test_the_paper_configs_dry_run_builds_everything_but_the_weights():
    tpt, p2ft = dry_run("tpt"), dry_run("p2ft", stage="p2ft")
    assert tpt["resources"]["per_worker"] == {"CPU": 8.0, "GPU": 1.0} and tpt["resources"]["backend"] == "nccl"
    assert tpt["resources"]["cluster_needs"] == {"CPU": 64.0, "GPU": 8.0} and tpt["resources"]["readers"] == 32
    assert tpt["batch"]["global"] == p2ft["batch"]["global"] == 2 * 8 * 8
    assert tpt["transformer"]["parameters"] == p2ft["transformer"]["parameters"] == 1_693_783_872  # CogVideoX-2b
    assert tpt["geometry"]["latent_shape"] == [13, 16, 60, 90] and tpt["geometry"]["video_tokens"] == 17550
    assert tpt["precision"] == {
        "mixed_precision": "bf16",
        "loss_scaler": False,
        "gradient_checkpointing": True,
        "parallel": "ddp",
    }
    lr, lr2 = tpt["schedule"]["lr_at_step"], p2ft["schedule"]["lr_at_step"]
    assert lr[0] == 0 and lr[400] == pytest.approx(5e-5) and lr[800] == pytest.approx(1e-4) and lr[64999] < 1e-9
    assert lr2[800] == pytest.approx(5e-5) and p2ft["schedule"]["max_steps"] == 4500
    lora = dry_run(load_config("tpt", {"lora.rank": 64, "mixed_precision": "fp16"}))
    assert lora["transformer"]["trainable"] < 0.02 * lora["transformer"]["parameters"]
    assert lora["precision"]["loss_scaler"] is True
    assert lora["transformer"]["training_state_gb_per_worker"] < tpt["transformer"]["training_state_gb_per_worker"]
