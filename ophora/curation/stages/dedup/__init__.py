"""dedup (part 1 of 2): a perceptual signature per clip window, and the pure logic that picks near duplicates.

The stage stores ``dedup_signature`` on each live window: one 64-bit hash per key frame (``frames`` of them), hex,
joined by ".". With ``method: phash`` the hash is the frame's DCT perceptual hash; with ``method: clip`` it is a
SimHash of the frame's open_clip embedding (the signs of 64 fixed random projections, so the share of differing
bits estimates the angle between embeddings: robust to crops, colour grading and overlays that move a pHash).
Two windows are near duplicates when every aligned key frame differs by at most ``max_bits`` (``clip_max_bits``)
bits. Finding them across a whole run happens in :mod:`ophora.curation.stages.dedup.grouping` (LSH buckets by
hash band, grouped with Ray Data); the functions here are what each bucket runs, so they are tested without Ray.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ophora.curation.stages.base import stage_resources
from ophora.curation.stages.common import read_meta
from ophora.curation.stages.frame_filter import Findings, FrameFilterStage
from ophora.curation.stages.quality import QualityConfig, openclip_model

SIGNATURE = "dedup_signature"  # a row column (stages.common.ROW_SCHEMA)
MODEL = "phash-dct64@1"
SIMHASH_BITS = 64


class DedupConfig(BaseModel):
    """The ``dedup`` section: near-duplicate windows across the run."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["phash", "clip"] = Field(
        "phash",
        description="phash: perceptual hashes of the key frames; clip: "
        "SimHash of their open_clip embeddings (the model "
        "and weights of the quality section)",
    )
    frames: int = Field(4, ge=1, description="key frames hashed per window")
    max_side: int = Field(320, ge=32, description="sampled frames are downscaled to this longer side")
    bands: int = Field(4, ge=1, le=16, description="LSH bands per 64-bit hash (buckets share one band exactly)")
    max_bits: int = Field(
        10, ge=0, le=64, description="near duplicate: every key frame differs by at most this many bits"
    )
    clip_max_bits: int = Field(
        8,
        ge=0,
        le=64,
        description="method clip: near duplicate when every key frame's "
        "SimHash differs by at most this many bits (8 of 64: "
        "embeddings about 22 degrees apart, cosine ~0.92)",
    )
    quality_score: str = Field("field", description="score that picks the clip kept from a group (highest wins)")
    partitions: int = Field(
        8,
        ge=0,
        description="partitions of the run-wide grouping's two shuffles (0: Ray "
        "Data's default; raise it for millions of clips on a cluster)",
    )

    @property
    def threshold_bits(self) -> int:
        """The bit distance per key frame under which two windows are near duplicates, for this method."""
        return self.max_bits if self.method == "phash" else self.clip_max_bits


def phash(frame: np.ndarray) -> int:
    """64-bit perceptual hash of an RGB frame: signs of the 8x8 lowest DCT frequencies (without the mean) of
    the 32x32 grey thumbnail against their median."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].flatten()
    bits = low > np.median(low[1:])
    bits[0] = False  # the mean carries brightness, not structure
    return _as_int(bits)


def _as_int(bits: np.ndarray) -> int:
    """64 booleans as one integer, bit i set when ``bits[i]`` is."""
    return int(sum(1 << i for i, b in enumerate(bits) if b))


@lru_cache(maxsize=4)
def _planes(dims: int) -> np.ndarray:
    """The SimHash's 64 random directions, fixed by the embedding size (every worker and run draws the same)."""
    return np.random.default_rng(dims).standard_normal((SIMHASH_BITS, dims))


def simhash(embeddings: np.ndarray) -> list[int]:
    """64-bit SimHash of each embedding: the signs of its projections on 64 fixed random directions."""
    return [_as_int(row) for row in embeddings @ _planes(embeddings.shape[1]).T > 0]


def as_signature(hashes: Iterable[int]) -> str:
    """Per-frame 64-bit hashes as a signature: 16 hex digits each, joined by '.'."""
    return ".".join(f"{h:016x}" for h in hashes)


def signature(frames: np.ndarray) -> str:
    """The window's pHash signature."""
    return as_signature(phash(f) for f in frames)


