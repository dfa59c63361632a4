"""Start the real `poseaug-serve` process for tests and benchmarks.

`running_server(models, ...)` launches `python -m poseaug_service.cli` on 127.0.0.1 with a
free port, waits for grpc.health.v1 SERVING, yields a `ServerHandle` (address, channel, stub,
process, log) and on exit sends SIGTERM and checks that the process exits with code 0.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from poseaug.v1 import poseaug_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
_SERVING_LINE = re.compile(r"serving \S+ on [^:\s]+:(\d+)")
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 512 * 1024 * 1024),
    ("grpc.max_send_message_length", 512 * 1024 * 1024),
]


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (for the metrics endpoint)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class ServerHandle:
    """A running server process and a channel to it."""

    process: subprocess.Popen
    port: int
    metrics_port: int
    log_path: Path
    channel: grpc.Channel

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def stub(self) -> poseaug_pb2_grpc.PoseAugServiceStub:
        return poseaug_pb2_grpc.PoseAugServiceStub(self.channel)

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def new_channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)


def server_command(models: Path, *flags: str, metrics_port: int = 0) -> list[str]:
    return [
        sys.executable,
        "-m",
        "poseaug_service.cli",
        "--models",
        str(models),
        "--host",
        HOST,
        "--port",
        "0",
        "--metrics-port",
        str(metrics_port),
        *flags,
    ]


def wait_serving(channel: grpc.Channel, timeout: float) -> None:
    """Poll grpc.health.v1 until the overall status is SERVING."""
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("server did not report SERVING in time")
        time.sleep(0.05)


def _read_port(proc: subprocess.Popen, log_path: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _SERVING_LINE.search(log_path.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited with code {proc.returncode}:\n{log_path.read_text()}"
            )
        time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"server did not start in {timeout}s:\n{log_path.read_text()}")


def stop_server(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    """SIGTERM and wait; kills (and returns -9) if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9


@contextlib.contextmanager
def running_server(
    models: Path,
    *flags: str,
    metrics: bool = True,
    start_timeout: float = 60.0,
    check_exit: bool = True,
) -> Iterator[ServerHandle]:
    """Run the real server with `flags`; SIGTERM at the end and (optionally) assert exit 0."""
    metrics_port = free_port() if metrics else 0
    fd, name = tempfile.mkstemp(prefix="poseaug-serve-", suffix=".log")
    log_path = Path(name)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with os.fdopen(fd, "wb") as log_file:
        proc = subprocess.Popen(
            server_command(models, *flags, metrics_port=metrics_port),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
    channel = None
    try:
        port = _read_port(proc, log_path, start_timeout)
        channel = grpc.insecure_channel(f"{HOST}:{port}", options=CHANNEL_OPTIONS)
        wait_serving(channel, start_timeout)
        handle = ServerHandle(proc, port, metrics_port, log_path, channel)
        yield handle
    finally:
        if channel is not None:
            channel.close()
        code = stop_server(proc)
        text = log_path.read_text(errors="replace")
        log_path.unlink(missing_ok=True)
    if check_exit:
        assert code == 0, f"server exited with {code}:\n{text}"
