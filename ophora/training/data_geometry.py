"""The clip geometry a training run uses: read from the shards (ClipMeta, or the latents' own shape), checked
against what the config states and what the model can take, before any worker starts.

A config that leaves ``data.num_frames/fps/height/width`` unset trains at the shards' geometry; one that states a
value different from the shards' is refused in one line naming both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ophora.clip_geometry import ClipGeometry, differing, model_fit_problem
from ophora.dataset.shards import ShardError, iter_samples
from ophora.training.data import DataError

FIELDS = ("num_frames", "fps", "height", "width")


class GeometryMismatch(DataError):
    """The shards' clips differ from the config's stated geometry, or the model cannot take them."""


@dataclass(frozen=True)
class ModelGeometry:
    """What a CogVideoX folder's configs say about the clips it takes (read without loading weights)."""

    temporal_compression: int
    spatial_compression: int
    patch_size: int
    latent_channels: int
    fixed_size: tuple[int, int] | None

    def problem(self, geometry: ClipGeometry) -> str | None:
        return model_fit_problem(
            geometry, self.temporal_compression, self.spatial_compression, self.patch_size, self.fixed_size
        )


def model_geometry(source: str) -> ModelGeometry:
    """The VAE's compression and the transformer's patch and position facts of ``source`` (folder or hub id)."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel

    try:
        t = CogVideoXTransformer3DModel.load_config(source, subfolder="transformer")
        v = AutoencoderKLCogVideoX.load_config(source, subfolder="vae")
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"cannot read the transformer and VAE configs of {source}: {e}") from e
    return geometry_of_configs(t, v)


def geometry_of_configs(transformer: dict[str, Any], vae: dict[str, Any]) -> ModelGeometry:
    spatial = 2 ** (len(vae.get("block_out_channels", (128, 256, 256, 512))) - 1)
    fixed = None
    if transformer.get("use_learned_positional_embeddings"):
        fixed = (transformer["sample_height"] * spatial, transformer["sample_width"] * spatial)
    return ModelGeometry(
        temporal_compression=int(vae.get("temporal_compression_ratio", 4)),
        spatial_compression=spatial,
        patch_size=int(transformer.get("patch_size", 2)),
        latent_channels=int(transformer.get("in_channels", 16)),
        fixed_size=fixed,
    )


def shard_geometry(shards: list[str], kind: str, model: ModelGeometry) -> tuple[ClipGeometry, str]:
    """(geometry of the first readable sample, where it was read). Raw shards say it in ClipMeta; latent shards
    by the latents' shape (frames and size the VAE encoded) and the ClipMeta's fps."""
    members = ("json",) if kind == "raw" else ("json", "latents.npy")
    for shard in shards:
        try:
            for sample in iter_samples(shard, members=members, strict=False):
                where = f"{shard} ({sample.key})"
                try:
                    meta = sample.meta
                    fps = float(meta["fps"])
                    if kind == "raw":
                        return ClipGeometry(
                            int(meta["num_frames"]), fps, int(meta["height"]), int(meta["width"])
                        ), where
                    latents = sample.npy("latents.npy")
                except (KeyError, ValueError, TypeError):
                    continue  # a sample with broken metadata is the stream's to count; look at the next
                if latents.ndim != 4 or latents.shape[1] != model.latent_channels:
                    raise GeometryMismatch(
                        f"latents in {where} are shaped {tuple(latents.shape)}, not [frames, "
                        f"{model.latent_channels}, h, w] as this model's VAE writes them"
                    )
                frames, _, h, w = latents.shape
                return ClipGeometry(
                    (frames - 1) * model.temporal_compression + 1,
                    fps,
                    h * model.spatial_compression,
                    w * model.spatial_compression,
                ), where
        except ShardError:
            continue
    raise DataError(f"no readable sample with clip metadata in {len(shards)} shard(s), e.g. {shards[:1]}")


def resolve_geometry(data_cfg, shards: list[str], kind: str, model: ModelGeometry) -> ClipGeometry:
    """The geometry to train at: the shards', checked against every field the config states and the model."""
    found, where = shard_geometry(shards, kind, model)
    resizable = {"height", "width"} if data_cfg.resize_clips and kind == "raw" else set()
    stated = {f: getattr(data_cfg, f) for f in FIELDS if getattr(data_cfg, f) is not None}
    differ = differing(found, {f: v for f, v in stated.items() if f not in resizable})
    if differ:
        asked = ", ".join(f"{f}={stated[f]:g}" for f in differ)
        raise GeometryMismatch(
            f"clip geometry mismatch: the shards hold {found.describe()} (ClipMeta of {where}), "
            f"the config asks for {asked}; unset data.{'/'.join(differ)} to train at the "
            f"shards' geometry, or curate at the config's"
        )
    chosen = (
        ClipGeometry(found.num_frames, found.fps, stated.get("height", found.height), stated.get("width", found.width))
        if resizable
        else found
    )
    problem = model.problem(chosen)
    if problem:
        raise GeometryMismatch(f"the clips ({chosen.describe()}, from {where}) do not fit the model: {problem}")
    return chosen


def with_geometry(data_cfg, geometry: ClipGeometry):
    """``data_cfg`` with the run's geometry filled in (what the workers read)."""
    return data_cfg.model_copy(update=geometry.as_dict())
