"""Server TLS and mutual TLS credentials that follow certificate rotation.

Certificates are short-lived where cert-manager or a service mesh issues them, so the server
re-reads `--tls-cert`/`--tls-key`/`--tls-client-ca` when a new connection arrives and a file's
size or mtime changed (grpc's dynamic credentials ask on every handshake). A new pair is used
only once Python's ssl module has loaded it together (key matches certificate); a half-written
rotation keeps the previous certificates. Live connections keep theirs.
"""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path

import grpc

from poseaug_service.config import ServerConfig

log = logging.getLogger(__name__)


class TLSError(Exception):
    """The certificate files cannot be used at start-up (the CLI exits with this message)."""


class CertificateFiles:
    """The PEM files of the server's identity and (for mutual TLS) of the client CA."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None) -> None:
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self._lock = threading.Lock()
        self._stamp = self._stamps()
        self.current = self._load()

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def _paths(self) -> list[Path]:
        return [p for p in (self.cert, self.key, self.client_ca) if p is not None]

    def _stamps(self) -> tuple:
        try:
            return tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in self._paths())
        except OSError as exc:
            raise TLSError(f"TLS file {exc.filename}: {exc.strerror}") from None

    def _load(self) -> grpc.ServerCertificateConfiguration:
        """Read and check the files; raises TLSError naming the problem."""
        try:
            cert, key = self.cert.read_bytes(), self.key.read_bytes()
            client_ca = self.client_ca.read_bytes() if self.client_ca is not None else None
        except OSError as exc:
            raise TLSError(f"TLS file {exc.filename}: {exc.strerror}") from None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, ValueError) as exc:
            raise TLSError(
                f"--tls-cert {self.cert} / --tls-key {self.key} do not load as a pair: {exc}"
            ) from None
        if client_ca is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca)
            except (ssl.SSLError, ValueError) as exc:
                raise TLSError(f"--tls-client-ca {self.client_ca}: {exc}") from None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=client_ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by grpc per handshake: a new configuration after a complete rotation."""
        with self._lock:
            try:
                stamp = self._stamps()
            except TLSError:
                return None
            if stamp == self._stamp:
                return None
            try:
                self.current = self._load()
            except TLSError as exc:
                log.warning("certificate files changed but do not load yet (%s)", exc)
                return None
            self._stamp = stamp
            log.info("reloaded TLS certificates from %s", self.cert)
            return self.current


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS (or mutual TLS with --tls-client-ca) credentials, or None for plaintext."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    files = CertificateFiles(config.tls_cert, config.tls_key, config.tls_client_ca)
    return grpc.dynamic_ssl_server_credentials(
        files.current, files.fetch, require_client_authentication=files.mutual
    )
