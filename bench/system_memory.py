"""Benchmark: the memory our own system workloads use, measured here, against what they request.

    python bench/system_memory.py [--stack dev] [--requests N] [--points P] [--snapshot-mib S]

The system node's size (docs/cost.md) rests on what its pods request; for the workloads whose code
this repository runs, the requests should be near what they use. This runs each of them here, the
way the pod does, and prints its resident memory (the process tree's VmRSS, and VmHWM or the peak
from wait4 for runs that end):

- the gateway: the real LiteLLM proxy (litellm[proxy] 1.100.5, tests/stubs/litellm_proxy.py) with
  `render_config` for the stack, every route pointed at a local stub, after start-up and after N
  chat completions. No database here (prisma cannot run) and no spend-log upload (S3 is not here):
  the pod also runs prisma's query engine and the S3 logger, so this is a floor, not its figure;
- the retrieval freshness exporter (python -m llmops.rag.exporter, one run) over a local
  qdrant-client store of P points per declared collection of the stack, putting its metrics into
  CloudWatch in a moto server on 127.0.0.1. qdrant-client's local mode holds the whole store in the
  exporter's process, which the pod's HTTP client does not (it counts and reads one page of
  payloads at a time): a small P is the pod's case; a large one shows local mode's growth. Its init
  container unpacking the deps archive (python -m zipfile) is measured too;
- the Qdrant snapshot script (components/qdrant_snapshot.py) streaming an S MiB snapshot from a
  stand-in node to disk;
- the snapshot upload: the pod runs aws-cli v2 (`aws s3 cp --recursive`), which cannot be
  installed here; boto3's upload_file with aws-cli's default transfer settings (10 threads of
  8 MiB parts, the same s3transfer package) stands in, to a moto server.

Then the requests the stack's plan gives those containers, for comparison. Figures depend on the
machine's Python and libraries (x86_64 here; the pods run the same versions on arm64 or x86_64).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gateway import REPLY, load, our_settings, strip_for_bench  # noqa: E402
from llmops.gateway.config import config_files, render_config  # noqa: E402
from tests.stubs.litellm_proxy import start_proxy  # noqa: E402
from tests.stubs.openai_stub import OpenAIStub  # noqa: E402

MIB = 1024 * 1024


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                out.append(int(entry.name))
    return out


def tree_memory_mib(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM (peak) of a process and its descendants, in MiB."""
    rss = peak = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        stack.extend(_children(current))
        for line in Path(f"/proc/{current}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak += int(line.split()[1])
    return rss // 1024, peak // 1024


# Runs a Python module or script and writes its own VmHWM at exit. wait4's ru_maxrss would not do:
# Linux carries the parent's peak across fork and exec into it.
_PEAK = """
import atexit, runpy, sys
from pathlib import Path
out, kind, target = sys.argv[1:4]
sys.argv = [target, *sys.argv[4:]]
def peak():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
    Path(out).write_text(line.split()[1])
atexit.register(peak)
runpy.run_module(target, run_name="__main__") if kind == "-m" else runpy.run_path(target, run_name="__main__")
"""


def run_peak_mib(kind: str, target: str, env: dict[str, str], *args: str) -> int:
    """Run a Python module (kind -m) or script to its end; its peak resident memory in MiB."""
    with tempfile.NamedTemporaryFile(prefix="peak-") as out:
        done = subprocess.run(
            [sys.executable, "-c", _PEAK, out.name, kind, target, *args],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"{target} exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")
        return int(Path(out.name).read_text()) // 1024


def gateway(stack: str, requests: int) -> dict[str, int]:
    stub = OpenAIStub("bench", record=False).start()
    stub.reply = REPLY
    try:
        settings, models = our_settings(stack, stub.url)
        config, route = strip_for_bench(render_config(settings, models)), models[0].public_name
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            proxy = start_proxy(config, Path(tmp) / "proxy", config_files=config_files(config))
            try:
                time.sleep(3)
                started, _ = tree_memory_mib(proxy.proc.pid)
                asyncio.run(load(proxy, route, requests, 8, 0))
                time.sleep(2)
                after, peak = tree_memory_mib(proxy.proc.pid)
            finally:
                proxy.stop()
    finally:
        stub.stop()
    return {"after start-up": started, f"after {requests} requests": after, "peak": peak}


def _aws_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and "proxy" not in k.lower()}
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "NO_PROXY": "127.0.0.1",
        }
    )
    return env


_WRITE_STORE = """
import json, random, sys
from datetime import UTC, datetime, timedelta
from qdrant_client import QdrantClient, models
path, declared, points = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
client = QdrantClient(path=path)
now = datetime.now(UTC)
for c in declared:
    client.create_collection(c["name"], vectors_config=models.VectorParams(
        size=c["vectorSize"], distance=models.Distance.COSINE))
    for start in range(0, points, 500):
        batch = [models.PointStruct(id=i, vector=[random.random() for _ in range(c["vectorSize"])],
                 payload={"source_id": f"doc-{i}", "embedding_model": c["embeddingModel"],
                          "indexed_at": (now - timedelta(hours=i % 72)).isoformat(),
                          "source_updated_at": (now - timedelta(hours=i % 72 + 1)).isoformat()})
                 for i in range(start, min(start + 500, points))]
        client.upsert(c["name"], batch, wait=True)
client.close()
"""


