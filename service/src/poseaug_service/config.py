"""Server settings: one dataclass filled from the command line, so tests and the bench can
start the real server with exactly the flags an operator would use."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from poseaug_client.contract import TOKEN_ENV
from poseaug_service.limits import PARSE_COST

DEFAULT_MAX_POSES_PER_REQUEST = 1_048_576
DEFAULT_MAX_MESSAGE_MB = 256
DEFAULT_MAX_INFLIGHT_MB = 1024
DEFAULT_REQUEST_ARRIVAL_S = 10.0

# The lower bound of a numeric flag, kept on its field: parse_config checks every bounded one.
_POSITIVE = {"at_least": 1}
_NON_NEGATIVE = {"at_least": 0}


@dataclass(frozen=True)
class ServerConfig:
    """Everything `poseaug-serve` can be told; defaults suit a 2-core CPU host and a GPU alike."""

    models: Path
    host: str = "127.0.0.1"
    port: int = field(default=50051, metadata=_NON_NEGATIVE)
    metrics_port: int = field(default=0, metadata=_NON_NEGATIVE)
    metrics_host: str = "127.0.0.1"
    default_model: str = ""
    providers: str = "auto"
    intra_op_threads: int = field(default=0, metadata=_NON_NEGATIVE)
    inter_op_threads: int = field(default=0, metadata=_NON_NEGATIVE)
    busy_intra_op_threads: int = field(default=0, metadata=_NON_NEGATIVE)
    ort_spinning: bool = False
    event_loop: str = "auto"
    grpc_workers: int = field(default=8, metadata=_POSITIVE)
    max_concurrent_rpcs: int = field(default=1024, metadata=_POSITIVE)
    max_rpcs_per_peer: int = field(default=0, metadata=_NON_NEGATIVE)
    max_streams_per_peer: int = field(default=0, metadata=_NON_NEGATIVE)
    max_inflight_mb: int = field(default=DEFAULT_MAX_INFLIGHT_MB, metadata=_POSITIVE)
    request_arrival_s: float = DEFAULT_REQUEST_ARRIVAL_S
    batch_workers: int = field(default=1, metadata=_POSITIVE)
    max_batch: int = field(default=1024, metadata=_POSITIVE)
    augment_run_rows: int = field(default=4096, metadata=_POSITIVE)
    max_queue_delay_us: int = field(default=2000, metadata=_NON_NEGATIVE)
    max_queue: int = field(default=256, metadata=_POSITIVE)
    max_poses_per_request: int = field(default=DEFAULT_MAX_POSES_PER_REQUEST, metadata=_POSITIVE)
    max_message_mb: int = field(default=DEFAULT_MAX_MESSAGE_MB, metadata=_POSITIVE)
    grace_s: float = field(default=30.0, metadata=_NON_NEGATIVE)
    max_stream_tracks: int = field(default=256, metadata=_POSITIVE)
    track_idle_s: float = field(default=30.0, metadata=_POSITIVE)
    log_level: str = "INFO"
    health_port: int = field(default=0, metadata=_NON_NEGATIVE)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    token_file: Path | None = None
    reload_interval_s: float = field(default=0.0, metadata=_NON_NEGATIVE)
    max_connection_age_s: float = field(default=0.0, metadata=_NON_NEGATIVE)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 1024 * 1024

    @property
    def max_inflight_bytes(self) -> int:
        return self.max_inflight_mb * 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="poseaug-serve",
        description="Serve PoseAug model bundles (lifting and augmentation) over gRPC.",
    )
    p.add_argument("--models", type=Path, default=Path("models"), help="model repository folder")
    p.add_argument("--host", help="address to bind (gRPC and metrics)")
    p.add_argument("--port", type=int, help="gRPC port (0 picks a free one)")
    p.add_argument("--metrics-port", type=int, help="Prometheus HTTP port; 0 disables")
    p.add_argument(
        "--metrics-host",
        help="address of /metrics (no authentication): loopback unless set, whatever --host is",
    )
    p.add_argument("--default-model", help="overrides the manifest's default flag")
    p.add_argument(
        "--providers",
        choices=("auto", "cpu", "cuda"),
        help="ONNX Runtime providers: auto = CUDA when it loads, else CPU; cuda = fail without it",
    )
    p.add_argument("--intra-op-threads", type=int, help="ORT intra-op threads; 0 = ORT")
    p.add_argument("--inter-op-threads", type=int, help="ORT inter-op threads; 0 = ORT")
    p.add_argument(
        "--busy-intra-op-threads",
        type=int,
        help="ORT intra-op threads of CPU lifter runs made while other calls are in flight "
        "(a second session of the same model); 0 = all cores but one, which the event loop "
        "answering those calls needs",
    )
    p.add_argument(
        "--ort-spinning",
        action="store_true",
        help="let ORT threads spin between runs (faster on idle hosts, steals CPU from gRPC)",
    )
    p.add_argument(
        "--event-loop",
        choices=("auto", "uvloop", "asyncio"),
        help="the loop every RPC runs on: uvloop (libuv, about a fifth less CPU per call) or "
        "the standard library's; auto = uvloop when it is installed",
    )
    p.add_argument(
        "--grpc-workers",
        type=int,
        help="threads for blocking work off the event loop: parsing and answering large "
        "requests, augmentor runs",
    )
    p.add_argument(
        "--max-concurrent-rpcs",
        type=int,
        help="PoseAugService and reflection calls admitted at once (health has its own "
        "slots); RESOURCE_EXHAUSTED beyond it",
    )
    p.add_argument(
        "--max-rpcs-per-peer",
        type=int,
        help="of those, the most one peer address may hold; 0 = no per-peer bound (behind a "
        "proxy every call comes from one address)",
    )
    p.add_argument(
        "--max-streams-per-peer",
        type=int,
        help="StreamLift2Dto3D and StreamAugment streams one peer address may hold open at "
        "once; 0 = no per-peer bound (behind a proxy every call comes from one address)",
    )
    p.add_argument(
        "--max-inflight-mb",
        type=int,
        help="server-wide memory budget for what callers make the server hold, MiB: request "
        "messages (PARSE_COST times their size), stream track state, owed answers, queued lift "
        "work and responses (memory_budget.py); RESOURCE_EXHAUSTED, naming the part, beyond it",
    )
    p.add_argument(
        "--request-arrival-s",
        type=float,
        help="a call whose request message has not fully arrived this long after the call "
        "began is cut (DEADLINE_EXCEEDED)",
    )
    p.add_argument("--batch-workers", type=int, help="threads running ORT sessions")
    p.add_argument("--max-batch", type=int, help="poses per ORT run (1 = no batching)")
    p.add_argument(
        "--augment-run-rows",
        type=int,
        help="augmented poses per augmentor run (Augment's unit of work; larger runs cost less "
        "per pose, smaller ones hold the cores for less time)",
    )
    p.add_argument(
        "--max-queue-delay-us",
        type=int,
        help="longest wait for more callers before a batch runs, microseconds; a worker only "
        "waits when other calls are in flight, so a lone caller never waits (0 = never wait)",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        help="pending lift requests per model, and augmentation jobs; RESOURCE_EXHAUSTED beyond",
    )
    p.add_argument(
        "--max-poses-per-request",
        type=int,
        help="largest N (Lift2Dto3D) and N*count (Augment) of a unary request",
    )
    p.add_argument(
        "--max-message-mb",
        type=int,
        help="gRPC max receive/send message size, MiB",
    )
    p.add_argument("--grace-s", type=float, help="drain time for in-flight calls")
    p.add_argument(
        "--max-stream-tracks",
        type=int,
        help="live tracks one StreamLift2Dto3D stream may hold per model (temporal bundles), "
        "and poses per message of a stream with lookahead; INVALID_ARGUMENT beyond",
    )
    p.add_argument(
        "--track-idle-s",
        type=float,
        help="a stream forgets a track that sent no frame for this long, seconds",
    )
    p.add_argument("--log-level", help="Python logging level")
    p.add_argument(
        "--health-port",
        type=int,
        help="extra plaintext port serving only grpc.health.v1 (for kubelet gRPC probes and "
        "Docker HEALTHCHECK, which cannot do TLS or tokens); 0 = none",
    )
    sec = p.add_argument_group("security")
    sec.add_argument("--tls-cert", type=Path, metavar="PEM", help="server certificate chain")
    sec.add_argument("--tls-key", type=Path, metavar="PEM", help="server private key")
    sec.add_argument(
        "--tls-client-ca",
        type=Path,
        metavar="PEM",
        help="CA bundle for client certificates: turns on mutual TLS (clients without a "
        "certificate signed by it are refused during the handshake)",
    )
    sec.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help=f"bearer tokens, one per line, required on every RPC except grpc.health.v1; "
        f"re-read when it changes (default: ${TOKEN_ENV}; neither = no token check)",
    )
    ops = p.add_argument_group("operations")
    ops.add_argument(
        "--reload-interval-s",
        type=float,
        help="rescan --models this often and swap in new or changed bundles once they load "
        "and verify; 0 = only on SIGHUP",
    )
    ops.add_argument(
        "--max-connection-age-s",
        type=float,
        help="close client connections after this age (GOAWAY) so clients re-resolve DNS and "
        "spread over new replicas; 0 = never",
    )
    # The defaults are the dataclass's, written once.
    p.set_defaults(**{f.name: f.default for f in fields(ServerConfig) if f.default is not MISSING})
    return p


def parse_config(argv: list[str] | None = None) -> ServerConfig:
    """Parse and sanity-check flags; argparse exits with a usage message on bad values."""
    parser = build_parser()
    a = parser.parse_args(argv)
    for f in fields(ServerConfig):
        bound, value = f.metadata.get("at_least"), getattr(a, f.name)
        if bound is not None and value < bound:
            parser.error(f"--{f.name.replace('_', '-')} must be >= {bound}, got {value}")
    if (a.tls_cert is None) != (a.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if a.tls_client_ca is not None and a.tls_cert is None:
        parser.error("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
    if not a.request_arrival_s > 0:
        parser.error(f"--request-arrival-s must be > 0, got {a.request_arrival_s}")
    if a.max_inflight_mb < PARSE_COST * a.max_message_mb:
        parser.error(
            f"--max-inflight-mb must be >= {PARSE_COST} x --max-message-mb "
            f"({PARSE_COST * a.max_message_mb}) so that one largest request fits, "
            f"got {a.max_inflight_mb}"
        )
    if a.health_port and a.health_port == a.port:
        parser.error("--health-port must differ from --port")
    return ServerConfig(**{f.name: getattr(a, f.name) for f in fields(ServerConfig)})
