"""Benchmark: the spend aggregator's core against DuckDB on the same spend-log JSONL file.

    python bench/aggregator.py [--records MILLIONS] [--workers N] [--dir DIR] [--keep]

Generates a JSON Lines file of N million records made from the real LiteLLM spend-log fixtures
(tests/fixtures/spend_logs: StandardLoggingPayload objects the LiteLLM 1.100.5 proxy wrote),
with ids, teams, token counts, costs and routes varied; then, each engine in its own
subprocess so peak memory (ru_maxrss) is its own:

- core-1: `Aggregator.add_stream` in one process (what the Lambda and the CLI run);
- core-N: the same core on N byte ranges of the file in N processes, sums merged;
- duckdb: `read_json(..., format='newline_delimited', columns=...)` + GROUP BY with the
  same team fallback and route rule, DuckDB's default thread count;
- core-1 again on a file a tenth the size, to show peak memory does not grow with records.

Prints records/second, peak RSS, the DuckDB/core throughput ratio, and checks that the
engines' cost totals agree. Needs `duckdb` importable (a bench-only dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "spend_logs"
TEAMS = [f"team-{i:02d}" for i in range(25)]
EXTERNAL = [
    ("openai", "https://api.openai.com/v1", "gpt-4o-mini"),
    ("anthropic", "https://api.anthropic.com", "claude"),
]
ID, TEAM, COST, PROMPT, COMPLETION = "__BENCH_ID__", '"__BENCH_TEAM__"', "987654.125", "876543", "765432"


def templates() -> list[str]:
    """One JSON string per (fixture, route) with unique sentinels where values vary."""
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        if path.name == "objects.json":
            continue
        base = json.loads(path.read_text())
        for provider, api_base, group in [(None, None, None), *EXTERNAL]:
            record = json.loads(json.dumps(base))
            record["id"] = ID
            record["metadata"]["user_api_key_team_id"] = TEAM.strip('"')
            record["response_cost"] = float(COST)
            record["prompt_tokens"] = int(PROMPT)
            record["completion_tokens"] = int(COMPLETION)
            if provider:
                record["custom_llm_provider"], record["api_base"], record["model_group"] = (
                    provider,
                    api_base,
                    group,
                )
            text = json.dumps(record)
            assert all(text.count(s) == 1 for s in (ID, TEAM, COST, PROMPT, COMPLETION)), path.name
            out.append(text)
    return out


def generate(path: Path, small: Path, records: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    shapes = templates()
    with path.open("w") as big, small.open("w") as little:
        for i in range(records):
            line = (
                rng.choice(shapes)
                .replace(ID, f"bench-{i}")
                .replace(TEAM, f'"{rng.choice(TEAMS)}"' if rng.random() > 0.1 else "null")
                .replace(COST, repr(rng.random() / 1000))
                .replace(PROMPT, str(rng.randrange(1, 4000)))
                .replace(COMPLETION, str(rng.randrange(1, 1000)))
            )
            big.write(line + "\n")
            if i < records // 10:
                little.write(line + "\n")


CORE = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
from lambdas.spend_aggregator.aggregate import Aggregator, parallel_aggregate
path, workers = sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
if workers == 1:
    agg = Aggregator()
    with open(path, "rb") as f:
        agg.add_stream(f, path)
else:
    agg = parallel_aggregate(path, workers)
seconds = time.perf_counter() - start
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
print(json.dumps({"records": agg.records, "seconds": seconds, "cpu": cpu,
                  "peak_kb": max(me.ru_maxrss, kids.ru_maxrss),
                  "groups": len(agg.groups), "cost": agg.totals()["CostUSD"], "malformed": agg.malformed}))
"""

