"""Prometheus metrics on their own registry and HTTP port (prometheus-client).

Served names (all prefixed `poseaug_`): requests_total and errors_total by method and gRPC
code, request_latency_seconds by method, batch_size (poses per ORT run), queue_delay_seconds,
poses_total by method (rate() gives poses/s), inflight_requests by method, queue_depth,
auth_failures_total by method and reason (refused before the handler: not in requests_total),
reloads_total by result, model_info (1 per served bundle, labelled with its version, so a
rollout of a new bundle version is visible per replica), refused_bundles (1 per bundle folder
the server refuses, labelled with the reason), admission_refusals_total by method and reason
(slots, peer_slots, stream_slots, peer_streams, budget, too_large, arrival: refused before the
handler), inflight_bytes (the memory budget in use, all parts), memory_budget_bytes by part
and memory_budget_refusals_total by part (memory_budget.py) and event_loop_lag_seconds (how
late the event loop runs: a gauge of the last sample, the largest since start, and a
histogram).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from poseaug_service.batcher import BatchStats
from poseaug_service.memory_budget import MEMORY_PARTS, ByteBudget

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_DELAY_BUCKETS = (1e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1, 5)


@dataclass(frozen=True)
class CallMetrics:
    inflight: Gauge
    latency: Histogram
    ok: Counter
    poses: Counter


class Metrics:
    """All server metrics; a fresh registry per server keeps tests and processes apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._calls: dict[str, CallMetrics] = {}
        self._lag_max = 0.0
        r = self.registry
        self.requests = Counter(
            "poseaug_requests",
            "RPCs finished, by method and gRPC code",
            ["method", "code"],
            registry=r,
        )
        self.errors = Counter(
            "poseaug_errors",
            "RPCs finished with a code other than OK",
            ["method", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "poseaug_request_latency_seconds",
            "Wall time of an RPC in the server",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "poseaug_batch_size",
            "Poses per ONNX Runtime run",
            ["model", "kind"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.queue_delay = Histogram(
            "poseaug_queue_delay_seconds",
            "Time from a request's arrival in the batch queue to its first run",
            ["model"],
            buckets=_DELAY_BUCKETS,
            registry=r,
        )
        self.poses = Counter(
            "poseaug_poses", "Output poses produced, by method", ["method"], registry=r
        )
        self.inflight = Gauge(
            "poseaug_inflight_requests", "RPCs being handled", ["method"], registry=r
        )
        self.queue_depth = Gauge(
            "poseaug_queue_depth", "Requests waiting in the lift batch queue", ["model"], registry=r
        )
        self.auth_failures = Counter(
            "poseaug_auth_failures",
            "RPCs refused UNAUTHENTICATED by the token check, by method and reason",
            ["method", "reason"],
            registry=r,
        )
        self.reloads = Counter(
            "poseaug_reloads",
            "Model bundles (re)loaded, removed or refused by repository rescans",
            ["result"],
            registry=r,
        )
        self.admission_refusals = Counter(
            "poseaug_admission_refusals",
            "Calls refused before their handler ran, by method and reason (slots, peer_slots, "
            "stream_slots, peer_streams, budget, too_large, arrival)",
            ["method", "reason"],
            registry=r,
        )
        self.inflight_bytes = Gauge(
            "poseaug_inflight_bytes",
            "Bytes reserved from the memory budget --max-inflight-mb, all parts together",
            registry=r,
        )
        self.memory_budget = Gauge(
            "poseaug_memory_budget_bytes",
            "Bytes reserved from --max-inflight-mb, by part: "
            + "; ".join(f"{p}: {what}" for p, what in MEMORY_PARTS.items()),
            ["part"],
            registry=r,
        )
        self.memory_refusals = Counter(
            "poseaug_memory_budget_refusals",
            "Reservations the memory budget refused (RESOURCE_EXHAUSTED), by part",
            ["part"],
            registry=r,
        )
        self.loop_lag = Gauge(
            "poseaug_event_loop_lag_seconds",
            "How late the event loop ran its last timer sample (a frozen loop delays every call)",
            registry=r,
        )
        self.loop_lag_max = Gauge(
            "poseaug_event_loop_lag_max_seconds",
            "The largest event loop lag sampled since the server started",
            registry=r,
        )
        self.loop_lag_histogram = Histogram(
            "poseaug_event_loop_lag_samples_seconds",
            "How late the event loop ran its timer samples (one every 0.1 s)",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.refused_bundles = Gauge(
            "poseaug_refused_bundles",
            "1 for every bundle folder refused at load or reload, labelled with the reason",
            ["model", "reason"],
            registry=r,
        )
        self.model_info = Gauge(
            "poseaug_model_info",
            "1 for every served model bundle, labelled with its version",
            ["model", "version"],
            registry=r,
        )

    def call_metrics(self, method: str) -> CallMetrics:
        """The labelled children one method's calls touch, looked up once (labels() costs a
        lock and a dict lookup, which adds up on a hot path of small calls)."""
        found = self._calls.get(method)
        if found is None:
            found = self._calls[method] = CallMetrics(
                inflight=self.inflight.labels(method),
                latency=self.latency.labels(method),
                ok=self.requests.labels(method, "OK"),
                poses=self.poses.labels(method),
            )
        return found

    def set_models(self, versions: dict[str, str]) -> None:
        """Publish the served bundle versions (model_info), dropping versions gone."""
        self.model_info.clear()
        for name, version in versions.items():
            self.model_info.labels(model=name, version=version).set(1)

    def set_refused(self, refused: dict[str, str]) -> None:
        """Publish the refused bundle folders and why (reasons cut to 200 characters)."""
        self.refused_bundles.clear()
        for name, reason in refused.items():
            self.refused_bundles.labels(model=name, reason=reason[:200]).set(1)

    def watch_budget(self, budget: ByteBudget) -> None:
        """Publish the memory budget in use, in all and by part (read at each scrape)."""
        self.inflight_bytes.set_function(lambda: budget.used)
        for part in MEMORY_PARTS:
            self.memory_budget.labels(part).set_function(lambda p=part: budget.parts[p])
            self.memory_refusals.labels(part)  # every part shows, 0 until refused

    def memory_refused(self, part: str) -> None:
        self.memory_refusals.labels(part).inc()

    def record_loop_lag(self, seconds: float) -> None:
        self.loop_lag.set(seconds)
        if seconds > self._lag_max:
            self._lag_max = seconds
            self.loop_lag_max.set(seconds)
        self.loop_lag_histogram.observe(seconds)

    def batch_stats(self, model: str) -> BatchStats:
        batch = self.batch_size.labels(model=model, kind="lift")
        delay = self.queue_delay.labels(model=model)
        depth = self.queue_depth.labels(model=model)
        return BatchStats(on_batch=batch.observe, on_queue_delay=delay.observe, on_depth=depth.set)

    def serve(self, host: str, port: int) -> None:
        """Expose /metrics on host:port (daemon thread)."""
        start_http_server(port, addr=host, registry=self.registry)
        log.info("Prometheus metrics on http://%s:%d/metrics", host, port)
