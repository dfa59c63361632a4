"""Client settings in one place, shared by the sync and asyncio clients and the CLI."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from poseaug_client.contract import TOKEN_ENV
from poseaug_client.errors import invalid_argument

DEFAULT_SERVER = "127.0.0.1:50051"
DEFAULT_PORT = 50051
#: Same ceiling as the server's: a million poses fit in one message.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class ClientConfig:
    """Everything that shapes how the client talks to the servers.

    `timeout` is the deadline of one RPC (its retries included); streams use `stream_timeout`
    (None: no deadline, since a video stream may run for hours). `max_attempts` counts the first
    try: 1 disables retries. Only UNAVAILABLE is retried, with exponential backoff.
    """

    servers: tuple[str, ...] = (DEFAULT_SERVER,)
    timeout: float | None = 30.0
    stream_timeout: float | None = None
    max_attempts: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    backoff_multiplier: float = 2.0
    max_poses_per_call: int = 65536
    max_message_bytes: int = MAX_MESSAGE_BYTES
    token: str | None = None
    tls: bool = False
    tls_ca: bytes | None = None
    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    tls_server_name: str | None = None

    def __post_init__(self) -> None:
        if not self.servers:
            raise invalid_argument("servers: give at least one HOST:PORT")
        if self.max_attempts < 1:
            raise invalid_argument("max_attempts: must be >= 1")
        if self.max_poses_per_call < 1:
            raise invalid_argument("max_poses_per_call: must be >= 1")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise invalid_argument("backoff: need 0 <= initial_backoff <= max_backoff")
        for name in ("timeout", "stream_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise invalid_argument(f"{name}: must be > 0 seconds (or None)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise invalid_argument("tls_cert/tls_key: mutual TLS needs both")

    @property
    def secure(self) -> bool:
        return self.tls or self.tls_ca is not None or self.tls_cert is not None

    @classmethod
    def create(
        cls,
        servers: str | Sequence[str] = DEFAULT_SERVER,
        *,
        token: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
        tls_ca: str | os.PathLike[str] | bytes | None = None,
        tls_cert: str | os.PathLike[str] | bytes | None = None,
        tls_key: str | os.PathLike[str] | bytes | None = None,
        **options: object,
    ) -> ClientConfig:
        """Build a config from user-friendly arguments (paths, comma-separated servers)."""
        return cls(
            servers=parse_servers(servers),
            token=resolve_token(token, token_file),
            tls_ca=_read_pem(tls_ca, "tls_ca"),
            tls_cert=_read_pem(tls_cert, "tls_cert"),
            tls_key=_read_pem(tls_key, "tls_key"),
            **options,  # type: ignore[arg-type]
        )


def parse_servers(servers: str | Sequence[str]) -> tuple[str, ...]:
    """ "a:1,b:2" or ["a:1", "b"] -> ("a:1", "b:50051"); a missing port means 50051."""
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    parsed = []
    for item in items:
        address = str(item).strip()
        if not address:
            continue
        host, port = split_host_port(address)
        parsed.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if not parsed:
        raise invalid_argument("servers: give at least one HOST:PORT")
    return tuple(parsed)


def split_host_port(address: str) -> tuple[str, int]:
    """("host", port) of "host:port", "host", "[::1]:port" or "[::1]"."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif address.count(":") == 1:
        host, _, port_text = address.partition(":")
    else:
        host, port_text = address, ""
    if not host:
        raise invalid_argument(f"server: no host in {address!r}")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise invalid_argument(f"server: bad port in {address!r}")
    return host, int(port_text)


def resolve_token(token: str | None, token_file: str | os.PathLike[str] | None) -> str | None:
    """The bearer token: the argument, else the file's content, else $POSEAUG_TOKEN."""
    if token:
        return token.strip()
    if token_file is not None:
        try:
            text = Path(token_file).read_text().strip()
        except OSError as exc:
            raise invalid_argument(
                f"token_file: cannot read {token_file}: {exc.strerror}"
            ) from None
        if not text:
            raise invalid_argument(f"token_file: {token_file} is empty")
        return text
    return os.environ.get(TOKEN_ENV, "").strip() or None


def _read_pem(value: str | os.PathLike[str] | bytes | None, name: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise invalid_argument(f"{name}: cannot read {value}: {exc.strerror}") from None
