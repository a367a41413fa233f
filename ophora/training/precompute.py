"""`ophora train precompute`: a Ray Data job whose GPU (or CPU) actors encode every clip once.

Each input shard ``<in>/<subset>/X.tar`` becomes ``<out>/<subset>/latents-X-000000.tar`` with members
``latents.npy`` (VAE latents, already multiplied by the VAE's scaling factor, [F', C, h, w] float16),
``prompt_embeds.npy`` (T5, [max_text_tokens, D] float16), ``txt`` and ``json``. Output names follow input names,
so a rerun rewrites the same shards instead of adding new ones.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ophora.dataset.shards import RAW_MEMBERS, ShardError, ShardWriter, iter_samples, list_shards

log = logging.getLogger(__name__)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array.astype(np.float16), allow_pickle=False)
    return buf.getvalue()


class LatentEncoder:
    """Loads the frozen VAE and T5 once; ``__call__({"shard": [...], "subset": [...]})`` encodes whole shards."""

    def __init__(self, model: str, out_root: str, num_frames: int, height: int, width: int, max_text_tokens: int):
        import torch

        from ophora.training.models import load_text_encoder, load_vae

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = "bf16" if self.device.type == "cuda" else "fp32"
        self.vae = load_vae(model, dtype).to(self.device)
        self.tokenizer, self.text_encoder = load_text_encoder(model, dtype)
        self.text_encoder.to(self.device)
        self.out_root, self.frames, self.height, self.width = out_root, num_frames, height, width
        self.max_tokens = max_text_tokens

    def encode_sample(self, sample) -> dict[str, bytes]:
        from ophora.training.data import decode_clip, to_model_pixels
        from ophora.training.objective import encode_text, encode_video

        pixels = to_model_pixels(decode_clip(sample.mp4, self.frames, self.height, self.width)).unsqueeze(0)
        latents = encode_video(self.vae, pixels)[0].float().cpu().numpy()
        embeds = encode_text(self.tokenizer, self.text_encoder, [sample.instruction], self.max_tokens)
        return {
            "latents.npy": _npy(latents),
            "prompt_embeds.npy": _npy(embeds[0].float().cpu().numpy()),
            "txt": sample.members.get("txt", b""),
            "json": sample.members["json"],
        }

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        rows: dict[str, list] = {"shard": [], "out": [], "samples": [], "bad": []}
        for shard, subset in zip(batch["shard"], batch["subset"]):
            written, bad, outputs = 0, 0, []
            writer = ShardWriter(self.out_root, subset, prefix=f"latents-{Path(shard).stem}", max_count=1 << 30)
            try:
                for sample in iter_samples(shard, members=RAW_MEMBERS, strict=False):
                    try:
                        writer.write(sample.key, self.encode_sample(sample))
                        written += 1
                    except Exception as e:  # noqa: BLE001 - one bad clip is counted, never fatal to the shard
                        bad += 1
                        log.warning("precompute: skipping %s in %s: %s", sample.key, shard, e)
            except ShardError as e:
                bad += 1
                log.warning("precompute: broken shard, kept what was read: %s", e)
            outputs = [path for path, _ in writer.close()]
            rows["shard"].append(shard)
            rows["out"].append(";".join(outputs))
            rows["samples"].append(written)
            rows["bad"].append(bad)
        return rows


def precompute_latents(
    cfg,
    shards_root: str | Path,
    out_root: str | Path,
    subsets=("tpt", "p2ft"),
    num_gpus: float = 0.0,
    actors: int = 1,
    cpus_per_actor: float = 0.5,
) -> dict[str, Any]:
    """Encode every shard of ``subsets`` under ``shards_root`` into latent shards under ``out_root``."""
    import ray

    from ophora.ray_session import connect
    from ophora.training.config import absolute_location
    from ophora.training.data import DataError
    from ophora.training.data_geometry import model_geometry, resolve_geometry

    root, out = absolute_location(str(shards_root)), absolute_location(str(out_root))
    items = [{"shard": s, "subset": subset} for subset in subsets for s in list_shards(root, subset)]
    if not items:
        raise DataError(f"no shards under {root} for subsets {list(subsets)}")
    model = absolute_location(cfg.model)
    geometry = resolve_geometry(cfg.data, [i["shard"] for i in items], "raw", model_geometry(model))
    connect()
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        LatentEncoder,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=num_gpus,
        num_cpus=cpus_per_actor,
        fn_constructor_kwargs={
            "model": model,
            "out_root": out,
            "num_frames": geometry.num_frames,
            "height": geometry.height,
            "width": geometry.width,
            "max_text_tokens": cfg.data.max_text_tokens,
        },
    )
    rows = ds.take_all()
    return {
        "shards_in": len(items),
        "shards_out": sum(bool(r["out"]) for r in rows),
        "samples": sum(r["samples"] for r in rows),
        "bad": sum(r["bad"] for r in rows),
        "out": out,
    }