DUCKDB = r"""
import json, resource, sys, time
import duckdb
path = sys.argv[1]
con = duckdb.connect()
start = time.perf_counter()
rows = con.sql(f'''
  WITH r AS (
    SELECT * FROM read_json('{path}', format='newline_delimited', columns={{
      'response_cost': 'DOUBLE', 'prompt_tokens': 'BIGINT', 'completion_tokens': 'BIGINT',
      'status': 'VARCHAR', 'custom_llm_provider': 'VARCHAR', 'api_base': 'VARCHAR',
      'model_group': 'VARCHAR', 'model': 'VARCHAR', 'request_tags': 'VARCHAR[]',
      'metadata': 'STRUCT(user_api_key_team_id VARCHAR, spend_logs_metadata STRUCT(team VARCHAR))'}})
  )
  SELECT coalesce(nullif(trim(metadata.user_api_key_team_id), ''), metadata.spend_logs_metadata.team,
                  substr(list_filter(request_tags, lambda t: starts_with(t, 'team:'))[1], 6),
                  'unassigned') AS team,
         coalesce(nullif(model_group, ''), nullif(model, ''), 'unknown') AS model,
         CASE WHEN custom_llm_provider IN ('hosted_vllm','vllm','ollama','ollama_chat','lm_studio',
                                           'llamafile','xinference','triton')
                OR regexp_matches(api_base, '^https?://(127\.|10\.|192\.168\.|localhost|[^/.:]+[:/]|[^/]*\.svc)')
              THEN 'self-hosted' ELSE 'external' END AS route,
         sum(coalesce(response_cost, 0)) AS cost, sum(prompt_tokens), sum(completion_tokens),
         count(*) AS requests, count(*) FILTER (WHERE status = 'failure') AS errors
  FROM r GROUP BY ALL
''').fetchall()
seconds = time.perf_counter() - start
print(json.dumps({"records": sum(r[6] for r in rows), "seconds": seconds, "groups": len(rows),
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "cpu": resource.getrusage(resource.RUSAGE_SELF).ru_utime
                         + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
                  "cost": sum(r[3] for r in rows),
                  "threads": con.sql("SELECT current_setting('threads')").fetchall()[0][0]}))
"""


def run(code: str, *args: str, python: str = sys.executable) -> dict:
    out = subprocess.run([python, "-c", code, *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"engine failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # engines may print notices first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=float, default=1.0, help="millions of records (default 1)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for core-N")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write the file (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    records = int(args.records * 1_000_000)
    workdir = Path(tempfile.mkdtemp(prefix="spendbench-", dir=args.dir))
    big, small = workdir / "spend.jsonl", workdir / "spend-small.jsonl"
    try:
        t = time.perf_counter()
        generate(big, small, records)
        size = big.stat().st_size
        print(
            f"generated {records:,} records, {size / 1e9:.2f} GB ({size / records:,.0f} B/record) "
            f"in {time.perf_counter() - t:.0f} s: {big}"
        )
        results = {
            "core-1": run(CORE, str(ROOT), str(big), "1"),
            f"core-{args.workers}": run(CORE, str(ROOT), str(big), str(args.workers)),
            "duckdb": run(DUCKDB, str(big)),
            "core-1 (1/10 file)": run(CORE, str(ROOT), str(small), "1"),
        }
        print(
            f"{'engine':20} {'records':>11} {'wall s':>7} {'records/s':>10} {'MB/s':>6} "
            f"{'CPU s':>7} {'records/CPU-s':>14} {'peak RSS MB':>12}"
        )
        for name, r in results.items():
            file_size = small.stat().st_size if "1/10" in name else size
            print(
                f"{name:20} {r['records']:>11,} {r['seconds']:>7.1f} {r['records'] / r['seconds']:>10,.0f} "
                f"{file_size / r['seconds'] / 1e6:>6.0f} {r['cpu']:>7.1f} {r['records'] / r['cpu']:>14,.0f} "
                f"{r['peak_kb'] / 1024:>12.1f}"
            )
        speed = {n: r["records"] / r["seconds"] for n, r in results.items()}
        best = max((n for n in speed if n.startswith("core-") and "1/10" not in n), key=speed.get)
        print(
            f"duckdb threads: {results['duckdb']['threads']}; groups: core {results['core-1']['groups']}, "
            f"duckdb {results['duckdb']['groups']}"
        )
        per_cpu = {n: r["records"] / r["cpu"] for n, r in results.items()}
        print(
            f"CPU-efficiency ratio duckdb / core-1: {per_cpu['duckdb'] / per_cpu['core-1']:.2f}x "
            "(records per CPU-second: insensitive to other load on the machine)"
        )
        ratio = speed["duckdb"] / speed[best]
        print(
            f"throughput ratio duckdb / core-1: {speed['duckdb'] / speed['core-1']:.2f}x; "
            f"duckdb / {best}: {ratio:.2f}x (target: within 2x, {'met' if ratio <= 2 else 'MISSED'})"
        )
        print(
            f"core-1 peak RSS: {results['core-1 (1/10 file)']['peak_kb'] / 1024:.1f} MB at {records // 10:,} "
            f"records, {results['core-1']['peak_kb'] / 1024:.1f} MB at {records:,}"
        )
        costs = [r["cost"] for n, r in results.items() if "1/10" not in n]
        agree = max(costs) - min(costs) <= 1e-9 * max(costs)
        print(f"cost totals agree across engines: {agree} ({', '.join(f'{c:.6f}' for c in costs)})")
    finally:
        if not args.keep:
            for path in (big, small):
                path.unlink(missing_ok=True)
            workdir.rmdir()


if __name__ == "__main__":
    main()
