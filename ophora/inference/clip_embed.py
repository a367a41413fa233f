"""open_clip text and frame embeddings for CLIPScore (the model itself: :class:`ophora.clip_model.ClipModel`).

``pretrained`` is a weights file path (offline) or an open_clip tag (needs the hub); None builds the architecture
randomly initialised with a fixed seed: for testing the plumbing only, not comparable to published numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ophora.clip_model import ClipModel
from ophora.inference.features import RANDOM_NOTE


@dataclass
class ClipEmbedder:
    """A loaded open_clip model, described the way evaluation results describe their networks."""

    clip: ClipModel

    def describe(self) -> dict[str, Any]:
        return {"name": f"open_clip {self.clip.name}", "pretrained": self.clip.pretrained,
                "comparable_to_published": self.clip.comparable,
                "note": "" if self.clip.comparable else f"{RANDOM_NOTE} (seed {self.clip.seed})"}

    def frames(self, frames: np.ndarray) -> np.ndarray:
        """Embeddings of uint8 RGB frames ``(N, H, W, 3)`` as float64 ``(N, dims)``."""
        return self.clip.image_embeddings(frames).astype(np.float64)

    def texts(self, texts: list[str]) -> np.ndarray:
        """Embeddings of texts as float64 ``(len(texts), dims)`` (texts longer than the context are cut)."""
        return self.clip.text_embeddings(texts).astype(np.float64)


def load_clip(model_name: str = "ViT-B-32", pretrained: str | None = None, seed: int = 0,
              device: str = "cpu") -> ClipEmbedder:
    """An open_clip model by architecture name; ``pretrained`` a weights path or tag, None for random init."""
    import open_clip

    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {model_name!r}")
    if pretrained is not None and not Path(pretrained).is_file() and "/" in pretrained:
        raise FileNotFoundError(f"{pretrained}: no such CLIP weights file")
    return ClipEmbedder(ClipModel(model_name, pretrained, device, seed=seed))
