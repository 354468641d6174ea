"""Helpers for the prompt registry tests."""

from __future__ import annotations

import json
import threading
import uuid

from llmops.prompts import PromptFile, parse_prompt
from llmops.prompts.layout import CONFIG_KEY

EVAL_SET_SHA = "5e" * 32  # stands in for EvalSet.content_hash of the prompt's eval set


def make_prompt(name: str = "support-bot", text: str = "Hello {{ customer }}, how can I help?", **extra):
    data = {
        "name": name,
        "template": [{"role": "system", "content": text}, {"role": "user", "content": "{{ question }}"}],
        "variables": ["customer", "question"],
        "model": "llama-3-1-8b-instruct",
        "parameters": {"temperature": 0.2},
        "owner": "team-support",
        "classification": "confidential",
        **extra,
    }
    return parse_prompt(data, "test")


def harness_record(
    registry, name, version, *, passing=10, failing=0, threshold=0.9, baseline=None, **changes
):
    """A record shaped as `llmops eval run --record` builds it (docs/prompts.md, "Eval records"),
    for the stored version; `changes` replace fields after the verdict is computed, so a test can
    make a record claim what its cases do not show."""
    target = registry.get_version(name, version)
    results = [True] * passing + [False] * failing
    cases = [
        {
            "id": f"case-{i}",
            "passed": ok,
            "runs": [
                {
                    "passed": ok,
                    "output": "network" if ok else "hardware",
                    "latency_ms": 120.5,
                    "cost_usd": 0.00001,
                    "tokens": {"prompt": 40, "completion": 2},
                    "cached": False,
                    "assertions": [{"type": "equals", "passed": ok, "detail": "compared trimmed"}],
                }
            ],
        }
        for i, ok in enumerate(results)
    ]
    rate = round(passing / len(results), 4)
    record = {
        "kind": "harness",
        "prompt": name,
        "version": version,
        "content_sha256": target["content_hash"],
        "eval_set": {
            "path": f"evals/{name}.yaml",
            "prompt": name,
            "sha256": EVAL_SET_SHA,
            "threshold": threshold,
            "repeat": 1,
            "cases": len(results),
        },
        "threshold": threshold,
        "pass_rate": rate,
        "cases": cases,
        "baseline": baseline,
        "passed": passing / len(results) >= threshold and not (baseline or {}).get("regressed"),
        "models": {"candidate": target["prompt"]["model"], "baseline": None, "judge": None},
        "judge": None,
        "run_id": str(uuid.uuid4()),
        "cost_usd": 0.0001 * len(results),
    }
    record.update(changes)
    return record


def pass_eval(registry, name, version, **changes):
    """Record a passing eval run of the version, as `llmops eval run --record` would."""
    return registry.record_harness_eval(name, version, harness_record(registry, name, version, **changes))


def write_config(registry, **config):
    """The registry config as the stack writes it (components/prompt_store.py)."""
    s3 = registry.bucket.s3
    s3.put_object(Bucket=registry.bucket.name, Key=CONFIG_KEY, Body=json.dumps(config).encode())


def write_prompt_file(path, prompt: PromptFile):
    path.write_text(json.dumps(prompt.canonical()))  # JSON is YAML
    return path


class RaceGate:
    """Makes a race deterministic: every racer has read the shared state before any writes.

    Each racer's S3 client waits at a barrier on its first conditional PutObject to the
    contested keys, then the writes go through one at a time (real S3 serialises them; moto's
    in-process backend is not meant to be hit by racing threads)."""

    def __init__(self, racers: int, key_part: str):
        self.barrier = threading.Barrier(racers, timeout=30)
        self.lock = threading.Lock()
        self.key_part = key_part

    def client(self, s3):
        gate = self

        class Racer:
            waited = False

            def __getattr__(self, name):
                return getattr(s3, name)

            def put_object(self, **kwargs):
                conditional = "IfMatch" in kwargs or "IfNoneMatch" in kwargs
                contested = conditional and gate.key_part in kwargs["Key"]
                if contested and not self.waited:
                    self.waited = True
                    gate.barrier.wait()
                with gate.lock:
                    return s3.put_object(**kwargs)

        return Racer()
