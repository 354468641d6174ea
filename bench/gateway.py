"""Benchmark: the gateway's overhead, our generated prod config against a bare LiteLLM config.

    python bench/gateway.py [--requests N] [--concurrency C] [--warmup W] [--rounds R]
                            [--controls] [--stack prod] [--profile-guardrail]

Starts one local OpenAI-compatible stub (tests/stubs/openai_stub.py, not recording) and the real
LiteLLM proxy (litellm[proxy] 1.100.5) twice, the way the tests start it
(tests/stubs/litellm_proxy.py: the pod's own arguments, TLS on, no database):

- bare: one route to the stub, no guardrails, no callbacks, master key only;
- ours: `render_config` for the stack (every route pointed at the stub) with its side files (the
  hooks module), spend-log callbacks off (S3 is not here); Prometheus, the guardrails and the
  budgets stay as generated.

Then W warm-up requests to each proxy, and N timed ones at concurrency C in R slices sent to the
proxies in turn (bare, ours, bare, ours, ...), so a change in the machine's load hits every
configuration alike; every prompt is distinct. Prints requests/second, p50 and p99 latency, and
the ratios to bare, and the proxy's own CPU time per request (from /proc: other load on the
machine does not count). `--controls` adds one proxy per control with that control removed (or
added, for the cache, whose every lookup misses: prompts are distinct), and one with the generated
config with a choice made for speed undone: the injection screen as a content-filter guardrail of
its own, every Prometheus metric LiteLLM has (budget gauges included), or LiteLLM's failed otel
import retried on every guardrail run (as before llmops/gateway/hooks.py remembered the failure).
`--profile-guardrail` times each guardrail's own work in-process.

The machine running it matters: on a shared 2-core box the proxy, the stub and the client compete
for CPU; compare figures from one run only.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmops.gateway.config import (  # noqa: E402
    ANSWER_FILTER_NAME,
    CACHE_GUARDRAIL_NAME,
    HOOKS_MODULE,
    HOOKS_PATH,
    PROMPT_FILTER_NAME,
    SelfHostedModel,
    config_files,
    render_config,
)
from llmops.settings import load_stack_file  # noqa: E402
from llmops.settings.gateway import ResponseCache  # noqa: E402
from tests.stubs.litellm_proxy import MASTER_KEY, RunningProxy, start_proxy  # noqa: E402
from tests.stubs.openai_stub import OpenAIStub  # noqa: E402

# A support-desk style prompt of ~90 words with no PII (the common case the guardrails scan).
PROMPT = (
    "You are helping a bank's support team. Summarise the customer's message below in three "
    "bullet points, then suggest the next step for the agent. Keep a neutral tone and do not "
    "invent facts. Message: I tried to move money between my savings and current accounts this "
    "morning and the app showed an error after the confirmation screen. The balance looks "
    "unchanged but I am not sure whether the transfer will go through later. Could you check "
    "what happened and tell me if I need to try again? Request number {i}."
)
# A reply of ~60 words, also without PII: what output masking scans on every answer.
REPLY = (
    "- The customer attempted a transfer between savings and current accounts this morning.\n"
    "- The app showed an error after confirmation; the balance appears unchanged.\n"
    "- The customer is unsure whether the transfer is pending and asks whether to retry.\n"
    "Next step: check the transfer log for the customer's session and confirm its status before "
    "advising a retry, so the transfer is not made twice."
)


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    errors: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc): what the proxy itself spent, whatever
    else runs on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_config(route: str, stub_url: str) -> dict:
    return {
        "model_list": [
            {
                "model_name": route,
                "litellm_params": {
                    "model": "hosted_vllm/org/served",
                    "api_base": stub_url,
                    "api_key": "os.environ/VLLM_API_KEY",
                },
            }
        ],
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }


def our_settings(stack: str, stub_url: str):
    path = Path(stack) if stack.endswith(".yaml") else ROOT / "stacks" / f"Pulumi.{stack}.yaml"
    settings = load_stack_file(path)
    models = [
        SelfHostedModel(m.name, f"org/{m.name}", stub_url, "L4", 1, 0.8048, m.tokens_per_second)
        for m in settings.models
    ]
    return settings, models


def strip_for_bench(config: dict) -> dict:
    config["general_settings"].pop("database_url")  # no database here (prisma cannot run)
    config["litellm_settings"]["success_callback"] = []  # spend logs go to S3, not reachable here
    config["litellm_settings"]["failure_callback"] = []
    return config


def variants(settings, models, config: dict) -> dict[str, tuple[dict, dict[str, str]]]:
    """One (config, side files) per control: the generated config without that control (with it,
    for the cache); and the choices made for speed undone one at a time: the injection screen as a
    guardrail of its own, every Prometheus metric served, LiteLLM's failed otel import retried."""

    def edited(edit) -> dict:
        out = copy.deepcopy(config)
        out["guardrails"] = [g for g in (edit(g) for g in out.get("guardrails", [])) if g is not None]
        return out

    def drop(name: str, key: str | None = None):
        """Remove guardrail `name`, or only its litellm_params `key` (a guardrail left with
        neither patterns nor categories is removed)."""

        def edit(g: dict) -> dict | None:
            if g["guardrail_name"] != name:
                return g
            if key is None:
                return None
            g["litellm_params"].pop(key, None)
            return g if {"patterns", "categories"} & set(g["litellm_params"]) else None

        return edit

    files = config_files(config)
    out: dict[str, tuple[dict, dict[str, str]]] = {}
    names = {g["guardrail_name"] for g in config.get("guardrails", [])}
    if PROMPT_FILTER_NAME in names:
        out["ours - injection screening"] = (edited(drop(PROMPT_FILTER_NAME, "categories")), files)
        both = edited(drop(PROMPT_FILTER_NAME, "patterns"))
        both["guardrails"] = [g for g in both["guardrails"] if g["guardrail_name"] != ANSWER_FILTER_NAME]
        out["ours - PII masking (in and out)"] = (both, files)
    if ANSWER_FILTER_NAME in names:
        out["ours - answer masking"] = (edited(drop(ANSWER_FILTER_NAME)), files)
    if CACHE_GUARDRAIL_NAME in names:
        out["ours - cache scope"] = (edited(drop(CACHE_GUARDRAIL_NAME)), files)
    if PROMPT_FILTER_NAME in names and ANSWER_FILTER_NAME in names:
        split = copy.deepcopy(config)
        for g in split["guardrails"]:
            if g["guardrail_name"] == PROMPT_FILTER_NAME:
                categories = g["litellm_params"].pop("categories")
        screen = {
            "guardrail_name": "prompt-injection-screen",
            "litellm_params": {
                "guardrail": "litellm_content_filter",
                "mode": "pre_call",
                "default_on": True,
                "categories": categories,
            },
        }
        split["guardrails"].insert(1, screen)
        out["ours, injection as its own guardrail"] = (split, files)
    no_metrics = copy.deepcopy(config)
    no_metrics["litellm_settings"]["callbacks"] = []
    out["ours - prometheus"] = (no_metrics, files)
    every_metric = copy.deepcopy(config)
    if every_metric["litellm_settings"].pop("prometheus_metrics_config", None) is not None:
        out["ours, every Prometheus metric"] = (every_metric, files)
    if CACHE_GUARDRAIL_NAME not in names:
        gw = settings.gateway
        cache = ResponseCache(routes=[models[0].public_name], backend="local")
        cached = settings.model_copy(update={"gateway": gw.model_copy(update={"response_cache": cache})})
        cached_config = strip_for_bench(render_config(cached, models))
        out["ours + cache (local, all misses)"] = (cached_config, config_files(cached_config))
    hooks = HOOKS_PATH
    if hooks in files:
        retried = {**files, hooks: files[hooks].replace("\nremember_failed_otel_import()\n", "\n")}
        out["ours, otel import retried (before)"] = (config, retried)
    return out


