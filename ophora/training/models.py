"""CogVideoX components: load them from a diffusers-layout folder or hub id, or build a tiny random one.

The same code path serves CogVideoX-2b, CogVideoX-5b and the miniature model the tests and the demo use; only
the ``source`` differs. Nothing is loaded at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ophora.clip_geometry import TINY

TINY_CORPUS = Path(__file__).with_name("tiny_corpus.txt")


@dataclass
class CogVideoXParts:
    """The five pieces of a CogVideoX pipeline; the frozen ones may be None when a job does not need them."""

    transformer: Any
    scheduler: Any
    vae: Any = None
    text_encoder: Any = None
    tokenizer: Any = None


def _torch_dtype(name: str):
    from ophora.training.precision import torch_dtype

    return torch_dtype(name)


def load_transformer(source: str, dtype: str = "fp32"):
    """The denoising transformer from ``source`` (its ``transformer/`` subfolder), in ``dtype``."""
    from diffusers import CogVideoXTransformer3DModel

    return CogVideoXTransformer3DModel.from_pretrained(source, subfolder="transformer", torch_dtype=_torch_dtype(dtype))


def load_scheduler(source: str):
    """The training noise scheduler: CogVideoX's DDIM scheduler with the source's own config."""
    from diffusers import CogVideoXDDIMScheduler

    return CogVideoXDDIMScheduler.from_pretrained(source, subfolder="scheduler")


def load_vae(source: str, dtype: str = "fp32"):
    """The frozen 3D VAE (eval mode, no grads); slicing and tiling on so 49x480x720 clips fit one GPU."""
    from diffusers import AutoencoderKLCogVideoX

    vae = AutoencoderKLCogVideoX.from_pretrained(source, subfolder="vae", torch_dtype=_torch_dtype(dtype))
    vae.requires_grad_(False).eval()
    vae.enable_slicing()
    return vae


def load_text_encoder(source: str, dtype: str = "fp32"):
    """(tokenizer, frozen T5 encoder) from the source's ``tokenizer/`` and ``text_encoder/`` subfolders."""
    from transformers import T5EncoderModel, T5Tokenizer

    tokenizer = T5Tokenizer.from_pretrained(source, subfolder="tokenizer")
    encoder = T5EncoderModel.from_pretrained(source, subfolder="text_encoder", dtype=_torch_dtype(dtype))
    encoder.requires_grad_(False).eval()
    return tokenizer, encoder


def load_parts(
    source: str, frozen_dtype: str = "fp32", need_vae: bool = True, need_text: bool = True
) -> CogVideoXParts:
    """Everything a training worker needs; the transformer always loads in fp32 (trainable master weights)."""
    parts = CogVideoXParts(transformer=load_transformer(source, "fp32"), scheduler=load_scheduler(source))
    if need_vae:
        parts.vae = load_vae(source, frozen_dtype)
    if need_text:
        parts.tokenizer, parts.text_encoder = load_text_encoder(source, frozen_dtype)
    return parts


def model_signature(transformer) -> dict[str, Any]:
    """The config facts a checkpoint must match to be loadable into this transformer."""
    c = transformer.config
    keys = (
        "num_attention_heads",
        "attention_head_dim",
        "in_channels",
        "num_layers",
        "text_embed_dim",
        "patch_size",
        "use_rotary_positional_embeddings",
    )
    return {k: c.get(k) if hasattr(c, "get") else getattr(c, k) for k in keys}


# ---------------------------------------------------------------- the miniature model


def _train_tokenizer(work: Path, seed: int) -> Path:
    """A T5-style sentencepiece unigram model trained offline on the bundled surgical instructions and the
    cataract-phase prompts (fewer pieces per prompt: the tiny model learns faster from short text)."""
    import sentencepiece as spm

    from ophora.inference.prompts import read_prompts

    corpus = work / "corpus.txt"
    corpus.write_text(TINY_CORPUS.read_text() + "\n".join(p.text for p in read_prompts("cataract-phases")) + "\n")
    prefix = work / "spiece"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=300,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )  # one thread: deterministic
    return prefix.with_suffix(".model")


def make_tiny_model(out_dir: str | Path, seed: int = 0, rotary: bool = True) -> Path:
    """Build a miniature CogVideoX in diffusers layout under ``out_dir``: random transformer and T5, and a VAE
    that passes pictures through (tiny_vae.py), so what the transformer learns shows in its videos.

    It loads with ``CogVideoXPipeline.from_pretrained(out_dir)`` and works with 9-frame 64x96 clips. ``rotary``
    picks the 5b-style rotary position embeddings (True) or the 2b-style sinusoidal ones (False)."""
    import tempfile

    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    from ophora.training.tiny_vae import make_pass_through, tiny_vae_config

    out = Path(out_dir)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        spm_file = _train_tokenizer(Path(tmp), seed)
        tokenizer = T5Tokenizer.from_pretrained(tmp)  # converts spiece.model; adds T5's 100 sentinel tokens
        spm_bytes = spm_file.read_bytes()
    text_dim, latent_channels = 32, 4
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=text_dim,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            feed_forward_proj="gated-gelu",
            is_encoder_decoder=False,
        )
    )
    vae = AutoencoderKLCogVideoX(**tiny_vae_config(latent_channels, TINY.height, TINY.width, scaling_factor=2.0))
    make_pass_through(vae)  # pictures in, pictures out: a random VAE would decode anything to noise
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=4,
        attention_head_dim=16,
        in_channels=latent_channels,
        out_channels=latent_channels,
        time_embed_dim=64,
        text_embed_dim=text_dim,
        num_layers=2,
        sample_width=TINY.width // 8,
        sample_height=TINY.height // 8,
        sample_frames=TINY.num_frames,
        patch_size=2,
        temporal_compression_ratio=4,
        use_rotary_positional_embeddings=rotary,
    )
    scheduler = CogVideoXDDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=True,
        steps_offset=0,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
        snr_shift_scale=1.0,
    )
    pipe = CogVideoXPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    pipe.save_pretrained(out, safe_serialization=True)
    (out / "tokenizer" / "spiece.model").write_bytes(spm_bytes)  # for sentencepiece-backed (older) tokenizers
    return out
