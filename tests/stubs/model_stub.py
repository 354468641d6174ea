"""A deterministic OpenAI-compatible model for the eval-runner tests, behind the real LiteLLM proxy.

POST /v1/chat/completions answers `respond(body)`: a callable the test sets, given the request's
JSON body, returning the reply text (the default echoes the last message). `usage` counts words
(prompt: every message's content; completion: the reply, at least 1), so LiteLLM prices each call
from the per-token prices in its model_list and the cost header is a known number.

Failures for retry tests: `fail_next(n, status, retry_after)` answers the next n chat requests
with that status (and a Retry-After header when given) before answering normally again.
`delay_s` holds every answer back, so concurrency shows in `max_in_flight`. Every chat request
is recorded (`chat_requests()`). Binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def echo(body: dict) -> str:
    messages = body.get("messages") or [{}]
    return str(messages[-1].get("content", ""))


def words(text: str) -> int:
    return len(text.split())


class ModelStub:
    def __init__(self):
        self.respond: Callable[[dict], str] = echo
        self.delay_s = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self._failures: list[tuple[int, str | None]] = []
        self._requests: list[dict] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                self._send(200, {"object": "list", "data": []})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                with stub._lock:
                    stub._requests.append(body)
                    failure = stub._failures.pop(0) if stub._failures else None
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    if stub.delay_s:
                        time.sleep(stub.delay_s)
                    if failure is not None:
                        status, retry_after = failure
                        headers = {"Retry-After": retry_after} if retry_after is not None else {}
                        self._send(status, {"error": {"message": f"stub failure {status}"}}, headers)
                        return
                    self._send(200, completion(body, stub.respond(body)))
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

            def _send(self, status: int, payload: dict, headers: dict | None = None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="model-stub", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ModelStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self, respond: Callable[[dict], str] = echo) -> None:
        with self._lock:
            self.respond = respond
            self.delay_s = 0.0
            self.max_in_flight = 0
            self._failures.clear()
            self._requests.clear()

    def fail_next(self, n: int, status: int = 500, retry_after: str | None = None) -> None:
        with self._lock:
            self._failures += [(status, retry_after)] * n

    def chat_requests(self) -> list[dict]:
        with self._lock:
            return list(self._requests)


def completion(body: dict, reply: str) -> dict:
    prompt_tokens = sum(words(str(m.get("content", ""))) for m in body.get("messages", []))
    completion_tokens = max(1, words(reply))
    return {
        "id": f"chatcmpl-stub-{time.time_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "unknown"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
