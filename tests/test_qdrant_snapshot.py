"""The snapshot job's script against a stand-in Qdrant node on localhost."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from components import qdrant_snapshot

API_KEY = "test-key"


class FakeQdrant(BaseHTTPRequestHandler):
    collections = ("docs", "faq")
    calls: list[tuple[str, str]]

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, method: str):
        self.server.calls.append((method, self.path))
        if self.headers.get("api-key") != API_KEY:
            return self._send(401, b'{"status": "unauthorized"}')
        parts = self.path.split("?")[0].strip("/").split("/")
        if method == "GET" and parts == ["collections"]:
            result = {"collections": [{"name": c} for c in self.collections]}
            return self._send(200, json.dumps({"result": result}).encode())
        if method == "POST" and parts[2:] == ["snapshots"]:
            return self._send(200, json.dumps({"result": {"name": f"{parts[1]}-1.snapshot"}}).encode())
        if method == "GET" and len(parts) == 4:
            return self._send(200, f"data of {parts[3]}".encode(), "application/octet-stream")
        if method == "DELETE" and len(parts) == 4:
            return self._send(200, b'{"result": true}')
        return self._send(404, b"{}")

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")


@pytest.fixture
def node():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeQdrant)
    server.calls = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_every_collection_is_downloaded_then_deleted_from_the_node(node, tmp_path):
    base = f"http://127.0.0.1:{node.server_address[1]}"
    written = qdrant_snapshot.snapshot_peer(base, API_KEY, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "docs/docs-1.snapshot",
        "faq/faq-1.snapshot",
    ]
    assert (tmp_path / "docs" / "docs-1.snapshot").read_text() == "data of docs-1.snapshot"
    deleted = [path for method, path in node.calls if method == "DELETE"]
    assert deleted == [
        "/collections/docs/snapshots/docs-1.snapshot?wait=true",
        "/collections/faq/snapshots/faq-1.snapshot?wait=true",
    ]


def test_main_reads_the_key_from_a_file_and_asks_every_peer(node, tmp_path, monkeypatch, capsys):
    base = f"http://127.0.0.1:{node.server_address[1]}"
    key_file = tmp_path / "api-key"
    key_file.write_text(API_KEY + "\n")
    monkeypatch.setenv("QDRANT_PEERS", f"{base},{base}/")
    monkeypatch.setenv("QDRANT_API_KEY_FILE", str(key_file))
    monkeypatch.setenv("OUT_DIR", str(tmp_path / "out"))
    assert qdrant_snapshot.main() == 0
    files = sorted(p.relative_to(tmp_path / "out").parts[1:] for p in (tmp_path / "out").rglob("*.snapshot"))
    assert files == [
        ("node-0", "docs", "docs-1.snapshot"),
        ("node-0", "faq", "faq-1.snapshot"),
        ("node-1", "docs", "docs-1.snapshot"),
        ("node-1", "faq", "faq-1.snapshot"),
    ]
    assert "4 snapshot file(s)" in capsys.readouterr().out


def test_a_wrong_key_fails_the_job(node, tmp_path):
    base = f"http://127.0.0.1:{node.server_address[1]}"
    with pytest.raises(Exception, match="401"):
        qdrant_snapshot.snapshot_peer(base, "wrong", tmp_path)
