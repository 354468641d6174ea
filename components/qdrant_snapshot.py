"""Snapshot every Qdrant collection on every node into a directory (run by the backup CronJob).

Standard library only: it runs on a plain pinned Python image, and the AWS CLI container of
the same pod uploads the directory. In a distributed cluster each node snapshots the shards it
holds, so every peer is asked. Snapshots are deleted from the node once downloaded.

Environment: QDRANT_PEERS (comma-separated base URLs), QDRANT_API_KEY_FILE (a mounted
Secret key), OUT_DIR.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

TIMEOUT_SECONDS = 600


def _request(url: str, api_key: str, method: str = "GET"):
    req = urllib.request.Request(url, method=method, headers={"api-key": api_key})
    return urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS)


def _json(url: str, api_key: str, method: str = "GET") -> dict:
    with _request(url, api_key, method) as resp:
        return json.load(resp)


def snapshot_peer(base: str, api_key: str, out: Path) -> list[Path]:
    """Snapshot each collection on one node; return the files written."""
    written = []
    collections = _json(f"{base}/collections", api_key)["result"]["collections"]
    for collection in sorted(c["name"] for c in collections):
        quoted = urllib.parse.quote(collection, safe="")
        created = _json(f"{base}/collections/{quoted}/snapshots?wait=true", api_key, "POST")["result"]
        name = urllib.parse.quote(created["name"], safe="")
        target = out / collection / created["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        url = f"{base}/collections/{quoted}/snapshots/{name}"
        with _request(url, api_key) as resp, target.open("wb") as f:
            while chunk := resp.read(1 << 20):
                f.write(chunk)
        _json(f"{base}/collections/{quoted}/snapshots/{name}?wait=true", api_key, "DELETE")
        written.append(target)
    return written


def main() -> int:
    peers = [p.strip().rstrip("/") for p in os.environ["QDRANT_PEERS"].split(",") if p.strip()]
    api_key = Path(os.environ["QDRANT_API_KEY_FILE"]).read_text().strip()
    stamp = time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime())
    out = Path(os.environ.get("OUT_DIR", "/work")) / stamp
    total = 0
    for index, base in enumerate(peers):
        files = snapshot_peer(base, api_key, out / f"node-{index}")
        total += len(files)
        print(f"{base}: {len(files)} collection snapshot(s)")
    print(f"{total} snapshot file(s) under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
