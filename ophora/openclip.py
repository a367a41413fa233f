"""open_clip behind one small class, for the curation (surgical-field score, near duplicates) and the evaluation
(CLIPScore). Loaded from a weights file (offline) or an open_clip tag (needs the hub); ``pretrained=None`` builds
the architecture randomly initialised from ``seed``: it tests the plumbing only and scores mean nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OpenClipModel:
    """An open_clip model with its preprocessing and tokenizer; embeddings come back as float32 arrays."""

    def __init__(
        self, name: str = "ViT-B-32", pretrained: str | None = None, device: str = "cpu", batch: int = 16, seed: int = 0
    ):
        import open_clip
        import torch

        self.name, self.pretrained, self.batch, self.seed, self.torch = name, pretrained, batch, seed, torch
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        torch.manual_seed(seed)  # a random initialisation is the same on every worker
        try:
            model, _, self.preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, device=self.device
            )
        except Exception as e:  # noqa: BLE001 - any loader failure reads the same to a user: wrong name or weights
            raise ValueError(
                f"cannot load open_clip {name!r} with weights {pretrained!r} ({type(e).__name__}: "
                f"{e}); give a local weights file"
            ) from e
        self.model = model.eval()
        self.tokenizer = open_clip.get_tokenizer(name)
        self.logit_scale = float(model.logit_scale.exp().item())

    @property
    def comparable(self) -> bool:
        """Whether real weights are loaded (scores of a random model are only for testing the plumbing)."""
        return self.pretrained is not None

    @property
    def id(self) -> str:
        weights = Path(self.pretrained.replace("\\", "/")).name if self.pretrained else "random-init"
        return f"open_clip:{self.name}@{weights}"

    def image_embeddings(self, frames: np.ndarray) -> np.ndarray:
        """``(N, dims)`` embeddings of uint8 RGB frames ``(N, H, W, 3)``, ``batch`` frames per forward pass."""
        from PIL import Image

        out = []
        with self.torch.inference_mode():
            for i in range(0, len(frames), self.batch):
                x = self.torch.stack([self.preprocess(Image.fromarray(f)) for f in frames[i : i + self.batch]])
                out.append(self.model.encode_image(x.to(self.device)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def text_embeddings(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dims)`` embeddings (texts longer than the context are cut)."""
        with self.torch.inference_mode():
            return self.model.encode_text(self.tokenizer(texts).to(self.device)).float().cpu().numpy()
