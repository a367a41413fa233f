"""The CogVideoX training objective: encode a batch, noise it, predict v, weight the error by 1/(1-alpha_bar_t).

Plain functions of (model pieces, tensors); the loop calls them, the benchmark's bare loop calls them too.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def encode_video(vae, pixels: torch.Tensor) -> torch.Tensor:
    """Pixels [B, 3, F, H, W] in [-1, 1] -> scaled latents [B, F', C, h, w] (the transformer's layout)."""
    pixels = pixels.to(device=vae.device, dtype=vae.dtype)
    latents = vae.encode(pixels).latent_dist.sample() * vae.config.scaling_factor
    return latents.permute(0, 2, 1, 3, 4).contiguous()


@torch.no_grad()
def encode_text(tokenizer, text_encoder, texts: list[str], max_tokens: int) -> torch.Tensor:
    """Instructions -> T5 embeddings [B, max_tokens, D], padded to the length CogVideoX was trained with."""
    ids = tokenizer(
        texts,
        padding="max_length",
        max_length=max_tokens,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    ).input_ids
    return text_encoder(ids.to(text_encoder.device))[0]


def rotary_embeddings(config, latent_frames: int, latent_height: int, latent_width: int, device):
    """The 3D rotary position embeddings CogVideoX's pipeline builds, or None when the model does not use them."""
    if not config.use_rotary_positional_embeddings:
        return None
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    p, p_t = config.patch_size, config.patch_size_t
    grid_h, grid_w = latent_height // p, latent_width // p
    base_w, base_h = config.sample_width // p, config.sample_height // p
    if p_t is None:  # CogVideoX 1.0
        crops = get_resize_crop_region_for_grid((grid_h, grid_w), base_w, base_h)
        return get_3d_rotary_pos_embed(
            embed_dim=config.attention_head_dim,
            crops_coords=crops,
            grid_size=(grid_h, grid_w),
            temporal_size=latent_frames,
            device=device,
        )
    return get_3d_rotary_pos_embed(
        embed_dim=config.attention_head_dim,
        crops_coords=None,
        grid_size=(grid_h, grid_w),
        temporal_size=(latent_frames + p_t - 1) // p_t,
        grid_type="slice",
        max_size=(base_h, base_w),
        device=device,
    )


def diffusion_loss(
    model,
    config,
    scheduler,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """One v-prediction step: the x0 error implied by the predicted velocity, weighted by 1/(1-alpha_bar_t).

    ``model`` may be wrapped (DDP/FSDP); ``config`` is the bare transformer's config."""
    b, device = latents.shape[0], latents.device
    noise = torch.randn_like(latents)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (b,), device=device).long()
    noisy = scheduler.add_noise(latents, noise, timesteps)
    rotary = rotary_embeddings(config, latents.shape[1], latents.shape[3], latents.shape[4], device)
    with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        velocity = model(
            hidden_states=noisy,
            encoder_hidden_states=prompt_embeds,
            timestep=timesteps,
            image_rotary_emb=rotary,
            return_dict=False,
        )[0]
    predicted_x0 = scheduler.get_velocity(velocity.float(), noisy, timesteps)
    alpha_bar = scheduler.alphas_cumprod.to(device)[timesteps].float()
    weights = (1.0 / (1.0 - alpha_bar)).view(b, *([1] * (latents.dim() - 1)))
    return (weights * (predicted_x0 - latents) ** 2).reshape(b, -1).mean(dim=1).mean()
