"""Export trained weights as a diffusers pipeline folder that ``CogVideoXPipeline.from_pretrained`` loads.

Full fine-tune: ``OUT/`` is the source pipeline with the trained transformer (safetensors). LoRA: ``OUT/lora/``
holds the adapter in diffusers' LoRA format (``CogVideoXPipeline.load_lora_weights``) and ``OUT/`` the pipeline
with the adapter fused in, so the next stage (P²FT after TPT) and inference load it the same way.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

LORA_DIR = "lora"


def _upload(local: Path, dest: str) -> None:
    """Move a finished local folder to ``dest`` (a path or an fsspec URL), replacing what was there."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(dest)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    if fs.protocol in ("file", "local") or "file" in fs.protocol:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(local), path)
    else:
        fs.put(str(local), path, recursive=True)


def export_trained(transformer, source: str, dest: str | Path, lora: bool = False) -> str:
    """Write the pipeline of ``source`` with ``transformer``'s trained weights to ``dest``; returns ``dest``."""
    from diffusers import CogVideoXPipeline

    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "export"
        if lora:
            from peft.utils import get_peft_model_state_dict

            CogVideoXPipeline.save_lora_weights(
                staged / LORA_DIR, transformer_lora_layers=get_peft_model_state_dict(transformer)
            )
            pipe = CogVideoXPipeline.from_pretrained(source)
            pipe.load_lora_weights(str(staged / LORA_DIR), adapter_name="ophora")
            pipe.fuse_lora(components=["transformer"], lora_scale=1.0)
            pipe.unload_lora_weights()
        else:
            pipe = CogVideoXPipeline.from_pretrained(source, transformer=transformer)
        pipe.save_pretrained(staged, safe_serialization=True)
        _upload(staged, str(dest))
    return str(dest)
