"""The clip geometry facts, in one place: how many frames a clip has, at what rate, and how big they are.

Curation cuts clips at a geometry (its frame budget) and records it in every clip's ``ClipMeta``; training reads
it from the shards and checks that the model can take it; sampling renders at the model's geometry. The named
geometries below are the only place their numbers are written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ClipGeometry:
    """Frames per clip, frame rate and frame size of a set of clips."""

    num_frames: int
    fps: float
    height: int
    width: int

    def describe(self) -> str:
        return f"{self.num_frames} frames of {self.height}x{self.width} at {self.fps:g} fps"

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# The paper's clips (CogVideoX-2b's own training geometry): 49 frames of 480x720 at 8 fps, 6.125 s.
COGVIDEOX = ClipGeometry(num_frames=49, fps=8.0, height=480, width=720)
# The miniature CogVideoX of the tests and the demo: the smallest clip its VAE takes (4k+1 frames, sides / 16),
# at a rate that spans 6 s of surgery like the paper's clips, so the demo curates the same windows.
TINY = ClipGeometry(num_frames=9, fps=1.5, height=64, width=96)


def differing(found: Any, wanted: dict[str, Any]) -> list[str]:
    """The geometry fields for which ``wanted`` states a value (not None) other than ``found``'s (a ClipGeometry
    or a mapping such as a ClipMeta); raises KeyError/TypeError/ValueError when ``found`` lacks or garbles one."""
    get = found.get if isinstance(found, dict) else lambda k: getattr(found, k)
    return [k for k, v in wanted.items() if v is not None and abs(float(get(k)) - float(v)) > 1e-6]


def model_fit_problem(
    geometry: ClipGeometry,
    temporal_compression: int,
    spatial_compression: int,
    patch_size: int = 1,
    fixed_size: tuple[int, int] | None = None,
) -> str | None:
    """Why a model cannot take clips of ``geometry``, or None when it can.

    CogVideoX's VAE compresses time by ``temporal_compression`` (frames must be 4k+1 for 4) and space by
    ``spatial_compression``; the transformer cuts latents into ``patch_size`` squares; a model with learned
    position embeddings only takes its own ``fixed_size`` (height, width)."""
    if geometry.num_frames < 1 or (geometry.num_frames - 1) % temporal_compression:
        return f"{geometry.num_frames} frames: the model needs {temporal_compression}k+1 frames"
    step = spatial_compression * patch_size
    for side, value in (("height", geometry.height), ("width", geometry.width)):
        if value < step or value % step:
            return f"{side} {value}: the model needs a positive multiple of {step}"
    if fixed_size is not None and (geometry.height, geometry.width) != tuple(fixed_size):
        return (
            f"{geometry.height}x{geometry.width}: the model's learned position embeddings only take "
            f"{fixed_size[0]}x{fixed_size[1]}"
        )
    return None
