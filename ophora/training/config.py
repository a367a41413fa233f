"""The train job's configuration: one pydantic model, loaded from YAML (training/configs/*.yaml) plus overrides.

Config is data: the loop, the trainer and the CLI read these fields and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ophora.config import build, merge, read_mapping

CONFIG_DIR = Path(__file__).with_name("configs")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """How shards become batches. The clip geometry (frames, fps, size) comes from the shards' ClipMeta; a value
    set here is a check: a run whose shards hold other clips stops before training with the two geometries."""

    num_frames: int | None = Field(None, gt=0, description="frames per clip (None: the shards'); 4k+1 for CogVideoX")
    height: int | None = Field(
        None, gt=0, description="clip height (None: the shards'); a multiple of 16 (VAE 8x, then 2x2 patches)"
    )
    width: int | None = Field(None, gt=0, description="clip width (None: the shards'); a multiple of 16")
    fps: float | None = Field(None, gt=0, description="clip frame rate (None: the shards')")
    resize_clips: bool = Field(
        False,
        description="cover-crop clips of another size to height x width (shards "
        "curated with clip.keep_native) instead of refusing them",
    )
    kind: Literal["auto", "raw", "latents"] = Field("auto", description="raw mp4 shards or precomputed latents")
    shuffle_buffer: int = Field(64, ge=1, description="samples held per reader for shuffling")
    loader_workers: int = Field(
        0,
        ge=0,
        description="torch DataLoader worker processes per Ray Train worker "
        "(0: one background thread decodes ahead of the step)",
    )
    max_text_tokens: int = Field(226, ge=1, description="T5 sequence length (CogVideoX uses 226)")
    caption_dropout: float = Field(0.0, ge=0, le=1, description="probability an instruction is replaced by ''")
    max_bad_fraction: float = Field(0.2, ge=0, le=1, description="fail when more samples than this are bad")
    max_member_mb: int = Field(256, gt=0, description="a shard member larger than this is refused unread")
    max_pixels: int = Field(3840 * 2160, gt=0, description="a clip with larger frames is skipped undecoded")

    @model_validator(mode="after")
    def _geometry(self) -> DataConfig:
        if self.num_frames is not None and (self.num_frames - 1) % 4:
            raise ValueError(f"num_frames={self.num_frames} must be 4k+1 (CogVideoX's VAE compresses time by 4)")
        for side, value in (("height", self.height), ("width", self.width)):
            if value is not None and value % 16:  # 0 and below are refused by the field itself
                raise ValueError(f"{side}={value}: height and width must be multiples of 16 (VAE 8x, then 2x2 patches)")
        if self.resize_clips and (self.height is None or self.width is None):
            raise ValueError("resize_clips needs data.height and data.width (the size clips are cropped to)")
        return self


class OptimConfig(_Strict):
    """AdamW and its learning-rate schedule (the paper's settings are the defaults)."""

    lr: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = Field(1e-3, ge=0)
    eps: float = Field(1e-8, gt=0)
    max_grad_norm: float = Field(1.0, gt=0)
    lr_scheduler: str = Field("cosine_with_restarts", description="a diffusers.optimization.get_scheduler name")
    lr_num_cycles: int = Field(1, ge=1)
    warmup_steps: int = Field(800, ge=0)

    @model_validator(mode="after")
    def _betas(self) -> OptimConfig:
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas {list(self.betas)} must each be in [0, 1) (AdamW's moment decay rates)")
        return self


class LoraConfig(_Strict):
    """LoRA through peft; ``rank == 0`` means a full fine-tune of the transformer."""

    rank: int = Field(0, ge=0)
    alpha: float = Field(64.0, gt=0)
    target_modules: list[str] = Field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])


