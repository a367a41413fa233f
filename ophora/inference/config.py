"""The sample and evaluate jobs' configuration: one pydantic model each, loaded like every Ophora config
(:func:`ophora.config.load`): defaults <- ``--config FILE`` <- command-line flags <- ``--set key=value``.
``ophora sample --print-config`` / ``ophora evaluate --print-config`` show the effective result."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ophora.clip_geometry import COGVIDEOX


class SampleConfig(BaseModel):
    """How ``ophora sample`` renders videos (field names are :func:`ophora.inference.sample.sample_videos`'s)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("", description="diffusers CogVideoX folder (or hub id when online)")
    lora: str | None = Field(None, description="LoRA folder (or an ophora LoRA export)")
    lora_scale: float = Field(1.0, description="strength of the LoRA")
    seed: int = Field(0, description="base seed; video j of prompt i gets seed + i*N + j")
    num_videos_per_prompt: int = Field(1, ge=1, description="videos per prompt (N)")
    steps: int = Field(50, ge=1, description="denoising steps")
    frames: int = Field(COGVIDEOX.num_frames, ge=1, description="frames per video (4k+1)")
    height: int = Field(COGVIDEOX.height, ge=16, description="video height in pixels")
    width: int = Field(COGVIDEOX.width, ge=16, description="video width in pixels")
    fps: float = Field(COGVIDEOX.fps, gt=0, description="frame rate of the written mp4")
    guidance: float = Field(6.0, description="classifier-free guidance scale")
    dynamic_cfg: bool = Field(True, description="dynamic classifier-free guidance schedule")
    scheduler: Literal["dpm", "ddim"] = Field("dpm", description="dpm (the paper's) or ddim; trailing spacing")
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="auto: bf16 on GPU, fp32 on CPU")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    vae_slicing: bool = Field(True, description="decode one video at a time")
    vae_tiling: bool = Field(False, description="decode in spatial tiles (less memory)")
    cpu_offload: Literal["none", "model", "sequential"] = Field("none", description="offload to CPU (needs a GPU)")
    compile: bool = Field(False, description="torch.compile the transformer")
    max_sequence_length: int = Field(226, ge=1, description="text-encoder token budget")
    use_ray: bool = Field(False, description="spread videos over a Ray actor pool (one actor per GPU)")
    num_workers: int | None = Field(None, ge=1, description="actors with use_ray (default: the GPUs)")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs per actor with use_ray")
    gallery: bool = Field(True, description="write the HTML gallery")
    id_column: str = Field("id", description="CSV/JSONL field with the prompt id")
    prompt_column: str = Field("prompt", description="CSV/JSONL field with the text")
    phase_column: str = Field("phase", description="CSV/JSONL field with the phase")

    def run_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``sample_videos`` (everything but the model and the prompt file's columns)."""
        return self.model_dump(exclude={"model", "id_column", "prompt_column", "phase_column"})


class EvaluateConfig(BaseModel):
    """How ``ophora evaluate`` scores videos (field names are :func:`ophora.inference.evaluate.evaluate`'s)."""

    model_config = ConfigDict(extra="forbid")

    subset: str | None = Field(None, description="reference subset (default tpt)")
    max_reference: int | None = Field(None, ge=2, description="reference clips to use")
    fid_net: str | None = Field(
        "random-inception", description="TorchScript / inception_v3 state dict path, random-inception, or none"
    )
    fvd_net: str | None = Field("random-i3d", description="TorchScript I3D / s3d state dict path, random-i3d, or none")
    fid_size: int | None = Field(None, description="FID input side (default 299)")
    fvd_size: int | None = Field(None, description="FVD input side (default 224)")
    fid_range: str | None = Field(None, description="imagenet, 0-1, -1-1 or 0-255")
    fvd_range: str | None = Field(None, description="imagenet, 0-1, -1-1 or 0-255")
    fid_call_kwargs: dict[str, Any] | None = Field(None, description="keyword arguments for the FID net's call")
    fvd_call_kwargs: dict[str, Any] | None = Field(None, description="keyword arguments for the FVD net's call")
    clip_model: str | None = Field("ViT-B-32", description="open_clip architecture, or none")
    clip_pretrained: str | None = Field(None, description="CLIP weights file (default: random init, seeded)")
    frames_per_video: int = Field(8, ge=1, description="frames per video for FID and CLIPScore")
    fvd_frames: int = Field(16, ge=1, description="frames per clip for FVD")
    seed: int = Field(0, description="seed of randomly initialised networks")
    device: str = Field("cpu", description="cpu or cuda")
    audit_k: int = Field(5, ge=0, description="memorisation audit: nearest training clips per video (0: no audit)")
    audit_threshold: float | None = Field(
        None, description="flag frames at most this feature distance from a training frame (default: calibrated)"
    )

    def run_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``evaluate`` ("none" switches a network off; audit_k 0 is no audit)."""
        out = self.model_dump()
        for key in ("fid_net", "fvd_net", "clip_model"):
            if out[key] in ("", "none"):
                out[key] = None
        out["audit_k"] = out["audit_k"] or None
        return out
