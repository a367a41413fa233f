"""`ophora train precompute` as a Ray Data job, then the trainer on the latent shards it wrote (slow)."""

from __future__ import annotations

import pytest

from ophora.dataset.shards import list_shards
from ophora.training.config import load_config
from ophora.training.models import make_tiny_model
from ophora.training.precompute import precompute_latents
from ophora.training.trainer import run_training
from tests.fixtures.shards import write_clip_shards


@pytest.mark.slow
def test_precomputed_latents_train_with_caption_dropout_and_ema(ray_local, tmp_path):
    model = make_tiny_model(tmp_path / "model")
    write_clip_shards(tmp_path / "raw", {"tpt": 4, "p2ft": 2}, per_shard=2)
    cfg = load_config(
        "tiny",
        {
            "model": str(model),
            "max_steps": 2,
            "checkpoint_every": 2,
            "log_every": 1,
            "ema_decay": 0.9,
            "data.caption_dropout": 0.5,
        },
    )
    job = precompute_latents(cfg, tmp_path / "raw", tmp_path / "latents", subsets=["tpt", "p2ft"])
    assert (job["samples"], job["bad"], job["shards_in"]) == (6, 0, 3)
    assert len(list_shards(str(tmp_path / "latents"), "tpt")) == 2
    rerun = precompute_latents(cfg, tmp_path / "raw", tmp_path / "latents", subsets=["tpt"])
    assert len(list_shards(str(tmp_path / "latents"), "tpt")) == 2 and rerun["samples"] == 4  # rewrites, no dupes

    summary = run_training(cfg, tmp_path / "latents", tmp_path / "run", "tpt")
    assert summary["kind"] == "latents" and summary["steps"] == 2
    assert summary["loss_last"] == summary["loss_last"]  # finite, not NaN
