"""open_clip text and frame embeddings for CLIPScore (the model itself: :class:`ophora.openclip.OpenClipModel`).

``pretrained`` is a weights file path (offline) or an open_clip tag (needs the hub); None builds the architecture
randomly initialised with a fixed seed: for testing the plumbing only, not comparable to published numbers. A
weights file counts as published weights only when its SHA-256 is one open_clip itself checks its downloads of
that architecture against (the OpenAI releases); a tag is open_clip's own release.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ophora.inference.features import RANDOM_NOTE, file_sha256
from ophora.openclip import OpenClipModel


@dataclass
class OpenClipEmbedder:
    """A loaded open_clip model, described the way evaluation results describe their networks."""

    clip: OpenClipModel

    @property
    def comparable(self) -> bool:
        weights = self.clip.pretrained
        if weights is None:
            return False
        if not Path(weights).is_file():
            return True  # an open_clip release tag
        return file_sha256(weights) in published_sha256(self.clip.name)

    def describe(self) -> dict[str, Any]:
        comparable = self.comparable
        note = (
            ""
            if comparable
            else (
                f"{RANDOM_NOTE} (seed {self.clip.seed})"
                if self.clip.pretrained is None
                else "weights file is no open_clip release of this architecture: NOT comparable to published numbers"
            )
        )
        return {
            "name": f"open_clip {self.clip.name}",
            "pretrained": self.clip.pretrained,
            "comparable_to_published": comparable,
            "note": note,
        }

    def frames(self, frames: np.ndarray) -> np.ndarray:
        """Embeddings of uint8 RGB frames ``(N, H, W, 3)`` as float64 ``(N, dims)``."""
        return self.clip.image_embeddings(frames).astype(np.float64)

    def texts(self, texts: list[str]) -> np.ndarray:
        """Embeddings of texts as float64 ``(len(texts), dims)`` (texts longer than the context are cut)."""
        return self.clip.text_embeddings(texts).astype(np.float64)


def published_sha256(model_name: str) -> set[str]:
    """The SHA-256 digests open_clip checks its downloads of ``model_name`` against (in the release URLs)."""
    import open_clip

    digests = set()
    for tag in open_clip.list_pretrained_tags_by_model(model_name):
        url = (open_clip.get_pretrained_cfg(model_name, tag) or {}).get("url") or ""
        parts = url.rstrip("/").split("/")
        candidates = [parts[-2] if len(parts) > 1 else "", Path(parts[-1]).stem.split("-")[-1]]
        digests.update(c for c in candidates if len(c) == 64 and all(ch in "0123456789abcdef" for ch in c))
    return digests


def load_clip(
    model_name: str = "ViT-B-32", pretrained: str | None = None, seed: int = 0, device: str = "cpu"
) -> OpenClipEmbedder:
    """An open_clip model by architecture name; ``pretrained`` a weights path or tag, None for random init."""
    import open_clip

    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {model_name!r}")
    if pretrained is not None and not Path(pretrained).is_file() and "/" in pretrained:
        raise FileNotFoundError(f"{pretrained}: no such CLIP weights file")
    return OpenClipEmbedder(OpenClipModel(model_name, pretrained, device, seed=seed))
