"""Helpers for the cost Lambda tests: an independent reader of the spend-log fixtures, an EMF
validator, and the stdout parser. Deliberately not built on `lambdas.spend_aggregator` so
the sums the tests compare against are computed by different code."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

SPEND_LOGS = Path(__file__).parents[1] / "fixtures" / "spend_logs"
METRIC_NAMES = ("CostUSD", "PromptTokens", "CompletionTokens", "Requests", "Errors")
# CloudWatch StandardUnit values (EMF spec: Unit is optional, must be one of these).
UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second",
    "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second",
    "Count/Second", "None",
}  # fmt: skip


def fixture_files() -> list[Path]:
    """Spend-log objects the real LiteLLM proxy wrote (see objects.json for their S3 keys)."""
    files = sorted(
        p
        for p in SPEND_LOGS.iterdir()
        if p.name.endswith((".json", ".jsonl", ".gz")) and p.name != "objects.json"
    )
    assert files, f"no spend-log fixtures in {SPEND_LOGS}"
    return files


def fixture_keys() -> dict[str, str]:
    """Fixture file name -> the S3 key LiteLLM's s3_v2 logger wrote it under."""
    return json.loads((SPEND_LOGS / "objects.json").read_text())


def read_records(path: Path) -> list[dict]:
    """Every record in a fixture file: .json holds one document, .jsonl one per line."""
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    text = raw.decode()
    name = path.name.removesuffix(".gz")
    if name.endswith(".json"):
        return [json.loads(text)]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def all_records() -> list[dict]:
    return [r for p in fixture_files() for r in read_records(p)]


def team_of(record: dict) -> str:
    """Key's team, else spend_logs_metadata.team, else a team:<name> tag (docs/cost.md)."""
    metadata = record.get("metadata") or {}
    tags = [t[5:] for t in record.get("request_tags") or [] if t.startswith("team:")]
    return (
        metadata.get("user_api_key_team_id")
        or (metadata.get("spend_logs_metadata") or {}).get("team")
        or (tags[0] if tags else "unassigned")
    )


def expected_sums(records: list[dict]) -> dict[str, float]:
    return {
        "CostUSD": math.fsum(r.get("response_cost") or 0.0 for r in records),
        "PromptTokens": sum(r.get("prompt_tokens") or 0 for r in records),
        "CompletionTokens": sum(r.get("completion_tokens") or 0 for r in records),
        "Requests": len(records),
        "Errors": sum(1 for r in records if r.get("status") == "failure"),
    }


def expected_cost_by_team(records: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in records:
        out[team_of(r)] = out.get(team_of(r), 0.0) + (r.get("response_cost") or 0.0)
    return out


def emf_sums(emf: list[dict]) -> dict[str, float]:
    return {name: (math.fsum if name == "CostUSD" else sum)(e[name] for e in emf) for name in METRIC_NAMES}


def assert_sums_equal(actual: dict[str, float], expected: dict[str, float]) -> None:
    for name, value in expected.items():
        assert math.isclose(actual[name], value, rel_tol=1e-9, abs_tol=1e-12), (name, actual[name], value)


def assert_valid_emf(record: dict) -> None:
    """Structure from the EMF specification (CloudWatch_Embedded_Metric_Format_Specification)."""
    meta = record.get("_aws")
    assert isinstance(meta, dict), "root must hold an _aws object"
    assert isinstance(meta.get("Timestamp"), int) and meta["Timestamp"] > 0, "Timestamp: epoch milliseconds"
    directives = meta.get("CloudWatchMetrics")
    assert isinstance(directives, list) and directives, "CloudWatchMetrics: non-empty array"
    for directive in directives:
        assert isinstance(directive.get("Namespace"), str) and 1 <= len(directive["Namespace"]) <= 255
        dimension_sets = directive.get("Dimensions")
        assert isinstance(dimension_sets, list)
        for dimension_set in dimension_sets:
            assert isinstance(dimension_set, list) and 1 <= len(dimension_set) <= 30
            for key in dimension_set:
                value = record.get(key)
                assert isinstance(value, str) and value.strip() and len(value) <= 1024, f"dimension {key}"
        metrics = directive.get("Metrics")
        assert isinstance(metrics, list) and 1 <= len(metrics) <= 100
        for metric in metrics:
            name = metric.get("Name")
            assert isinstance(name, str) and name in record, f"metric {name} has no value"
            value = record[name]
            assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            assert metric.get("Unit", "None") in UNITS


def parse_stdout(text: str) -> tuple[list[dict], list[dict]]:
    """(EMF records, other JSON log lines) from captured stdout; every line must be JSON."""
    emf, logs = [], []
    for line in text.splitlines():
        if line.strip():
            doc = json.loads(line)
            (emf if "_aws" in doc else logs).append(doc)
    return emf, logs


class RecordingServer:
    """A 127.0.0.1 HTTP server on a free port that records every request and answers with
    `status` and a JSON body; stands in for the Slack webhook and LiteLLM's admin API."""

    def __init__(self, status: int = 200, reply: dict | None = None, respond=None, tls=None):
        """`respond(path, headers, json) -> (status, body)` overrides the fixed answer; `tls`
        (tests/tls_certs.Certificates) serves HTTPS with that certificate."""
        import http.server
        import threading

        self.requests: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                outer.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(raw or b"null")}
                )
                status, answer = outer.status, reply if reply is not None else {"ok": True}
                if respond is not None:
                    status, answer = respond(self.path, dict(self.headers), outer.requests[-1]["json"])
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output clean
                pass

        self.status = status
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert_path, tls.key_path)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