def exporter(stack: str, points: int, endpoint: str, workdir: Path) -> int:
    from components.retrieval_freshness import declared_collections
    from llmops.settings import load_stack_file

    settings = load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    declared = declared_collections(settings, []) or [
        {"name": "docs", "vectorSize": 1024, "distance": "Cosine", "embeddingModel": "bge-m3",
         "maxAgeHours": 48, "ownerTeam": None}
    ]  # fmt: skip
    store = workdir / "store"
    subprocess.run(
        [sys.executable, "-c", _WRITE_STORE, str(store), json.dumps(declared), str(points)], check=True
    )
    env = _aws_env(endpoint)
    env.update({"QDRANT_PATH": str(store), "ENVIRONMENT": stack, "COLLECTIONS_JSON": json.dumps(declared)})
    env["PYTHONPATH"] = str(ROOT)
    return run_peak_mib("-m", "llmops.rag.exporter", env)


def unpack(workdir: Path) -> int | None:
    """The exporter's init container: python -m zipfile -e on the built deps archive."""
    archive = ROOT / "build" / "exporter-deps" / "x86_64" / "deps.zip"
    if not archive.exists():
        return None  # `make exporter-deps` builds it
    return run_peak_mib("-m", "zipfile", dict(os.environ), "-e", str(archive), str(workdir / "site"))


class _Node(BaseHTTPRequestHandler):
    """A Qdrant node with one collection whose snapshot is `size` bytes of zeros."""

    size = 0

    def log_message(self, *args):
        pass

    def _json(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.rstrip("/") == "/collections":
            return self._json({"result": {"collections": [{"name": "docs"}]}})
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(self.size))
        self.end_headers()
        chunk = bytes(MIB)
        for _ in range(self.size // MIB):
            self.wfile.write(chunk)

    def do_POST(self):
        self._json({"result": {"name": "docs-1.snapshot"}})

    def do_DELETE(self):
        self._json({"result": True})


def snapshot(size_mib: int, workdir: Path) -> int:
    _Node.size = size_mib * MIB
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Node)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (workdir / "key").write_text("bench-key")
        (workdir / "out").mkdir()
        env = {
            **os.environ,
            "QDRANT_PEERS": f"http://127.0.0.1:{server.server_port}",
            "QDRANT_API_KEY_FILE": str(workdir / "key"),
            "OUT_DIR": str(workdir / "out"),
        }
        return run_peak_mib("script", str(ROOT / "components" / "qdrant_snapshot.py"), env)
    finally:
        server.shutdown()


_UPLOAD = """
import sys
import boto3
from boto3.s3.transfer import TransferConfig
s3 = boto3.client("s3")
s3.create_bucket(Bucket="bench", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
config = TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=10)  # aws-cli's defaults
s3.upload_file(sys.argv[1], "bench", "snapshots/docs.snapshot", Config=config)
"""


def upload(size_mib: int, endpoint: str, workdir: Path) -> int:
    path = workdir / "upload.snapshot"
    with path.open("wb") as f:
        f.truncate(size_mib * MIB)
    script = workdir / "upload.py"
    script.write_text(_UPLOAD)
    return run_peak_mib("script", str(script), _aws_env(endpoint), str(path))


def planned_requests(stack: str) -> dict[str, str]:
    """The memory requests of these containers in the stack's offline plan (build/STACK/plan.json)."""
    path = ROOT / "build" / stack / "plan.json"
    if not path.exists():
        return {}
    wanted = {"litellm": "gateway", "exporter": "exporter", "snapshot": "snapshot script", "upload": "upload"}
    out = {}
    for resource in json.loads(path.read_text())["resources"]:
        spec = (resource.get("inputs") or {}).get("spec") or {}
        if "jobTemplate" in spec:
            spec = spec["jobTemplate"].get("spec") or {}
        pod = (spec.get("template") or {}).get("spec") or {}
        for container in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
            if container.get("name") in wanted:
                memory = ((container.get("resources") or {}).get("requests") or {}).get("memory")
                out[wanted[container["name"]]] = memory
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--requests", type=int, default=600, help="chat completions sent to the proxy")
    parser.add_argument("--points", type=int, default=1000, help="points per collection for the exporter")
    parser.add_argument(
        "--snapshot-mib", type=int, default=512, help="size of the snapshot streamed and uploaded"
    )
    args = parser.parse_args(argv)

    from moto.server import ThreadedMotoServer

    from tests.local_servers import free_port

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    rows: list[tuple[str, str, int]] = []
    try:
        for what, mib in gateway(args.stack, args.requests).items():
            rows.append(("gateway (LiteLLM proxy, no database)", what, mib))
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            work = Path(tmp)
            (work / "e").mkdir()
            rows.append(
                (
                    "freshness exporter",
                    f"peak, {args.points} points/collection",
                    exporter(args.stack, args.points, endpoint, work / "e"),
                )
            )
            unpacked = unpack(work / "e")
            if unpacked is not None:
                rows.append(("exporter deps unpack (init container)", "peak", unpacked))
            (work / "s").mkdir()
            rows.append(
                (
                    "snapshot script",
                    f"peak, {args.snapshot_mib} MiB snapshot",
                    snapshot(args.snapshot_mib, work / "s"),
                )
            )
            (work / "u").mkdir()
            rows.append(
                (
                    "snapshot upload (boto3 stand-in)",
                    f"peak, {args.snapshot_mib} MiB",
                    upload(args.snapshot_mib, endpoint, work / "u"),
                )
            )
    finally:
        moto.stop()
    print(f"Memory of the system workloads this repository runs (stack {args.stack}), MiB:")
    for what, when, mib in rows:
        print(f"  {what:40} {when:34} {mib:6}")
    planned = planned_requests(args.stack)
    if planned:
        print(
            f"Requested in build/{args.stack}/plan.json: " + ", ".join(f"{k} {v}" for k, v in planned.items())
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
