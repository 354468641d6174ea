"""A tiny OpenAI-compatible server standing in for vLLM in the real-proxy tests.

It answers POST /v1/chat/completions with a fixed reply and realistic `usage` (so LiteLLM can
price the call), records every request it receives (path, headers, JSON body), and can be told
to fail (HTTP 500) to exercise the gateway's fallbacks. `reply` is the text it answers (set it to
PII_REPLY to check output masking); `"stream": true` gets the reply as OpenAI server-sent events,
a few characters per chunk, so a pattern is split across chunks. `record=False` keeps no requests
(the benchmark). Binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = "stub reply"
# A model answer carrying what output masking must catch: an Emirates ID, an IBAN in the electronic
# form, a card number and an e-mail address.
PII_REPLY = (
    "Customer jane.doe@example.ae, Emirates ID 784-1987-1234567-1, pays from IBAN "
    "AE070331234567890123456 with card 4111 1111 1111 1111."
)
STREAM_CHUNK_CHARS = 7


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog (5) overflows when the proxy opens a burst of connections; the kernel
    # then drops SYNs and the client retries after a second, which would show up as latency.
    request_queue_size = 128


class OpenAIStub:
    def __init__(self, name: str, record: bool = True):
        self.name = name
        self.requests: list[dict] = []
        self.failing = False
        self.reply = REPLY
        self.record = record
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": []})
                else:
                    self._send(200, {"status": "ok"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"_raw": raw.decode(errors="replace")}
                if stub.record:
                    with stub._lock:
                        stub.requests.append(
                            {
                                "path": self.path,
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "body": body,
                            }
                        )
                if stub.failing:
                    self._send(500, {"error": {"message": f"{stub.name} is down", "type": "server_error"}})
                    return
                if body.get("stream"):
                    self._stream(_completion(body, stub.reply))
                else:
                    self._send(200, _completion(body, stub.reply))

            def _stream(self, completion: dict):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for event in _stream_events(completion):
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

            def _send(self, status: int, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"stub-{name}", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def chat_requests(self) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"].endswith("/chat/completions")]


def _completion(body: dict, reply: str = REPLY) -> dict:
    prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
    prompt_tokens = max(1, len(prompt.split()))
    completion_tokens = 42  # fixed so recorded costs are easy to check
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


def _stream_events(completion: dict) -> list[dict]:
    """The completion as chat.completion.chunk events: the role, the text in small pieces, then
    the finish reason with the usage."""
    text = completion["choices"][0]["message"]["content"]
    base = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    pieces = [text[i : i + STREAM_CHUNK_CHARS] for i in range(0, len(text), STREAM_CHUNK_CHARS)]
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    events.append(
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": completion["usage"],
        }
    )
    return events
