"""Helpers for the prompt registry tests."""

from __future__ import annotations

import json
import threading

from llmops.prompts import PromptFile, parse_prompt


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
