"""The miniature CogVideoX's VAE: the real AutoencoderKLCogVideoX code, with weights set so it passes pictures
through instead of being random. A random VAE decodes every latent to noise, so no transformer trained on top of
it could ever draw anything like its data; this one encodes a clip to its 8x8-block colour averages (time
averaged as CogVideoX's VAE does) and decodes them back, smoothed, so a tiny model's samples show what it learnt.

How the weights do it (12 channels, 3 groups of 4 per colour c): every block carries [c, -c, K, -K]. The resnets
add zero (their last conv is zero), downsamplers average 2x2, upsamplers blur. GroupNorm over a group [c, -c, K,
-K] has mean 0 and a standard deviation of ~K/sqrt(2) (K = 50 dwarfs the picture), so it only rescales; and
SiLU(x) - SiLU(-x) = x undoes the activation exactly, so conv_out reads the colour back as a difference.
"""

from __future__ import annotations

import math

import torch

CHANNELS = 12  # 3 colours x [c, -c, K, -K]
GROUPS = 3
CARRIER = 50.0  # K: large against pixel values in [-1, 1], so every group's spread is K / sqrt(2)
LOGVAR = -30.0  # the posterior is a point: sampling it returns its mean


def tiny_vae_config(latent_channels: int, height: int, width: int, scaling_factor: float) -> dict:
    """AutoencoderKLCogVideoX arguments for the pass-through VAE (8x spatial, 4x temporal compression)."""
    return dict(
        block_out_channels=(CHANNELS,) * 4,
        latent_channels=latent_channels,
        layers_per_block=1,
        norm_num_groups=GROUPS,
        temporal_compression_ratio=4,
        sample_height=height,
        sample_width=width,
        scaling_factor=scaling_factor,
    )


@torch.no_grad()
def make_pass_through(vae) -> None:
    """Set ``vae``'s weights (built from :func:`tiny_vae_config`) so that decode(encode(clip)) ~ a smoothed clip."""
    if vae.config.latent_channels < 3 or tuple(vae.config.block_out_channels) != (CHANNELS,) * 4:
        raise ValueError("the pass-through VAE needs tiny_vae_config's channels and at least 3 latent channels")
    for module in vae.modules():  # resnets add nothing: their last convolution is zero
        if hasattr(module, "conv2") and hasattr(module, "norm1"):
            module.conv2.conv.weight.zero_()
            module.conv2.conv.bias.zero_()
    enc, dec = vae.encoder, vae.decoder
    _carry_in(enc.conv_in.conv, sources=3)
    _carry_in(dec.conv_in.conv, sources=3)
    for block in enc.down_blocks:
        for down in block.downsamplers or []:
            _per_channel(down.conv, torch.tensor([[0.25, 0.25, 0.0], [0.25, 0.25, 0.0], [0.0, 0.0, 0.0]]))
    blur = torch.tensor([1.0, 2.0, 1.0])
    for block in dec.up_blocks:
        for up in block.upsamplers or []:
            _per_channel(up.conv, torch.outer(blur, blur) / 16)
    norm = dec.norm_out  # SpatialNorm3D: keep GroupNorm(f) as it is (multiplier 1, offset 0)
    norm.conv_y.conv.weight.zero_()
    norm.conv_y.conv.bias.fill_(1.0)
    norm.conv_b.conv.weight.zero_()
    norm.conv_b.conv.bias.zero_()
    spread = CARRIER / math.sqrt(2)
    _read_out(enc.conv_out.conv, spread, logvar_from=vae.config.latent_channels)
    _read_out(dec.conv_out.conv, spread)
    gain = _round_trip_gain(vae)  # the blur's zero padding thins the carrier at the borders a little
    dec.conv_out.conv.weight.div_(gain)


def _carry_in(conv, sources: int) -> None:
    """Input channel k -> [k, -k, +K, -K] at the current frame's centre tap (the causal kernel's last)."""
    conv.weight.zero_()
    conv.bias.zero_()
    t, h, w = (s - 1 for s in conv.weight.shape[2:])
    for k in range(sources):
        conv.weight[4 * k, k, t, h // 2, w // 2] = 1.0
        conv.weight[4 * k + 1, k, t, h // 2, w // 2] = -1.0
        conv.bias[4 * k + 2], conv.bias[4 * k + 3] = CARRIER, -CARRIER


def _per_channel(conv, kernel: torch.Tensor) -> None:
    conv.weight.zero_()
    conv.bias.zero_()
    for c in range(conv.weight.shape[0]):
        conv.weight[c, c] = kernel


def _read_out(conv, spread: float, logvar_from: int | None = None) -> None:
    """Output channel k = spread * (SiLU(c/spread) - SiLU(-c/spread)) = c; log-variances (encoder) a constant."""
    conv.weight.zero_()
    conv.bias.zero_()
    t, h, w = (s - 1 for s in conv.weight.shape[2:])
    for k in range(3):
        conv.weight[k, 4 * k, t, h // 2, w // 2] = spread
        conv.weight[k, 4 * k + 1, t, h // 2, w // 2] = -spread
    if logvar_from is not None:
        conv.bias[logvar_from:] = LOGVAR


def _round_trip_gain(vae) -> float:
    """decode(encode(x)) / x at the centre of a uniform clip."""
    sample = torch.full((1, 3, 9, vae.config.sample_height, vae.config.sample_width), 0.5)
    out = vae.decode(vae.encode(sample).latent_dist.mode()).sample
    h, w = out.shape[-2:]
    return float(out[0, :, :, h // 2, w // 2].mean() / 0.5)
