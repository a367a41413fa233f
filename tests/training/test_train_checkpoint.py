"""Checkpoints and precomputed latents without Ray: a state round-trips, another model shape is refused, the
precompute encoder writes shards the trainer's stream reads, the tiny model loads and its objective is sane."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
import torch

from ophora.dataset.shards import list_shards
from ophora.training.checkpoint import CheckpointMismatch, load_checkpoint, save_checkpoint
from ophora.training.config import load_config
from ophora.training.data import ClipStream, detect_kind
from ophora.training.models import load_parts, make_tiny_model, model_signature
from ophora.training.objective import diffusion_loss, encode_text, encode_video
from tests.fixtures.shards import write_clip_shards


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"), seed=1)


def _trainable(source: Path):
    from diffusers.optimization import get_scheduler

    model = load_parts(str(source), need_vae=False, need_text=False).transformer
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=1e-3)
    sched = get_scheduler("cosine_with_restarts", opt, num_warmup_steps=2, num_training_steps=10, num_cycles=1)
    return model, opt, sched


def _save(path, model, opt, sched, *, step, signature, positions=None, history=None) -> None:
    """Rank 0's checkpoint of a run without EMA."""
    save_checkpoint(
        path,
        rank=0,
        model=model,
        optimizer=opt,
        lr_scheduler=sched,
        ema=None,
        step=step,
        signature=signature,
        positions=positions if positions is not None else {},
        history=history if history is not None else [],
        extra={},
    )


def _load(path, model, opt, sched, *, signature) -> dict:
    return load_checkpoint(path, rank=0, model=model, optimizer=opt, lr_scheduler=sched, ema=None, signature=signature)


def test_checkpoint_round_trips_weights_optimizer_schedule_rng_and_data_position(tiny, tmp_path):
    model, opt, sched = _trainable(tiny)
    model(
        hidden_states=torch.randn(1, 3, 4, 8, 12),
        encoder_hidden_states=torch.randn(1, 226, 32),
        timestep=torch.tensor([10]),
        return_dict=False,
    )[0].pow(2).mean().backward()
    opt.step(), sched.step()
    sig = model_signature(model)
    _save(tmp_path, model, opt, sched, step=7, signature=sig, positions={0: (1, 5)}, history=[1.0, 0.5])
    expected_draw = (torch.rand(3), random.random())

    fresh, fresh_opt, fresh_sched = _trainable(tiny)
    state = _load(tmp_path, fresh, fresh_opt, fresh_sched, signature=sig)
    assert state["step"] == 7 and state["positions"] == {0: (1, 5)} and state["loss_history"] == [1.0, 0.5]
    assert torch.equal(fresh.proj_out.weight, model.proj_out.weight)
    assert fresh_sched.get_last_lr() == sched.get_last_lr()
    assert torch.equal(fresh_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(torch.rand(3), expected_draw[0]) and random.random() == expected_draw[1]


def test_checkpoint_from_another_model_shape_is_refused_by_name(tiny, tmp_path):
    model, opt, sched = _trainable(tiny)
    _save(tmp_path, model, opt, sched, step=1, signature={**model_signature(model), "num_layers": 30})
    with pytest.raises(CheckpointMismatch, match=str(tmp_path)):
        _load(tmp_path, model, opt, sched, signature=model_signature(model))


def test_objective_is_finite_and_backpropagates_through_vae_latents(tiny):
    parts = load_parts(str(tiny))
    pixels = torch.rand(2, 3, 9, 64, 96) * 2 - 1
    latents = encode_video(parts.vae, pixels)
    assert latents.shape == (2, 3, 4, 8, 12)  # [B, F', C, h, w]: time /4 (+1), space /8
    embeds = encode_text(parts.tokenizer, parts.text_encoder, ["Inject viscoelastic.", ""], 226)
    loss = diffusion_loss(parts.transformer, parts.transformer.config, parts.scheduler, latents, embeds)
    loss.backward()
    assert torch.isfinite(loss) and parts.transformer.proj_out.weight.grad.abs().sum() > 0


def test_precomputed_latent_shards_feed_the_same_stream(tiny, tmp_path):
    from ophora.training.precompute import LatentEncoder

    write_clip_shards(tmp_path / "raw", {"tpt": 3}, per_shard=2)
    encoder = LatentEncoder(
        str(tiny), str(tmp_path / "latents"), num_frames=9, height=64, width=96, max_text_tokens=226
    )
    shards = list_shards(str(tmp_path / "raw"), "tpt")
    rows = encoder({"shard": shards, "subset": ["tpt"] * len(shards)})
    assert rows["samples"] == [2, 1] and rows["bad"] == [0, 0]
    out = list_shards(str(tmp_path / "latents"), "tpt")
    assert detect_kind(out) == "latents"
    cfg = load_config("tiny")
    batch = next(itertools.islice(iter(ClipStream(out, cfg.data, 2, 0, 0, 1, "latents")), 1))
    assert batch["latents"].shape == (2, 3, 4, 8, 12) and batch["prompt_embeds"].shape == (2, 226, 32)
