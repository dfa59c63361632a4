"""The gRPC server: PoseAugService plus health, reflection, metrics and graceful shutdown.

Shutdown (SIGTERM/SIGINT): every health status goes NOT_SERVING, the server stops taking new
calls, in-flight calls get `grace_s` to finish, then the batch workers drain and stop.
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from poseaug.v1 import poseaug_pb2, poseaug_pb2_grpc
from poseaug_service.config import ServerConfig
from poseaug_service.metrics import Metrics
from poseaug_service.runtime import ModelRepository
from poseaug_service.servicer import PoseAugServicer

log = logging.getLogger(__name__)

SERVICE_NAME = poseaug_pb2.DESCRIPTOR.services_by_name["PoseAugService"].full_name


class PoseAugServer:
    """Owns the grpc.Server, the servicer (and its batchers), health and metrics."""

    def __init__(self, config: ServerConfig, repo: ModelRepository) -> None:
        self.config = config
        self.metrics = Metrics()
        self.servicer = PoseAugServicer(config, repo, self.metrics)
        size = config.max_message_bytes
        self.grpc_server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=config.grpc_workers, thread_name_prefix="grpc-worker"
            ),
            options=[
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", size),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        )
        poseaug_pb2_grpc.add_PoseAugServiceServicer_to_server(self.servicer, self.grpc_server)
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc_server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.grpc_server
        )
        self.port = self.grpc_server.add_insecure_port(f"{config.host}:{config.port}")
        if self.port == 0:
            raise OSError(f"cannot bind {config.host}:{config.port}")
        self._stopped = threading.Event()

    def start(self) -> None:
        if self.config.metrics_port:
            self.metrics.serve(self.config.host, self.config.metrics_port)
        self.grpc_server.start()
        serving = health_pb2.HealthCheckResponse.SERVING
        for service in ("", SERVICE_NAME):
            self.health.set(service, serving)
        log.info("serving %s on %s:%d", SERVICE_NAME, self.config.host, self.port)

    def stop(self, grace_s: float | None = None) -> None:
        """Graceful stop: NOT_SERVING, refuse new calls, let in-flight calls finish."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.grace_s if grace_s is None else grace_s
        self.health.enter_graceful_shutdown()
        log.info("shutting down: health NOT_SERVING, draining in-flight calls (grace %.1fs)", grace)
        self.grpc_server.stop(grace).wait()
        self.servicer.close()
        log.info("stopped")


def serve(config: ServerConfig) -> int:
    """Load models, serve until SIGTERM/SIGINT, shut down gracefully; returns the exit code."""
    repo = ModelRepository.load(config)
    server = PoseAugServer(config, repo)
    stop = threading.Event()

    def on_signal(signum: int, _frame) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    while not stop.wait(3600):
        pass
    server.stop()
    return 0
