"""Where the refine stage's answers come from: a local causal LM through transformers, any OpenAI-compatible HTTP
endpoint, or the rule-based extractive refiner (:mod:`.extractive`: no LLM; also the fallback when an LLM answer
fails validation).

LLM backends have ``name``, ``model_id`` and ``generate(conversations) -> list[str | Exception]``: one answer text
per conversation (a list of ``{"role", "content"}`` messages), or the exception that conversation ended in, so
one failed request never fails the batch. :class:`ExtractiveBackend` answers ``answer(narration) -> dict`` in the
same JSON shape the LLMs are asked for. The OpenAI-compatible backend lives in ``openai_backend.py``, the GGUF model
files and their de-quantised copies in ``gguf_models.py`` (both re-exported here).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ophora.curation.stages.refine.extractive import ExtractiveBackend
from ophora.curation.stages.refine.gguf_models import (
    GEMMA_CHAT_TEMPLATE,
    SMOLLM2_GGUF,
    find_gemma3_gguf,
    find_smollm2_gguf,
    gguf_conversion,
    ophora_cache,
    save_gguf_conversion,
)
from ophora.curation.stages.refine.openai_backend import BackendError, OpenAIBackend

__all__ = [
    "GEMMA_CHAT_TEMPLATE",
    "SMOLLM2_GGUF",
    "BackendError",
    "LocalModel",
    "OpenAIBackend",
    "TransformersBackend",
    "find_gemma3_gguf",
    "find_smollm2_gguf",
    "gguf_conversion",
    "make_backend",
    "ophora_cache",
    "save_gguf_conversion",
    "shared_prefix",
]


def shared_prefix(ids: list[list[int]], cached: list[int] | None, min_tokens: int) -> list[int] | None:
    """The token prefix every prompt of ``ids`` starts with (the system prompt and few-shot turns), to be computed
    once: ``cached`` itself when every prompt starts with it and goes on past it, else the batch's common prefix
    when it is at least ``min_tokens`` long and shared by two or more prompts, else None."""
    if cached is not None and all(x[: len(cached)] == cached and len(x) > len(cached) for x in ids):
        return cached
    n = min(len(x) for x in ids) - 1  # leave the model at least one token of its own to read
    common = ids[0][:n]
    for x in ids[1:]:
        k = next((j for j, (a, b) in enumerate(zip(common, x)) if a != b), len(common))
        common = common[:k]
    return common if len(common) >= min_tokens and len(ids) >= 2 else None


class LocalModel:
    """A model on this machine that loads on first use: ``load()`` runs the subclass's ``_load`` once (thread-safe;
    concurrent callers wait for the first load), which sets ``_model``."""

    model_path: str
    _model = None
    _lock: threading.RLock

    @property
    def model_id(self) -> str:
        return Path(self.model_path).name if Path(self.model_path).exists() else self.model_path

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        raise NotImplementedError


class TransformersBackend(LocalModel):
    """Any local causal LM (a model dir, a hub id with HF_HUB_OFFLINE caches, or a ``.gguf`` file which transformers
    de-quantises on load). Loads on first use; greedy decoding, left-padded batches of ``batch_size``."""

    name = "transformers"

    def __init__(
        self, model: str, device: str = "cpu", max_new_tokens: int = 64, batch_size: int = 8, threads: int = 0
    ):
        self.model_path, self.device = model, device
        self.max_new_tokens, self.batch_size, self.threads = max_new_tokens, batch_size, threads
        self._tok = self._model = None
        self._stop: list[int] = []
        self._cache = None  # (prefix token ids, KV cache) of the prompt's shared prefix
        self.min_prefix_tokens = 128
        self._lock = threading.RLock()  # one load, then one generate at a time, per backend

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.threads:
            torch.set_num_threads(self.threads)
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        path, kwargs = self.model_path, {}
        if path.endswith(".gguf"):
            path, kwargs = gguf_conversion(path) or (str(Path(path).parent), {"gguf_file": Path(path).name})
        tok = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
        if kwargs:
            save_gguf_conversion(self.model_path, model, tok)
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if not getattr(tok, "chat_template", None) and model.config.model_type.startswith("gemma"):
            tok.chat_template = GEMMA_CHAT_TEMPLATE
        end_of_turn = tok.convert_tokens_to_ids("<end_of_turn>") if "<end_of_turn>" in tok.get_vocab() else None
        self._stop = [i for i in (tok.eos_token_id, end_of_turn) if i is not None]
        self._tok, self._model = tok, model.to(self.device).eval()

    def generate(self, conversations: list[list[dict]], starts: list[str] | None = None) -> list[str | Exception]:
        """Answers in order; ``starts[i]`` (optional) is text the answer to conversation i is made to begin with
        (returned as part of it). Conversations that share a long rendered prefix (the system prompt and few-shot
        examples, ~700 tokens, against ~40 of narration) are decoded one at a time from a cached prefix: on CPU the
        prompt's prefill is most of the cost, so this is several times faster than padded batches. Otherwise
        left-padded batches of ``batch_size``."""
        self.load()
        starts = starts or [""] * len(conversations)
        with self._lock:
            texts = [
                self._tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) + start
                for c, start in zip(conversations, starts)
            ]
            ids = [self._tok(t, add_special_tokens=False)["input_ids"] for t in texts]
            prefix = self._prefix(ids)
            if prefix is not None:
                out = [self._generate_cached(x, prefix) for x in ids]
            else:
                out = []
                for i in range(0, len(texts), self.batch_size):
                    out.extend(self._generate_batch(texts[i : i + self.batch_size]))
            return [start + answer for start, answer in zip(starts, out)]

    def _prefix(self, ids: list[list[int]]):
        """(prefix token ids, their KV cache) shared by every conversation, or None when too short to pay."""
        import torch

        common = shared_prefix(ids, self._cache[0] if self._cache else None, self.min_prefix_tokens)
        if common is None:
            return None
        if self._cache is not None and common is self._cache[0]:
            return self._cache  # the prompt's prefix was cached by an earlier call
        with torch.inference_mode():
            cache = self._model(torch.tensor([common], device=self.device), use_cache=True).past_key_values
        self._cache = (common, cache)
        return self._cache

    def _generate_cached(self, ids: list[int], prefix) -> str:
        import copy

        import torch

        with torch.inference_mode():
            out = self._model.generate(
                torch.tensor([ids], device=self.device),
                past_key_values=copy.deepcopy(prefix[1]),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self._tok.pad_token_id,
                eos_token_id=self._stop,
            )
        return self._tok.decode(out[0, len(ids) :], skip_special_tokens=True)

    def _generate_batch(self, texts: list[str]) -> list[str]:
        import torch

        enc = self._tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        with torch.inference_mode():
            ids = self._model.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self._tok.pad_token_id,
                eos_token_id=self._stop,
            )
        return self._tok.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def make_backend(cfg: Any):
    """The backend a :class:`~ophora.curation.stages.refine.RefineConfig` names."""
    if cfg.backend == "extractive":
        return ExtractiveBackend()
    if cfg.backend == "transformers":
        model = cfg.model or find_smollm2_gguf()
        if not model:
            raise ValueError("refine.backend=transformers needs refine.model (a model dir, hub id or .gguf file)")
        return TransformersBackend(
            model, device=cfg.device, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, threads=cfg.threads
        )
    if cfg.backend == "ctranslate2":
        from ophora.curation.stages.refine.ct2 import CTranslate2Backend

        model = cfg.model or find_smollm2_gguf()
        if not model:
            raise ValueError(
                "refine.backend=ctranslate2 needs refine.model (a model dir, hub id, .gguf file or a "
                "CTranslate2 folder)"
            )
        return CTranslate2Backend(
            model,
            device=cfg.device,
            compute_type=cfg.compute_type,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            threads=cfg.threads,
        )
    if cfg.backend == "openai":
        import os

        if not cfg.base_url or not cfg.model:
            raise ValueError("refine.backend=openai needs refine.base_url and refine.model")
        return OpenAIBackend(
            cfg.base_url,
            cfg.model,
            api_key=os.environ.get(cfg.api_key_env, ""),
            timeout_s=cfg.timeout_s,
            retries=cfg.retries,
            concurrency=cfg.concurrency,
            max_tokens=cfg.max_new_tokens,
            json_mode=cfg.json_mode,
        )
    raise ValueError(f"unknown refine.backend {cfg.backend!r} (transformers, ctranslate2, openai or extractive)")
