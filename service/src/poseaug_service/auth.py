"""Bearer tokens: which ones are accepted, and the one a call presents.

Callers send `authorization: Bearer <token>` metadata (the poseaug client's `--token`). The
admission interceptor (admission.py) checks it before anything else, and answers
UNAUTHENTICATED without reading the request, so an unauthenticated caller costs no slot, no
request buffer, no model work and reaches no request parser.

Exempt (limits.py, `needs_token`): grpc.health.v1 only, because load balancers, kubelet gRPC
probes and Docker HEALTHCHECK cannot send tokens and health reveals nothing but SERVING/NOT_SERVING.
Server reflection is *not* exempt: it describes the whole API surface, and grpcurl can send the
header (`grpcurl -H 'authorization: Bearer ...'`), so it costs an operator nothing.

Tokens come from `--token-file` (one per line, `#` comments; several lines let a rotation
overlap old and new tokens) or else from $POSEAUG_TOKEN. The file is re-read when it changes
(a Kubernetes Secret update lands without a restart); a file that turns empty or unreadable
keeps the previous tokens rather than opening the server.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from pathlib import Path

from poseaug_client.contract import TOKEN_ENV

log = logging.getLogger(__name__)

_RECHECK_S = 1.0


class TokenError(Exception):
    """The token source cannot be used at start-up (the CLI exits with this message)."""


def parse_tokens(text: str) -> frozenset[str]:
    """Non-empty, non-comment lines, stripped."""
    lines = (line.strip() for line in text.splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


class TokenStore:
    """The accepted tokens, from a file (watched for changes) or a fixed set."""

    def __init__(self, path: Path | None = None, tokens: frozenset[str] = frozenset()) -> None:
        self._path = path
        self._tokens = tokens
        self._stamp: tuple[int, int] | None = None
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        if path is not None:
            self._tokens = self._read(path)
            self._stamp = _stamp(path)
        if not self._tokens:
            raise TokenError("no bearer token given")

    @staticmethod
    def _read(path: Path) -> frozenset[str]:
        try:
            tokens = parse_tokens(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TokenError(f"--token-file {path}: {exc.strerror or exc}") from None
        if not tokens:
            raise TokenError(f"--token-file {path}: holds no token")
        return tokens

    def _refresh(self) -> None:
        """Re-read the file when its size or mtime changed (at most once a second)."""
        now = time.monotonic()
        if self._path is None or now - self._checked < _RECHECK_S:
            return
        with self._lock:
            if now - self._checked < _RECHECK_S:
                return
            self._checked = now
            try:
                stamp = _stamp(self._path)
            except OSError:
                return
            if stamp == self._stamp:
                return
            try:
                self._tokens = self._read(self._path)
            except TokenError as exc:
                log.error("%s; keeping the previous tokens", exc)
                return
            self._stamp = stamp
            log.info("reloaded %d bearer token(s) from %s", len(self._tokens), self._path)

    def accepts(self, presented: str | None) -> bool:
        """Constant-time comparison against every accepted token."""
        if not presented:
            return False
        self._refresh()
        given = presented.encode()
        ok = False
        for token in self._tokens:
            ok |= hmac.compare_digest(given, token.encode())
        return ok


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def token_store(token_file: Path | None) -> TokenStore | None:
    """The store for `--token-file`, else $POSEAUG_TOKEN, else None (no token check)."""
    if token_file is not None:
        return TokenStore(path=token_file)
    env = os.environ.get(TOKEN_ENV, "").strip()
    return TokenStore(tokens=frozenset({env})) if env else None


def bearer_token(metadata) -> str | None:
    """The token of an `authorization: Bearer <token>` header (scheme case-insensitive)."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return None
