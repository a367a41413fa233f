"""open_clip text and frame embeddings for CLIPScore.

``pretrained`` is a weights file path (offline) or an open_clip tag (needs the hub); None builds the architecture
randomly initialised with a fixed seed: for testing the plumbing only, not comparable to published numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ophora.inference.features import RANDOM_NOTE


@dataclass
class ClipEmbedder:
    """A loaded open_clip model with its image preprocessing and tokenizer."""

    model_name: str
    pretrained: str | None
    model: Any
    preprocess: Any
    tokenizer: Any
    device: str = "cpu"
    seed: int = 0

    @property
    def comparable(self) -> bool:
        return self.pretrained is not None

    def describe(self) -> dict[str, Any]:
        return {"name": f"open_clip {self.model_name}", "pretrained": self.pretrained,
                "comparable_to_published": self.comparable,
                "note": "" if self.comparable else f"{RANDOM_NOTE} (seed {self.seed})"}

    def frames(self, frames: np.ndarray) -> np.ndarray:
        """Embeddings of uint8 RGB frames ``(N, H, W, 3)`` as float64 ``(N, dims)``."""
        import torch
        from PIL import Image

        batch = torch.stack([self.preprocess(Image.fromarray(f)) for f in frames]).to(self.device)
        with torch.inference_mode():
            return self.model.encode_image(batch).double().cpu().numpy()

    def texts(self, texts: list[str]) -> np.ndarray:
        """Embeddings of texts as float64 ``(len(texts), dims)`` (texts longer than the context are cut)."""
        import torch

        with torch.inference_mode():
            return self.model.encode_text(self.tokenizer(texts).to(self.device)).double().cpu().numpy()


def load_clip(model_name: str = "ViT-B-32", pretrained: str | None = None, seed: int = 0,
              device: str = "cpu") -> ClipEmbedder:
    """An open_clip model by architecture name; ``pretrained`` a weights path or tag, None for random init."""
    import open_clip
    import torch

    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {model_name!r}")
    if pretrained is not None and not Path(pretrained).is_file() and "/" in pretrained:
        raise FileNotFoundError(f"{pretrained}: no such CLIP weights file")
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained, device=device)
    model.eval()
    return ClipEmbedder(model_name, pretrained, model, preprocess, open_clip.get_tokenizer(model_name), device, seed)
