"""Load a CogVideoX text-to-video pipeline with the paper's sampling settings and render one video.

The defaults are the paper's: the DPM scheduler with trailing timestep spacing, guidance 6 with dynamic CFG,
50 steps, 49 frames at 480x720, 8 fps. Everything else (dtype, VAE slicing/tiling, CPU offload, compile) only
changes speed and memory, never which video a seed gives on a given machine.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ophora.clip_geometry import COGVIDEOX, ClipGeometry, model_fit_problem
from ophora.training.export import LORA_DIR

log = logging.getLogger(__name__)

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"


class GeometryError(ValueError):
    """The requested frames/height/width do not fit the model's VAE and patch sizes."""


@dataclass
class SamplingSettings:
    """How each video is rendered. ``max_sequence_length`` is the text-encoder token budget (226 for CogVideoX);
    ``cpu_offload`` is ``none``, ``model`` or ``sequential`` (needs an accelerator); ``dtype`` ``auto`` means
    bf16 on a GPU and fp32 on CPU."""

    steps: int = 50
    frames: int = COGVIDEOX.num_frames
    height: int = COGVIDEOX.height
    width: int = COGVIDEOX.width
    fps: float = COGVIDEOX.fps
    guidance: float = 6.0
    dynamic_cfg: bool = True
    scheduler: str = "dpm"
    max_sequence_length: int = 226
    dtype: str = "auto"
    device: str = "auto"
    vae_slicing: bool = True
    vae_tiling: bool = False
    cpu_offload: str = "none"
    compile: bool = False
    lora_scale: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    from ophora.training.precision import torch_dtype

    if dtype not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"dtype must be auto, fp32, bf16 or fp16, got {dtype!r}")
    return torch_dtype(dtype)


def _dtype_kwarg(dtype) -> dict[str, Any]:
    """``from_pretrained``'s dtype argument: newer diffusers renamed ``torch_dtype`` to ``dtype``."""
    from diffusers.utils import deprecation_utils

    renamed = hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE")
    return {"dtype": dtype} if renamed else {"torch_dtype": dtype}


def lora_weights_dir(lora: str | Path) -> Path:
    """The folder holding ``pytorch_lora_weights.safetensors``: ``lora`` itself or its ``lora/`` subfolder (an
    ophora LoRA export)."""
    base = Path(lora)
    for candidate in (base, base / LORA_DIR):
        if (candidate / LORA_WEIGHTS).is_file():
            return candidate
    raise FileNotFoundError(f"{lora}: no {LORA_WEIGHTS} here or in {LORA_DIR}/")


def make_scheduler(config: Any, name: str):
    """The sampling scheduler built from the model's own scheduler config; ``dpm`` (the paper's) or ``ddim``,
    both with trailing timestep spacing."""
    from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler

    classes = {"dpm": CogVideoXDPMScheduler, "ddim": CogVideoXDDIMScheduler}
    if name not in classes:
        raise ValueError(f"scheduler must be one of {sorted(classes)}, got {name!r}")
    return classes[name].from_config(config, timestep_spacing="trailing")


def load_pipeline(model: str | Path, settings: SamplingSettings, lora: str | Path | None = None):
    """A ready ``CogVideoXPipeline`` from a diffusers folder or hub id (``HF_HUB_OFFLINE=1`` works with a
    folder), with the sampling scheduler, an optional LoRA fused in at ``settings.lora_scale``, and the memory
    options applied."""
    import torch
    from diffusers import CogVideoXPipeline

    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    pipe = CogVideoXPipeline.from_pretrained(str(model), **_dtype_kwarg(dtype))
    pipe.scheduler = make_scheduler(pipe.scheduler.config, settings.scheduler)
    if lora is not None:
        pipe.load_lora_weights(str(lora_weights_dir(lora)), weight_name=LORA_WEIGHTS, adapter_name="ophora")
        pipe.fuse_lora(components=["transformer"], lora_scale=settings.lora_scale)
        pipe.unload_lora_weights()
    if settings.vae_slicing:
        pipe.vae.enable_slicing()
    if settings.vae_tiling:
        pipe.vae.enable_tiling()
    if settings.cpu_offload != "none" and device == "cpu":
        log.warning("cpu_offload=%s ignored: there is no accelerator to offload from", settings.cpu_offload)
    elif settings.cpu_offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif settings.cpu_offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif settings.cpu_offload == "none":
        pipe.to(device)
    else:
        raise ValueError(f"cpu_offload must be none, model or sequential, got {settings.cpu_offload!r}")
    if settings.compile:
        pipe.transformer = torch.compile(pipe.transformer)
    pipe.set_progress_bar_config(disable=True)
    check_geometry(pipe, settings)
    return pipe


def check_geometry(pipe, settings: SamplingSettings) -> None:
    """Refuse sizes the model cannot make: frames must be 4k+1 (the VAE's temporal compression), sides
    multiples of the VAE's spatial compression times the transformer's patch size."""
    geometry = ClipGeometry(settings.frames, settings.fps, settings.height, settings.width)
    problem = model_fit_problem(
        geometry,
        int(pipe.vae_scale_factor_temporal),
        int(pipe.vae_scale_factor_spatial),
        int(pipe.transformer.config.patch_size),
    )
    if problem:
        raise GeometryError(problem)


def text_token_limit(pipe_or_tokenizer: Any, max_sequence_length: int) -> int:
    """How many tokens of a prompt the text encoder sees: the smaller of the tokenizer's limit and the
    pipeline's ``max_sequence_length``."""
    tokenizer = getattr(pipe_or_tokenizer, "tokenizer", pipe_or_tokenizer)
    limit = getattr(tokenizer, "model_max_length", None) or max_sequence_length
    return int(min(limit, max_sequence_length))


def load_tokenizer(model: str | Path):
    """Only the tokenizer of a CogVideoX folder or hub id: enough to check prompts before loading the model."""
    from transformers import T5Tokenizer

    return T5Tokenizer.from_pretrained(str(model), subfolder="tokenizer")


def render(pipe, text: str, seed: int, settings: SamplingSettings) -> np.ndarray:
    """One video for ``text`` as uint8 RGB ``(frames, height, width, 3)``. The initial noise comes from a CPU
    generator seeded with ``seed``, so the same seed gives the same noise on every device."""
    import torch

    from ophora.inference.video_io import to_uint8

    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.inference_mode():
        out = pipe(
            prompt=text,
            num_videos_per_prompt=1,
            num_inference_steps=settings.steps,
            num_frames=settings.frames,
            height=settings.height,
            width=settings.width,
            guidance_scale=settings.guidance,
            use_dynamic_cfg=settings.dynamic_cfg,
            generator=generator,
            output_type="np",
            max_sequence_length=settings.max_sequence_length,
        )
    return to_uint8(np.asarray(out.frames[0]))
