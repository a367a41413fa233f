"""A small OpenAI-compatible chat-completions server on loopback for the refine tests.

``POST /v1/chat/completions`` answers with a real model (any object with ``generate(conversations)``, e.g. the
transformers backend running SmolLM2). A test-only ``mode`` query parameter makes it misbehave the way real
endpoints do: ``slow`` (answers after ``slow_s``), ``invalid`` (text that is not JSON), ``broken`` (a body that is
not a chat-completions response), ``empty`` (empty content), ``huge`` (a multi-megabyte answer), ``phi`` (a
well-formed answer that echoes a patient's identity), ``flaky`` (503 twice, then a canned valid answer),
``nojsonmode`` (400 for requests that ask for ``response_format``, then the canned answer).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PHI_ANSWER = {"relevant": True, "phase": "incision",
              "instruction": "Make the incision for Margaret Okafor, born March 3, 1952, with the keratome."}
CANNED_ANSWER = {"relevant": True, "phase": "incision",  # what the tests' narration (an incision) asks for
                 "instruction": "Make the main incision at the temporal limbus with the keratome."}


class ChatServer:
    """``with ChatServer(model) as srv: srv.base_url`` -> ``http://127.0.0.1:<port>/v1``. ``requests`` counts
    requests per mode; ``generations`` counts real model answers."""

    def __init__(self, model, slow_s: float = 3.0):
        self.model, self.slow_s = model, slow_s
        self.requests: Counter = Counter()
        self.generations = 0
        self.last_messages: list | None = None
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def url(self, mode: str = "ok") -> str:
        return f"{self.base_url}?mode={mode}"

    def __enter__(self) -> "ChatServer":
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, mode: str, request: dict) -> tuple[int, bytes]:
        """(status, body) for one request in ``mode``."""
        messages = request["messages"]
        with self._lock:
            self.requests[mode] += 1
            count = self.requests[mode]
        if mode == "slow":
            time.sleep(self.slow_s)
        if mode == "broken":
            return 200, b'{"id": "x", "object": "chat.completion"}'
        if mode == "flaky" and count <= 2:
            return 503, b'{"error": "overloaded"}'
        if mode == "nojsonmode" and "response_format" in request:
            return 400, b'{"error": "response_format is not supported"}'
        content = {"invalid": "Sure! The instruction is: make the incision {not json",
                   "empty": "",
                   "huge": "x" * (2 << 20),
                   "phi": json.dumps(PHI_ANSWER),
                   # slow: the client gave up long ago; loading the model in this daemon thread could still be
                   # under way when the interpreter exits (torch's threads then abort the process)
                   "slow": json.dumps(CANNED_ANSWER),
                   "flaky": json.dumps(CANNED_ANSWER), "nojsonmode": json.dumps(CANNED_ANSWER)}.get(mode)
        if content is None:
            content = self.model.generate([messages])[0]
            if isinstance(content, Exception):
                return 500, json.dumps({"error": str(content)}).encode()
            with self._lock:
                self.generations += 1
                self.last_messages = messages
        body = {"id": "chatcmpl-test", "object": "chat.completion", "model": "test",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}]}
        return 200, json.dumps(body).encode()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                parts = urlsplit(self.path)
                if parts.path.rstrip("/") != "/v1/chat/completions":
                    self.send_error(404)
                    return
                mode = parse_qs(parts.query).get("mode", ["ok"])[0]
                try:
                    request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                    if not isinstance(request.get("messages"), list):
                        raise ValueError("no messages")
                except (ValueError, AttributeError):
                    self.send_error(400)
                    return
                status, body = server.answer(mode, request)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        return Handler
