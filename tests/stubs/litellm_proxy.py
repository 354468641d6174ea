"""Start the real LiteLLM proxy (litellm[proxy] 1.100.5) on 127.0.0.1 the way the gateway pod runs it.

Shared by tests/test_gateway_*.py and bench/gateway.py so both exercise the same thing: the config
`render_config` produced, written as config.yaml beside the files the ConfigMap carries
(`config_files`, e.g. the guardrail module), and `python -m litellm.proxy.proxy_cli` with the
container's own arguments (components/gateway_workload.py) where only the config path, port,
loopback host and certificate files differ. No database: the proxy runs with the master key only.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from components import gateway_workload
from llmops.gateway.config import MASTER_KEY_ENV, VLLM_API_KEY_ENV
from tests.local_servers import free_port, wait_http
from tests.tls_certs import issue

MASTER_KEY = "sk-test-master-key-not-a-secret"
VLLM_KEY = "vllm-test-key"
START_TIMEOUT_S = 180


@dataclass
class RunningProxy:
    base: str
    port: int
    log: Path
    config: dict
    tls: ssl.SSLContext
    ca_path: Path
    proc: subprocess.Popen
    started_in_s: float

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def pod_args(config_path: Path, port: int, certificates) -> list[str]:
    """The gateway container's own arguments, with this run's config, port, loopback host and
    certificate files in place of the pod's paths."""
    template = gateway_workload.pod_template(
        service_account="litellm", config_map="c", env_secret="e", tls_secret="t", plain_env={},
        config_checksum="x", certificate_checksum="y", cpu_request="1", cpu_limit="1", memory_mib=512,
    )  # fmt: skip
    args = list(template["spec"]["containers"][0]["args"])
    swap = {
        "--config": str(config_path),
        "--port": str(port),
        "--host": "127.0.0.1",
        "--ssl_certfile_path": str(certificates.cert_path),
        "--ssl_keyfile_path": str(certificates.key_path),
    }
    for flag, value in swap.items():
        args[args.index(flag) + 1] = value
    return args


def start_proxy(
    config: dict,
    workdir: Path,
    env: dict[str, str] | None = None,
    config_files: dict[str, str] | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> RunningProxy:
    """Write the config (and its side files) to `workdir` and start the proxy on a free port,
    waiting until /health/liveliness answers over TLS."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / gateway_workload.CONFIG_KEY
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    for name, text in (config_files or {}).items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text)
    port = free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "LITELLM_", "DATABASE_", "REDIS_")) and "proxy" not in key.lower()
    }
    environment.update(
        {
            MASTER_KEY_ENV: MASTER_KEY,
            VLLM_API_KEY_ENV: VLLM_KEY,
            "NO_PROXY": "127.0.0.1,localhost",
            "LITELLM_TELEMETRY": "False",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
    )
    environment.update(env or {})
    certificates = issue(workdir / "tls", ["gateway.test.llmops.internal"], ["127.0.0.1"])
    log_path = workdir / "proxy.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "litellm.proxy.proxy_cli", *pod_args(config_path, port, certificates)],
            cwd=workdir, env=environment, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cadata=certificates.ca_pem)
    try:
        wait_http(f"{base}/health/liveliness", timeout_s, proc, context)
    except Exception:
        proc.kill()
        proc.wait()
        raise AssertionError(f"proxy did not start:\n{log_path.read_text()[-4000:]}") from None
    ca_path = workdir / "tls" / "ca.pem"
    ca_path.write_text(certificates.ca_pem)
    return RunningProxy(base, port, log_path, config, context, ca_path, proc, time.monotonic() - started)
