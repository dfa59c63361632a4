"""Deployment options end to end: TLS, mutual TLS and bearer tokens (through a TLS gateway in
front of the real server), and round-robin over several real servers."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest

from poseaug_client import PoseAugClient, PoseAugError
from tests.clients.tls_gateway import Certificates, make_certificates, tls_gateway
from tests.support.bundles import make_bundle
from tests.support.server import running_server

TOKEN = "s3cret-test-token"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def gateway(server, certs):
    """Mutual TLS and a bearer token, as an ingress in front of the server would ask."""
    with tls_gateway(server.address, certs, token=TOKEN, mutual=True) as address:
        yield address


def tls_client(address: str, certs: Certificates, **options) -> PoseAugClient:
    return PoseAugClient(
        address, tls_ca=certs.ca, tls_cert=certs.client_cert, tls_key=certs.client_key, **options
    )


def test_mutual_tls_with_token_reaches_the_server(gateway, certs, client, keypoints) -> None:
    with tls_client(gateway, certs, token=TOKEN) as secure:
        assert secure.health() == "SERVING"
        np.testing.assert_array_equal(secure.lift(keypoints), client.lift(keypoints))
        batches = list(secure.lift_stream([keypoints[:10], keypoints[10:]]))
        np.testing.assert_array_equal(np.concatenate(batches), client.lift(keypoints))
        chunks = list(secure.augment_stream(keypoints[:3, :, :1].repeat(3, -1), chunk_size=2))
        assert [c.offset for c in chunks] == [0, 2]


def test_token_from_file_and_environment(gateway, certs, tmp_path, monkeypatch) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with tls_client(gateway, certs, token_file=token_file) as secure:
        assert secure.health() == "SERVING"
    monkeypatch.setenv("POSEAUG_TOKEN", TOKEN)
    with tls_client(gateway, certs) as secure:
        assert [m.name for m in secure.models()]


def test_missing_or_wrong_token_is_unauthenticated(gateway, certs, monkeypatch) -> None:
    monkeypatch.delenv("POSEAUG_TOKEN", raising=False)
    for token in (None, "wrong"):
        client = tls_client(gateway, certs, token=token, max_attempts=3)
        with client, pytest.raises(PoseAugError) as info:
            client.models()
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_tls_failures_are_unavailable(gateway, server, certs, tmp_path) -> None:
    no_client_cert = PoseAugClient(gateway, tls_ca=certs.ca, token=TOKEN, max_attempts=1)
    with no_client_cert, pytest.raises(PoseAugError) as info:
        no_client_cert.models()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    stranger = make_certificates(tmp_path)  # a CA the gateway's certificate is not from
    wrong_ca = tls_client(gateway, stranger, token=TOKEN, max_attempts=1)
    with wrong_ca, pytest.raises(PoseAugError) as info:
        wrong_ca.models()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    tls_to_plaintext = tls_client(server.address, certs, max_attempts=1)
    with tls_to_plaintext, pytest.raises(PoseAugError) as info:
        tls_to_plaintext.models()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_half_a_client_key_pair_is_refused(certs) -> None:
    with pytest.raises(PoseAugError) as info:
        PoseAugClient("127.0.0.1:1", tls_ca=certs.ca, tls_cert=certs.client_cert)
    assert info.value.message.startswith("tls_cert/tls_key")


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    """Two servers whose default models have different names, so answers tell them apart."""
    handles = []
    with running_server(_models(tmp_path_factory, "alpha")) as a:
        handles.append(a)
        with running_server(_models(tmp_path_factory, "beta")) as b:
            handles.append(b)
            yield handles


def _models(factory: pytest.TempPathFactory, name: str) -> Path:
    root = factory.mktemp(f"models-{name}")
    make_bundle(root, name)
    return root


def _names_seen(client: PoseAugClient, calls: int = 40) -> set[str]:
    seen = set()
    for _ in range(calls):
        seen.add(client.model_info().name)
        if len(seen) == 2:
            break
    return seen


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_round_robin_over_a_server_list(two_servers, host) -> None:
    """IP lists use grpc's round_robin policy (one ipv4: target), names the client's own
    rotation; both spread calls over every server."""
    a, b = two_servers
    with PoseAugClient(f"{host}:{a.port},{host}:{b.port}") as client:
        assert _names_seen(client) == {"alpha", "beta"}
    with PoseAugClient([f"{host}:{a.port}"]) as single:
        assert _names_seen(single, 6) == {"alpha"}


def test_round_robin_skips_a_server_that_went_away(tmp_path_factory, two_servers) -> None:
    a = two_servers[0]
    with running_server(_models(tmp_path_factory, "gamma")) as c:
        client = PoseAugClient(f"127.0.0.1:{a.port},127.0.0.1:{c.port}", initial_backoff=0.05)
        assert _names_seen(client) == {"alpha", "gamma"}
    # gamma is gone: every call still succeeds, on alpha (retries cover the switch-over)
    with client:
        assert {client.model_info().name for _ in range(6)} == {"alpha"}
