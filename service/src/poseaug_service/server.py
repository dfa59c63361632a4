"""The gRPC server (grpc.aio): PoseAugService plus health, reflection, metrics, TLS, bearer
tokens, model hot reload and graceful shutdown.

One asyncio event loop serves every RPC; ONNX Runtime runs in the batch workers' threads and
blocking work in the servicer's pool. Compared with grpcio's thread-per-call server this saves a
thread handoff per call in each direction, which on a small CPU is most of a small call's cost.

Shutdown (SIGTERM/SIGINT): every health status goes NOT_SERVING, the server stops taking new
calls, in-flight calls get `grace_s` to finish, then the batch workers drain and stop.
SIGHUP rescans the model repository at once (as `--reload-interval-s` does periodically).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from poseaug.v1 import poseaug_pb2, poseaug_pb2_grpc
from poseaug_service.admission import Admission, TokenInterceptor, grpc_call_limit
from poseaug_service.allocator import Trimmer
from poseaug_service.auth import token_store
from poseaug_service.config import ServerConfig
from poseaug_service.limits import SMALL_MESSAGE_BYTES, MethodLimits, method_limits
from poseaug_service.loop_lag import LoopLagMonitor
from poseaug_service.memory_budget import ByteBudget
from poseaug_service.metrics import Metrics
from poseaug_service.prescan import prechecks
from poseaug_service.reload import ModelReloader
from poseaug_service.repository import ModelRepository, ReloadReport
from poseaug_service.request_reader import RequestReader, add_servicer_safely
from poseaug_service.servicer import PoseAugServicer
from poseaug_service.tls import server_credentials

log = logging.getLogger(__name__)

SERVICE_NAME = poseaug_pb2.DESCRIPTOR.services_by_name["PoseAugService"].full_name


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _server_options(config: ServerConfig) -> list[tuple[str, int]]:
    size = config.max_message_bytes
    options = [
        ("grpc.max_receive_message_length", size),
        ("grpc.max_send_message_length", size),
        ("grpc.so_reuseport", 0),
        # No bandwidth-delay probing: it grows every stream's flow-control window, so calls
        # whose message the server is not reading yet (refused, or waiting for a slot) could
        # make it buffer megabytes each. A message being read gets a window of its own size.
        ("grpc.http2.bdp_probe", 0),
    ]
    if config.max_connection_age_s > 0:
        # GOAWAY after this age: clients reconnect, re-resolve a headless Service's DNS and
        # so spread over replicas added since; streams get `grace_s` to finish first.
        options += [
            ("grpc.max_connection_age_ms", int(config.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(config.grace_s * 1000)),
        ]
    return options


class PoseAugServer:
    """Owns the grpc.aio servers, the servicer (and its batchers), health, metrics and reload.

    Build it inside the running event loop that will serve it."""

    def __init__(self, config: ServerConfig, repo: ModelRepository) -> None:
        self.config = config
        self.repo = repo
        self.metrics = Metrics()
        self.metrics.set_models({n: m.version for n, m in repo.models.items()})
        self.metrics.set_refused(dict(repo.state.refused))
        # One memory budget for everything callers make the server hold (memory_budget.py).
        self.budget = ByteBudget(config.max_inflight_bytes, self.metrics.memory_refused)
        self.metrics.watch_budget(self.budget)
        self.servicer = PoseAugServicer(config, repo, self.metrics, self.budget)
        # Admission (admission.py): with tokens, the token from the metadata before any
        # request byte is read; then (request_reader.py) a slot of the method's pool, each
        # message read in time, within its size and the byte budget, big ones parsed off the
        # event loop.
        tokens = token_store(config.token_file)
        refusals = self.metrics.admission_refusals

        def refused(method: str, reason: str) -> None:
            refusals.labels(method, reason).inc()

        def limits(method: str) -> MethodLimits:
            return method_limits(method, config.max_message_bytes, config.request_arrival_s)

        # Protobuf parsing holds the GIL, so one thread parses as fast as several, and keeps
        # its allocations in one malloc arena (several made RSS creep under storms).
        self.parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="poseaug-parse")
        self._reader = partial(
            RequestReader,
            executor=self.parser,
            limits=limits,
            prechecks=prechecks(config.max_poses_per_request),
        )
        reader = self._reader(Admission(config, self.budget, refused))
        interceptors: list[grpc.aio.ServerInterceptor] = []
        if tokens is not None:
            failures = self.metrics.auth_failures
            interceptors.append(
                TokenInterceptor(config, tokens, lambda m, r: failures.labels(m, r).inc())
            )
        self.grpc_server = grpc.aio.server(
            options=_server_options(config),
            maximum_concurrent_rpcs=grpc_call_limit(config),
            interceptors=interceptors or None,
        )
        self.health = health.aio.HealthServicer()
        services = (
            (poseaug_pb2_grpc.add_PoseAugServiceServicer_to_server, self.servicer),
            (health_pb2_grpc.add_HealthServicer_to_server, self.health),
            (
                reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
                reflection.aio.ReflectionServicer(
                    (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
                ),
            ),
        )
        for add_to_server, servicer in services:
            add_servicer_safely(add_to_server, servicer, self.grpc_server, reader)
        address = f"{config.host}:{config.port}"
        credentials = server_credentials(config)
        if credentials is None:
            self.port = self.grpc_server.add_insecure_port(address)
        else:
            self.port = self.grpc_server.add_secure_port(address, credentials)
        if self.port == 0:
            raise OSError(f"cannot bind {address}")
        self.health_server, self.health_port = self._health_only_server(refused)
        self.reloader = ModelReloader(repo, config.reload_interval_s, self._reloaded)
        self.loop_lag = LoopLagMonitor(self.metrics.record_loop_lag)
        # Freed memory back to the system after bursts and when idle (allocator.py).
        self.trimmer = Trimmer(
            lambda: self.budget.used,
            self.budget.high_water,
            lambda: self.servicer.active_calls == 0,
        )
        self._describe_security(tokens is not None, credentials is not None)
        self._stopped = False

    def _health_only_server(
        self, refused: Callable[[str, str], None]
    ) -> tuple[grpc.aio.Server | None, int]:
        """A plaintext grpc.health.v1-only port for probes that cannot speak TLS or tokens,
        with health pools of its own (callers there cannot take the main port's)."""
        if not self.config.health_port:
            return None, 0
        # Probes send a few bytes: gRPC itself refuses anything bigger on this port.
        options = [
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", SMALL_MESSAGE_BYTES),
        ]
        server = grpc.aio.server(
            options=options, maximum_concurrent_rpcs=grpc_call_limit(self.config)
        )
        reader = self._reader(Admission(self.config, self.budget, refused))
        add_servicer_safely(
            health_pb2_grpc.add_HealthServicer_to_server, self.health, server, reader
        )
        address = f"{self.config.host}:{self.config.health_port}"
        port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot bind health port {address}")
        return server, port

    def _describe_security(self, tokens: bool, tls: bool) -> None:
        mode = "mutual TLS" if self.config.tls_client_ca else "TLS" if tls else "plaintext"
        log.info("transport: %s; bearer tokens: %s", mode, "required" if tokens else "off")
        if _is_loopback(self.config.host):
            return
        where = f"{self.config.host}:{self.port}"
        if tokens and not tls:
            log.warning(
                "bearer tokens travel in plaintext on %s: add --tls-cert/--tls-key or "
                "terminate TLS in front of the server",
                where,
            )
        if not tokens and not self.config.tls_client_ca:
            log.warning(
                "anyone who reaches %s may call the service: set --token-file, "
                "$POSEAUG_TOKEN or --tls-client-ca",
                where,
            )

    def _reloaded(self, report: ReloadReport) -> None:
        for result, names in (
            ("loaded", report.loaded),
            ("removed", report.removed),
            ("failed", report.failed),
        ):
            if names:
                self.metrics.reloads.labels(result).inc(len(names))
        for name in report.loaded:
            model = self.repo.models.get(name)
            if model is not None:
                log.info("now serving %s version %s", name, model.version or "?")
        self.metrics.set_models({n: m.version for n, m in self.repo.models.items()})
        self.metrics.set_refused(dict(self.repo.state.refused))

    async def start(self) -> None:
        if self.config.metrics_port:
            self.metrics.serve(self.config.metrics_host, self.config.metrics_port)
            if not _is_loopback(self.config.metrics_host):
                log.warning(
                    "/metrics on %s:%d answers anyone who reaches it (no authentication)",
                    self.config.metrics_host,
                    self.config.metrics_port,
                )
        self.loop_lag.start()
        self.trimmer.start()
        await self.grpc_server.start()
        if self.health_server is not None:
            await self.health_server.start()
            log.info("grpc.health.v1 also on plaintext %s:%d", self.config.host, self.health_port)
        self.reloader.start()
        serving = health_pb2.HealthCheckResponse.SERVING
        for service in ("", SERVICE_NAME):
            await self.health.set(service, serving)
        log.info("serving %s on %s:%d", SERVICE_NAME, self.config.host, self.port)

    def reload(self) -> None:
        """Rescan the model repository now (from a signal handler: it only sets an event)."""
        self.reloader.trigger()

    async def stop(self, grace_s: float | None = None) -> None:
        """Graceful stop: NOT_SERVING, refuse new calls, let in-flight calls finish."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.config.grace_s if grace_s is None else grace_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        # New calls get UNAVAILABLE from here on; calls in flight get `grace` seconds to finish
        # before gRPC itself stops (and cancels what is left).
        self.servicer.closing = True
        await self.health.enter_graceful_shutdown()
        log.info("shutting down: health NOT_SERVING, draining in-flight calls (grace %.1fs)", grace)
        while self.servicer.active_calls and loop.time() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.to_thread(self.reloader.stop)
        await self.grpc_server.stop(max(0.0, deadline - loop.time()))
        if self.health_server is not None:
            await self.health_server.stop(0)
        await asyncio.to_thread(self.servicer.close)
        self.parser.shutdown(wait=False)
        await self.loop_lag.stop()
        await self.trimmer.stop()
        log.info("stopped")


async def serve_async(config: ServerConfig) -> int:
    """Load models, serve until SIGTERM/SIGINT, shut down gracefully; returns the exit code."""
    repo = ModelRepository.load(config)
    server = PoseAugServer(config, repo)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    def on_hangup() -> None:
        log.info("received SIGHUP: rescanning %s", config.models)
        server.reload()

    loop.add_signal_handler(signal.SIGTERM, on_signal, signal.SIGTERM)
    loop.add_signal_handler(signal.SIGINT, on_signal, signal.SIGINT)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    await server.start()
    await stop.wait()
    await server.stop()
    return 0


def event_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for `--event-loop` (None: the standard library's loop)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise OSError("--event-loop uvloop: the uvloop package is not installed") from None
        return None
    return uvloop.new_event_loop


def serve(config: ServerConfig) -> int:
    factory = event_loop_factory(config.event_loop)
    log.info("event loop: %s", "uvloop" if factory is not None else "asyncio")
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(serve_async(config))