def parse_signature(text: str) -> list[int]:
    return [int(part, 16) for part in text.split(".") if part]


def band_keys(text: str, bands: int = 4) -> list[str]:
    """LSH bucket keys of a signature: each frame hash cut into ``bands`` bands, keyed by band position and
    value (frames pooled, so near duplicates sharing any exact band of any frame meet in one bucket)."""
    width = 64 // bands
    mask = (1 << width) - 1
    return sorted({f"{b}:{(h >> (b * width)) & mask:x}" for h in parse_signature(text) for b in range(bands)})


def frame_distances(a: str, b: str) -> list[int]:
    """Hamming distance per aligned key frame of two signatures."""
    return [bin(x ^ y).count("1") for x, y in zip(parse_signature(a), parse_signature(b))]


def near_duplicate(a: str, b: str, max_bits: int) -> bool:
    d = frame_distances(a, b)
    return bool(d) and max(d) <= max_bits


def bucket_losers(members: Iterable[tuple[str, float, str]], max_bits: int) -> list[tuple[str, str]]:
    """(loser id, winner id) for every near-duplicate pair in one bucket of (window id, quality, signature):
    the higher quality wins, then the smaller id, so the choice is the same on every run and every worker."""
    ranked = sorted(set(members), key=lambda m: (-m[1], m[0]))
    out = []
    for i, (wid_a, _, sig_a) in enumerate(ranked):
        for wid_b, _, sig_b in ranked[i + 1 :]:
            if wid_b != wid_a and near_duplicate(sig_a, sig_b, max_bits):
                out.append((wid_b, wid_a))
    return out


def window_id(row: dict[str, Any]) -> str:
    """A window's id across the run: source id and window index (source uri and start when there is none)."""
    if row.get("source_id") and row.get("window_index", -1) is not None and int(row.get("window_index", -1)) >= 0:
        return f"{row['source_id']}:{int(row['window_index'])}"
    return f"{row.get('source_uri', '')}@{float(row.get('start', 0.0)):.3f}"


def window_quality(row: dict[str, Any], score: str = "field") -> float:
    """The score that decides which of a group of near duplicates is kept."""
    try:
        return float(read_meta(row).get("scores", {}).get(score, 0.0))
    except (json.JSONDecodeError, TypeError, ValueError):
        return 0.0


class DedupStage(FrameFilterStage):
    """Window stage: stores each live window's perceptual signature in the ``dedup_signature`` column; run
    :func:`ophora.curation.stages.dedup.grouping.dedup_dataset` on its output to drop near duplicates across the run."""

    name = "dedup"
    kind = "barrier"
    sections = {"dedup": DedupConfig}
    reads = {"quality": QualityConfig}  # method clip uses the quality section's open_clip model
    resources = stage_resources(0.1, (1, 1), 8)  # the run-wide grouping's tasks take num_cpus too
    model = MODEL

    def setup(self) -> None:
        super().setup()
        self._signature, self.clip = "", None
        if self.cfg.method == "clip":
            quality = self.conf["quality"]
            if not quality.clip_pretrained:
                raise ValueError(
                    "dedup.method=clip needs open_clip weights: set quality.clip_pretrained (a local "
                    "weights file or a tag)"
                )
            self.clip = openclip_model(quality)
            self.model = f"simhash{SIMHASH_BITS}-{self.clip.id}@1"

    @classmethod
    def barrier(cls, ds, config, res):
        """Drop near duplicates across the whole run (:mod:`ophora.curation.stages.dedup.grouping`)."""
        from ophora.curation.stages.dedup.grouping import dedup_dataset

        section = config.dedup if hasattr(config, "dedup") else DedupConfig()
        return dedup_dataset(ds, section, num_cpus=res.num_cpus, partitions=section.partitions or None)

    def judge(self, frames: np.ndarray) -> Findings:
        if self.clip is None:
            self._signature = signature(frames)
        else:
            self._signature = as_signature(simhash(self.clip.image_embeddings(frames)))
        return Findings()

    def process(self, row: dict[str, Any]) -> None:
        super().process(row)
        row[SIGNATURE] = self._signature
