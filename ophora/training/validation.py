"""Validation during training: every ``validation.every`` steps rank 0 renders fixed prompts (the 12 cataract
phases by default) with fixed seeds and the current weights — the EMA weights when EMA is on — writes them as
mp4, and puts a frame grid per prompt and their mean CLIPScore in TensorBoard.

Layout under the run folder (the videos sit in TensorBoard's folder, next to the grids that show them)::

    tensorboard/<stage>/                                          validation/<prompt id> frame grids,
                                                                  validation/clip_score
    tensorboard/<stage>/validation/step-<NNNNNN>/<prompt id>.mp4   H.264 at the run's clip geometry
    tensorboard/<stage>/validation/step-<NNNNNN>/<prompt id>.json  prompt, phase, seed, step, clip_score

The same prompt always renders with the same seed, so the videos of successive steps show what training changed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ophora.clip_geometry import ClipGeometry

GRID_FRAMES = 8  # frames of each video shown in its TensorBoard grid


def validation_folder(out_dir: str | Path, stage: str) -> Path:
    return Path(out_dir) / "tensorboard" / stage / "validation"


class Validator:
    """Renders the validation prompts for one training stage; built on rank 0 only."""

    def __init__(self, cfg, geometry: ClipGeometry, out_dir: Path, stage: str):
        from ophora.inference.prompts import as_prompts

        self.cfg, self.geometry, self.max_tokens = cfg.validation, geometry, cfg.data.max_text_tokens
        self.folder = validation_folder(out_dir, stage)
        prompts = [p for p in as_prompts(self.cfg.prompts) if p.text and not p.problem]
        self.prompts = prompts[: self.cfg.max_prompts] if self.cfg.max_prompts else prompts
        self._clip = None
        self._text_embeddings: dict[str, np.ndarray] = {}

    def due(self, step: int, last: bool) -> bool:
        return bool(self.cfg.every) and bool(self.prompts) and (step % self.cfg.every == 0 or last)

    def render(self, parts, transformer, step: int, writer=None, autocast=None) -> dict[str, Any]:
        """Render every prompt with ``transformer`` (its current weights) and the frozen ``parts`` under
        ``autocast`` (the training precision's context; fp32 weights meet bf16 text embeddings on a GPU);
        returns {step, folder, videos, clip_score, seconds}."""
        import contextlib

        import torch
        from diffusers import CogVideoXPipeline

        from ophora.inference.pipeline import SamplingSettings, make_scheduler, render
        from ophora.inference.video_io import encode_mp4

        t0 = time.perf_counter()
        g = self.geometry
        settings = SamplingSettings(
            steps=self.cfg.steps,
            frames=g.num_frames,
            height=g.height,
            width=g.width,
            fps=g.fps,
            guidance=self.cfg.guidance,
            scheduler=self.cfg.scheduler,
            max_sequence_length=self.max_tokens,
        )
        pipe = CogVideoXPipeline(
            tokenizer=parts.tokenizer,
            text_encoder=parts.text_encoder,
            vae=parts.vae,
            transformer=transformer,
            scheduler=make_scheduler(parts.scheduler.config, self.cfg.scheduler),
        )
        pipe.set_progress_bar_config(disable=True)
        folder = self.folder / f"step-{step:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        was_training = transformer.training
        transformer.eval()
        scores = []
        try:
            for i, prompt in enumerate(self.prompts):
                seed = self.cfg.seed + i
                with autocast() if autocast else contextlib.nullcontext():
                    frames = render(pipe, prompt.text, seed, settings)
                mp4 = encode_mp4(frames, folder / f"{prompt.id}.mp4", g.fps)
                score = self._clip_score(frames, prompt.text)
                scores.append(score)
                mp4.with_suffix(".json").write_text(
                    json.dumps(
                        {
                            "prompt": prompt.text,
                            "phase": prompt.phase,
                            "seed": seed,
                            "step": step,
                            "clip_score": score,
                            "clip_model": self.cfg.clip_model,
                            "clip_pretrained": self.cfg.clip_pretrained,
                        },
                        indent=2,
                    ),
                    encoding="utf-8",
                )
                if writer is not None:
                    writer.add_image(f"validation/{prompt.id}", frame_grid(frames), step, dataformats="HWC")
        finally:
            transformer.train(was_training)
            del pipe
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        valid = [s for s in scores if s is not None]
        result = {
            "step": step,
            "folder": str(folder),
            "videos": len(scores),
            "clip_score": float(np.mean(valid)) if valid else None,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        if writer is not None:
            if result["clip_score"] is not None:
                writer.add_scalar("validation/clip_score", result["clip_score"], step)
            writer.add_scalar("validation/seconds", result["seconds"], step)
            writer.flush()
        return result

    def _clip_score(self, frames: np.ndarray, text: str) -> float | None:
        if not self.cfg.clip_model:
            return None
        from ophora.inference.metrics import clip_score
        from ophora.inference.openclip_embed import load_clip
        from ophora.inference.video_io import pick_frames

        if self._clip is None:
            self._clip = load_clip(self.cfg.clip_model, self.cfg.clip_pretrained)
        if text not in self._text_embeddings:
            self._text_embeddings[text] = self._clip.texts([text])[0]
        return clip_score(self._clip.frames(pick_frames(frames, GRID_FRAMES)), self._text_embeddings[text])[0]


def frame_grid(frames: np.ndarray, count: int = GRID_FRAMES, columns: int = 4) -> np.ndarray:
    """``count`` evenly spaced frames of a (T, H, W, 3) uint8 video tiled into rows of ``columns``."""
    from ophora.inference.video_io import pick_frames

    picked = pick_frames(frames, min(count, len(frames)))
    rows = -(-len(picked) // columns)
    h, w = picked.shape[1:3]
    grid = np.zeros((rows * h, columns * w, 3), dtype=np.uint8)
    for i, frame in enumerate(picked):
        r, c = divmod(i, columns)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = frame
    return grid
