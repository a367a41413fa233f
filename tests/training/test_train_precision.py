"""Mixed precision and gradient checkpointing on the tiny CogVideoX, on CPU, through the loop's own pieces
(Precision, make_optimizer, diffusion_loss): bf16 autocast with gradient checkpointing tracks fp32 and learns;
fp16 scales its loss so gradients do not underflow, and is refused where ranks could disagree."""

from __future__ import annotations

import pytest
import torch

from ophora.training.config import load_config
from ophora.training.loop import make_optimizer
from ophora.training.models import load_parts, make_tiny_model
from ophora.training.objective import diffusion_loss, encode_text, encode_video
from ophora.training.precision import Precision

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_batch(tmp_path_factory):
    """The tiny model's folder and one fixed batch of latents and instruction embeddings."""
    model = make_tiny_model(tmp_path_factory.mktemp("tiny-precision"), seed=0)
    parts = load_parts(str(model))
    torch.manual_seed(0)
    pixels = torch.rand(2, 3, 9, 64, 96) * 2 - 1
    latents = encode_video(parts.vae, pixels).float()
    embeds = encode_text(
        parts.tokenizer, parts.text_encoder, ["Make a clear corneal incision.", "Polish the posterior capsule."], 226
    ).float()
    return str(model), latents, embeds


def train_steps(model_dir: str, latents, embeds, mode: str, checkpointing: bool, steps: int) -> list[float]:
    """``steps`` optimizer steps on one batch, every step with the same noise and timesteps (seed 0), so the
    losses of two precisions are comparable step by step and fall as the batch is learnt."""
    cfg = load_config("tiny", {"model": model_dir, "mixed_precision": mode, "optim.lr": 2e-3})
    parts = load_parts(model_dir, need_vae=False, need_text=False)
    transformer = parts.transformer.train()
    if checkpointing:
        transformer.enable_gradient_checkpointing()
    precision = Precision(mode, CPU)
    params = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg, CPU)
    losses = []
    for _ in range(steps):
        torch.manual_seed(0)
        loss = diffusion_loss(transformer, transformer.config, parts.scheduler, latents, embeds, precision.dtype)
        precision.backward(loss)
        precision.step(optimizer, params, cfg.optim.max_grad_norm)
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses


def test_bf16_with_gradient_checkpointing_tracks_fp32_and_learns(tiny_batch):
    model_dir, latents, embeds = tiny_batch
    fp32 = train_steps(model_dir, latents, embeds, "no", checkpointing=False, steps=8)
    bf16 = train_steps(model_dir, latents, embeds, "bf16", checkpointing=True, steps=8)
    assert all(torch.isfinite(torch.tensor(bf16)))
    assert bf16[:3] == pytest.approx(fp32[:3], rel=0.03)  # same weights, same noise: bf16 rounding only
    assert bf16[-1] < 0.8 * bf16[0] and fp32[-1] < 0.8 * fp32[0]


def test_gradient_checkpointing_gives_the_same_gradients(tiny_batch):
    model_dir, latents, embeds = tiny_batch
    grads = []
    for checkpointing in (False, True):
        transformer = load_parts(model_dir, need_vae=False, need_text=False).transformer.train()
        if checkpointing:
            transformer.enable_gradient_checkpointing()
        scheduler = load_parts(model_dir, need_vae=False, need_text=False).scheduler
        torch.manual_seed(0)
        diffusion_loss(transformer, transformer.config, scheduler, latents, embeds).backward()
        grads.append(transformer.proj_out.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_fp16_scales_the_loss_so_small_gradients_survive(tiny_batch):
    model_dir, latents, embeds = tiny_batch
    losses = train_steps(model_dir, latents, embeds, "fp16", checkpointing=True, steps=4)
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    # fp16 activations: a gradient of 1e-8 reaching them underflows to zero unless the loss was scaled first
    x = torch.full((4,), 1e-3, dtype=torch.float16)
    loss_of = lambda w: (w.half() * x).float().sum() * 1e-5  # noqa: E731
    plain, scaled = torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.ones(4))
    loss_of(plain).backward()
    precision = Precision("fp16", CPU)
    precision.backward(loss_of(scaled))
    precision.scaler.unscale_(torch.optim.SGD([scaled], lr=1.0))
    assert torch.count_nonzero(plain.grad) == 0
    assert torch.allclose(scaled.grad, torch.full((4,), 1e-8), rtol=0.01)
    state = precision.state_dict()
    restored = Precision("fp16", CPU)
    restored.load_state_dict(state)
    assert restored.scaler.get_scale() == precision.scaler.get_scale() == 2.0**16


def test_fp16_skips_a_step_whose_gradients_overflow():
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    precision = Precision("fp16", CPU)
    precision.backward((weight * torch.tensor([1.0, float("inf"), 1.0])).sum())
    norm, skipped = precision.step(optimizer, [weight], 1.0)
    assert skipped and torch.equal(weight.detach(), torch.ones(3))  # the step was not applied
    assert precision.scaler.get_scale() == 2.0**15  # and the scale backed off


def test_fp16_with_fsdp2_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="fp16 with parallel fsdp2 is refused"):
        load_config("tiny", {"mixed_precision": "fp16", "parallel": "fsdp2"})
