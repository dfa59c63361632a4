"""A TLS-terminating, token-checking gRPC gateway in front of the real server, for tests.

The server speaks plaintext on loopback and does no auth; deployments put TLS and bearer-token
checks in front of it (an ingress). This gateway plays that part so the client's TLS, mutual
TLS and token options are exercised end to end: it forwards every call byte for byte to the
real server and answers UNAUTHENTICATED when the token is wrong. Certificates come from the
openssl command line (tests skip without it).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from poseaug.v1 import poseaug_pb2

_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


@dataclass
class Certificates:
    """PEM files: a test CA, a server certificate for 127.0.0.1/localhost, a client one."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certificates(folder: Path) -> Certificates:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not found: TLS tests need it to make test certificates")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=poseaug-test-ca")  # fmt: skip
    for name, san in (("server", "DNS:localhost,IP:127.0.0.1"), ("client", "DNS:client")):
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        (folder / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "1",
            "-extfile", f"{name}.ext")  # fmt: skip
    return Certificates(
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "client.pem",
        folder / "client.key",
    )


def _streaming_kinds() -> dict[str, tuple[bool, bool]]:
    """Method path -> (client streams, server streams), from the contract."""
    service = poseaug_pb2.DESCRIPTOR.services_by_name["PoseAugService"]
    kinds = {
        f"/{service.full_name}/{m.name}": (m.client_streaming, m.server_streaming)
        for m in service.methods
    }
    kinds[_HEALTH_CHECK] = (False, False)
    return kinds


class _Forwarder(grpc.GenericRpcHandler):
    def __init__(self, upstream: grpc.Channel, token: str | None) -> None:
        self.upstream = upstream
        self.token = token
        self.kinds = _streaming_kinds()

    def service(self, details: grpc.HandlerCallDetails):
        kind = self.kinds.get(details.method)
        if kind is None:
            return None
        metadata = dict(details.invocation_metadata)
        authorized = self.token is None or metadata.get("authorization") == f"Bearer {self.token}"
        method = details.method

        def check(context: grpc.ServicerContext) -> None:
            if not authorized:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        def forward_error(context: grpc.ServicerContext, error: grpc.RpcError) -> None:
            context.abort(error.code(), error.details())

        if kind == (False, False):

            def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
                check(context)
                try:
                    return self.upstream.unary_unary(method)(request, timeout=30)
                except grpc.RpcError as error:
                    forward_error(context, error)

            return grpc.unary_unary_rpc_method_handler(unary)
        if kind == (False, True):

            def server_stream(request: bytes, context: grpc.ServicerContext):
                check(context)
                try:
                    yield from self.upstream.unary_stream(method)(request, timeout=60)
                except grpc.RpcError as error:
                    forward_error(context, error)

            return grpc.unary_stream_rpc_method_handler(server_stream)

        def bidi(requests: Iterator[bytes], context: grpc.ServicerContext):
            check(context)
            try:
                yield from self.upstream.stream_stream(method)(requests, timeout=60)
            except grpc.RpcError as error:
                forward_error(context, error)

        return grpc.stream_stream_rpc_method_handler(bidi)


@contextlib.contextmanager
def tls_gateway(
    upstream_address: str, certs: Certificates, *, token: str | None, mutual: bool
) -> Iterator[str]:
    """Serve TLS on a free loopback port, forwarding to `upstream_address`; yields the address."""
    upstream = grpc.insecure_channel(
        upstream_address, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        handlers=[_Forwarder(upstream, token)],
        options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)],
    )
    credentials = grpc.ssl_server_credentials(
        [(certs.server_key.read_bytes(), certs.server_cert.read_bytes())],
        root_certificates=certs.ca.read_bytes() if mutual else None,
        require_client_auth=mutual,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)
        upstream.close()