class ScalingConfig(_Strict):
    """Ray Train workers and what each asks for."""

    num_workers: int = Field(2, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(1.0, ge=0)
    backend: Literal["gloo", "nccl", "auto"] = "auto"
    check_resources: bool = Field(True, description="fail fast when the cluster is too small (off for autoscaling)")


class ValidationConfig(_Strict):
    """Videos rank 0 renders during training with the current (EMA when on) weights: fixed prompts, fixed seeds."""

    every: int = Field(0, ge=0, description="steps between validation renders (0: off)")
    prompts: str = Field("cataract-phases", description="a prompt file or a bundled set (the 12 cataract phases)")
    max_prompts: int | None = Field(None, ge=1, description="render only the first N prompts (None: all)")
    seed: int = Field(0, description="prompt i renders with seed + i, the same at every validation")
    steps: int = Field(50, ge=1, description="denoising steps")
    guidance: float = Field(6.0, ge=0, description="classifier-free guidance scale")
    scheduler: Literal["dpm", "ddim"] = "dpm"
    clip_model: str | None = Field("ViT-B-32", description="open_clip architecture for CLIPScore (None: skip)")
    clip_pretrained: str | None = Field(None, description="CLIP weights file (None: random, plumbing only)")


class TrainConfig(_Strict):
    """Everything one training stage needs. ``global_batch = batch_size * grad_accum * num_workers``."""

    model: str = Field(..., description="diffusers-layout folder or hub id of CogVideoX")
    max_steps: int = Field(..., ge=1, description="optimizer steps")
    batch_size: int = Field(1, ge=1, description="clips per worker per micro-step")
    grad_accum: int = Field(1, ge=1)
    mixed_precision: Literal["no", "bf16", "fp16"] = "bf16"
    gradient_checkpointing: bool = True
    parallel: Literal["ddp", "fsdp2"] = "ddp"
    ema_decay: float | None = Field(None, gt=0, lt=1, description="keep an EMA of the trainable weights (e.g. 0.999)")
    seed: int = 42
    checkpoint_every: int = Field(500, ge=1, description="steps between checkpoints")
    checkpoints_to_keep: int = Field(3, ge=1)
    max_failures: int = Field(3, ge=-1, description="Ray Train worker-group restarts; -1 = unlimited")
    log_every: int = Field(10, ge=1)
    storage_path: str | None = Field(None, description="Ray Train storage (local dir or s3://); default out_dir")
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)

    @model_validator(mode="after")
    def _precision(self) -> TrainConfig:
        if self.mixed_precision == "fp16" and self.parallel == "fsdp2":
            raise ValueError(
                "mixed_precision fp16 with parallel fsdp2 is refused: the loss scaler would skip "
                "steps on some ranks and not others (each sees only its shard of the gradients); "
                "use bf16, or ddp"
            )
        return self

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.grad_accum * self.scaling.num_workers


def absolute_location(location: str) -> str:
    """Workers run in another directory: local paths that exist become absolute; URLs and hub ids stay."""
    p = Path(location).expanduser()
    return str(p.resolve()) if "://" not in location and p.exists() else location


def _config_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    path = Path(name_or_path)
    if relative_to is not None and not path.is_absolute() and (relative_to / path).exists():
        path = relative_to / path
    if not path.suffix and not path.exists():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"train config {name_or_path!r} not found (bundled: tpt, p2ft, tiny)")
    return path


def _read_yaml(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file with its ``inherit:`` parent merged under it (a bundled name or a path next to it)."""
    if path.resolve() in chain:
        raise ValueError(f"train config {path} inherits from itself ({' -> '.join(map(str, chain))})")
    raw = read_mapping(path, "train config")
    parent = raw.pop("inherit", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ValueError(f"{path}: inherit must name one config (a bundled name or a path), not {parent!r}")
    base = _read_yaml(_config_path(parent, path.parent), (*chain, path.resolve()))
    return merge(base, raw)


def load_config(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A TrainConfig from a bundled name ('tpt', 'p2ft', 'tiny') or a YAML path, with dotted-key overrides.
    A file may start from another with ``inherit: NAME`` and state only what differs."""
    raw = _read_yaml(_config_path(name_or_path))
    return build(TrainConfig, raw, overrides=overrides)
