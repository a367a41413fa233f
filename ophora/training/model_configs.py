"""CogVideoX-2b's component configs (as published with THUDM/CogVideoX-2b), so a dry run and the GPU benchmark can
build the real shapes with no download: the weights are the only thing they lack.
"""

from __future__ import annotations

from typing import Any

COGVIDEOX_2B_ID = "THUDM/CogVideoX-2b"

COGVIDEOX_2B: dict[str, dict[str, Any]] = {
    "transformer": {
        "num_attention_heads": 30,
        "attention_head_dim": 64,
        "in_channels": 16,
        "out_channels": 16,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "time_embed_dim": 512,
        "text_embed_dim": 4096,
        "num_layers": 30,
        "dropout": 0.0,
        "attention_bias": True,
        "sample_width": 90,
        "sample_height": 60,
        "sample_frames": 49,
        "patch_size": 2,
        "temporal_compression_ratio": 4,
        "max_text_seq_length": 226,
        "activation_fn": "gelu-approximate",
        "timestep_activation_fn": "silu",
        "norm_elementwise_affine": True,
        "norm_eps": 1e-5,
        "spatial_interpolation_scale": 1.875,
        "temporal_interpolation_scale": 1.0,
        "use_rotary_positional_embeddings": False,
        "use_learned_positional_embeddings": False,
    },
    "vae": {
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": [128, 256, 256, 512],
        "latent_channels": 16,
        "layers_per_block": 3,
        "act_fn": "silu",
        "norm_eps": 1e-6,
        "norm_num_groups": 32,
        "temporal_compression_ratio": 4,
        "sample_height": 480,
        "sample_width": 720,
        "scaling_factor": 1.15258426,
        "force_upcast": True,
        "use_quant_conv": False,
        "use_post_quant_conv": False,
    },
    "text_encoder": {  # T5 v1.1 XXL, encoder only
        "vocab_size": 32128,
        "d_model": 4096,
        "d_kv": 64,
        "d_ff": 10240,
        "num_layers": 24,
        "num_heads": 64,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "dropout_rate": 0.1,
        "layer_norm_epsilon": 1e-6,
        "feed_forward_proj": "gated-gelu",
        "is_encoder_decoder": False,
    },
    "scheduler": {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "clip_sample": False,
        "set_alpha_to_one": True,
        "steps_offset": 0,
        "prediction_type": "v_prediction",
        "rescale_betas_zero_snr": True,
        "timestep_spacing": "trailing",
        "snr_shift_scale": 3.0,
    },
}

KNOWN = {COGVIDEOX_2B_ID: COGVIDEOX_2B}


def component_config(source: str, component: str) -> dict[str, Any]:
    """A component's config: from the ``source`` folder, else the bundled config of a known model id (no
    network), else the hub; FileNotFoundError naming the source when none has it."""
    from pathlib import Path

    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel

    loaders = {"transformer": CogVideoXTransformer3DModel, "vae": AutoencoderKLCogVideoX}
    if source in KNOWN and not Path(source).is_dir():
        return dict(KNOWN[source][component])
    if component in loaders:
        try:
            return dict(loaders[component].load_config(source, subfolder=component))
        except (OSError, ValueError):
            pass
    if source in KNOWN:
        return dict(KNOWN[source][component])
    raise FileNotFoundError(f"no {component} config in {source} and it is not a bundled model id ({', '.join(KNOWN)})")
