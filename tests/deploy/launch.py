"""Start the real server with any flags (TLS, tokens, its own environment) and wait for it on
its plaintext health-only port, which works whatever the main port demands.

tests/support/server.running_server checks health over a plaintext channel on the main port,
which a TLS server cannot answer; this launcher shares its command line and shutdown.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from tests.support.server import HOST, REPO, free_port, server_command, stop_server, wait_serving

_SERVING_LINE = re.compile(r"serving \S+ on [^:\s]+:(\d+)")


@dataclass
class Launched:
    """A running server: its process, ports and log."""

    process: subprocess.Popen
    port: int
    health_port: int
    metrics_port: int
    log_path: Path

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def health_address(self) -> str:
        return f"{HOST}:{self.health_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without a stray $POSEAUG_TOKEN, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "POSEAUG_TOKEN"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def wait_for_port(proc: subprocess.Popen, log_path: Path, timeout: float = 60.0) -> int:
    """The gRPC port from the server's 'serving ... on HOST:PORT' log line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _SERVING_LINE.search(log_path.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
        time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"server did not start in {timeout}s:\n{log_path.read_text()}")


@contextlib.contextmanager
def launched(
    models: Path, *flags: str, env: Mapping[str, str] | None = None, check_exit: bool = True
) -> Iterator[Launched]:
    """Run `poseaug-serve --models models --health-port FREE ... flags`; SIGTERM at the end."""
    health_port, metrics_port = free_port(), free_port()
    command = server_command(
        models, "--health-port", str(health_port), *flags, metrics_port=metrics_port
    )
    fd, name = tempfile.mkstemp(prefix="poseaug-serve-", suffix=".log")
    log_path = Path(name)
    with os.fdopen(fd, "wb") as log_file:
        proc = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=dict(env) if env is not None else clean_env(),
        )
    try:
        port = wait_for_port(proc, log_path)
        with grpc.insecure_channel(f"{HOST}:{health_port}") as health_channel:
            wait_serving(health_channel, 60.0)
        yield Launched(proc, port, health_port, metrics_port, log_path)
    finally:
        code = stop_server(proc)
        text = log_path.read_text(errors="replace")
        log_path.unlink(missing_ok=True)
    if check_exit:
        assert code == 0, f"server exited with {code}:\n{text}"


def run_server_cli(
    models: Path, *flags: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`poseaug-serve` with flags that should make it exit at start-up."""
    return subprocess.run(
        server_command(models, *flags),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=dict(env) if env is not None else clean_env(),
    )
