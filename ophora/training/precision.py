"""Mixed precision for the training step: autocast for the forward pass, fp32 trainable (master) weights, and
for fp16 a loss scaler, so small gradients do not underflow to zero.

bf16 has fp32's exponent range and needs no scaler; fp16 has 5 exponent bits and gradients below ~6e-8 vanish
without one. The scaler multiplies the loss before backward, unscales before clipping, and skips the step (and
halves its scale) when any gradient is inf/NaN. fp16 with FSDP2 is refused in TrainConfig: ranks would disagree
about skipping.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

import torch

# the one table of dtype names (weights: "fp32"; TrainConfig.mixed_precision: "no", "bf16", "fp16")
TORCH_DTYPES = {"fp32": torch.float32, "no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPES = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # autocast dtype of a mixed-precision mode


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype a name stands for (fp32, bf16, fp16; "no" is fp32); ValueError for any other name."""
    if name not in TORCH_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(TORCH_DTYPES)}, got {name!r}")
    return TORCH_DTYPES[name]


@dataclass
class Precision:
    """How one worker runs its forward and backward passes; ``mode`` is TrainConfig.mixed_precision."""

    mode: str
    device: torch.device
    scaler: Any = field(default=None, repr=False)

    def __post_init__(self):
        if self.mode not in DTYPES:
            raise ValueError(f"mixed_precision must be one of {sorted(DTYPES)}, got {self.mode!r}")
        if self.mode == "fp16" and self.scaler is None:
            self.scaler = torch.amp.GradScaler(self.device.type)

    @property
    def dtype(self) -> torch.dtype | None:
        return DTYPES[self.mode]

    def autocast(self):
        """The forward pass's autocast context (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer, params: list[torch.Tensor], max_grad_norm: float) -> tuple[float, bool]:
        """Clip and apply the accumulated gradients; returns (grad norm before clipping, whether the step was
        skipped because a gradient overflowed)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
        if self.scaler is None:
            optimizer.step()
            return norm, False
        scale = self.scaler.get_scale()
        self.scaler.step(optimizer)  # skips optimizer.step() when the unscaled grads hold inf/NaN
        self.scaler.update()
        return norm, not math.isfinite(norm) or self.scaler.get_scale() < scale

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
