"""The refine backend for any OpenAI-compatible ``/chat/completions`` endpoint, over stdlib HTTP: bounded
concurrency, timeouts, retries with backoff, and a cap on response size. Import it from :mod:`.backends`."""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class BackendError(RuntimeError):
    """An answer could not be obtained (timeout, HTTP error, oversized or malformed response)."""


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