async def load(proxy: RunningProxy, route: str, total: int, concurrency: int, offset: int) -> tuple:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(verify=proxy.tls, limits=limits, timeout=60, headers=headers) as client:

        async def worker():
            nonlocal errors
            for i in counter:
                body = {
                    "model": route,
                    "messages": [{"role": "user", "content": PROMPT.format(i=offset + i)}],
                }
                started = time.perf_counter()
                response = await client.post(f"{proxy.base}/v1/chat/completions", json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed, errors


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarise(name: str, samples: list[tuple[list[float], float, int, float]]) -> Result:
    latencies = [x for lat, _, _, _ in samples for x in lat]
    elapsed = sum(s[1] for s in samples)
    return Result(
        name,
        len(latencies) / elapsed,
        percentile(latencies, 0.5) * 1000,
        percentile(latencies, 0.99) * 1000,
        sum(s[3] for s in samples) / len(latencies) * 1000,
        sum(s[2] for s in samples),
    )


def profile_guardrail(config: dict, repeat: int = 2000) -> None:
    """Time, in-process, what each guardrail does per request on the benchmark's prompt and reply:
    the content filters' scans and the prompt-size check."""
    from litellm.proxy.guardrails.guardrail_hooks.litellm_content_filter.content_filter import (
        ContentFilterGuardrail,
    )

    from llmops.gateway import hooks

    def timed(label: str, call, *args) -> None:
        started = time.perf_counter()
        for _ in range(repeat):
            call(*args)
        print(f"  {label:<44} {(time.perf_counter() - started) / repeat * 1e6:8.1f} us")

    prompt = PROMPT.format(i=1)
    loop = asyncio.new_event_loop()
    for guardrail in config.get("guardrails", []):
        params, name = guardrail["litellm_params"], guardrail["guardrail_name"]
        if params["guardrail"] == "litellm_content_filter":
            fil = ContentFilterGuardrail(
                guardrail_name=name,
                patterns=params.get("patterns"),
                categories=params.get("categories"),
                event_hook=params["mode"],
            )
            if "pre_call" in params["mode"]:
                timed(f"{name}: scan prompt ({len(prompt)} chars)", fil._filter_single_text, prompt, [])
            if "post_call" in params["mode"]:
                timed(f"{name}: scan reply ({len(REPLY)} chars)", fil._filter_single_text, REPLY, [])
        elif params["guardrail"] == f"{HOOKS_MODULE}.PromptBudget":
            budget = hooks.PromptBudget(
                route_max_input_tokens=params["route_max_input_tokens"],
                default_max_input_tokens=params["default_max_input_tokens"],
            )
            data = {
                "model": config["model_list"][0]["model_name"],
                "messages": [{"role": "user", "content": prompt}],
            }
            timed(
                f"{name}: check",
                lambda hook, d: loop.run_until_complete(hook(None, None, d, "")),
                budget.async_pre_call_hook,
                data,
            )
    loop.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--rounds",
        type=int,
        default=6,
        help="slices the requests are split into, interleaved across configurations",
    )
    parser.add_argument("--stack", default="prod", help="a stack name, or the path of a stack file")
    parser.add_argument("--controls", action="store_true", help="also run each control toggled")
    parser.add_argument("--profile-guardrail", action="store_true")
    args = parser.parse_args(argv)

    stub = OpenAIStub("bench", record=False).start()
    stub.reply = REPLY
    settings, models = our_settings(args.stack, stub.url)
    config, route = strip_for_bench(render_config(settings, models)), models[0].public_name
    if args.profile_guardrail:
        print("content filter, in-process:")
        profile_guardrail(config)
    configs = {"bare": (bare_config(route, stub.url), {}), "ours": (config, config_files(config))}
    if args.controls:
        configs.update(variants(settings, models, config))
    proxies: dict[str, RunningProxy] = {}
    results: dict[str, list] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        try:
            for name, (cfg, files) in configs.items():
                proxies[name] = start_proxy(cfg, Path(tmp) / f"p{len(proxies)}", config_files=files)
            offset = 0
            for proxy in proxies.values():
                asyncio.run(load(proxy, route, args.warmup, args.concurrency, offset))
                offset += args.warmup
            # Interleaved slices: a change in the machine's load hits every configuration alike.
            chunk = -(-args.requests // args.rounds)
            for start in range(0, args.requests, chunk):
                size = min(chunk, args.requests - start)
                for name, proxy in proxies.items():
                    cpu = cpu_seconds(proxy.proc.pid)
                    sample = asyncio.run(load(proxy, route, size, args.concurrency, offset))
                    results[name].append((*sample, cpu_seconds(proxy.proc.pid) - cpu))
                    offset += size
        finally:
            for proxy in proxies.values():
                proxy.stop()
            stub.stop()
    summary = {name: summarise(name, samples) for name, samples in results.items()}
    bare = summary["bare"]
    print(
        f"\n{args.requests} requests in {args.rounds} interleaved slices at concurrency {args.concurrency} "
        f"after {args.warmup} warm-up; stack {args.stack}, route {route}; proxy over TLS; one local stub; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    header = f"{'config':<38} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/req':>10}"
    print(f"{header} {'p50 x':>6} {'p99 x':>6} {'rps x':>6} {'cpu x':>6} err")
    for r in summary.values():
        print(
            f"{r.name:<38} {r.rps:7.1f} {r.p50_ms:8.1f} {r.p99_ms:8.1f} {r.cpu_ms:10.2f} "
            f"{r.p50_ms / bare.p50_ms:6.2f} {r.p99_ms / bare.p99_ms:6.2f} {r.rps / bare.rps:6.2f} "
            f"{r.cpu_ms / bare.cpu_ms:6.2f} {r.errors}"
        )
    ours = summary["ours"]
    ratio = ours.p50_ms / bare.p50_ms
    print(f"\nours/bare: p50 {ratio:.2f}x (target 1.2x), throughput {ours.rps / bare.rps:.2f}x, ", end="")
    print(f"proxy CPU per request {ours.cpu_ms / bare.cpu_ms:.2f}x")
    return 1 if any(r.errors for r in summary.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
