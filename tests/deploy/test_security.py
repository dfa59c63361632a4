"""Server-side TLS, mutual TLS and bearer tokens, exercised with the real poseaug client.

Certificates are made per module by tests/clients/tls_gateway.make_certificates (openssl; the
tests skip with a message without it). Unauthenticated calls must do no work: the servicer's
request and pose counters stay still and only poseaug_auth_failures_total moves.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from poseaug_client import PoseAugClient, PoseAugError
from poseaug_client.cli import main as poseaug_cli
from tests.clients.tls_gateway import Certificates, make_certificates
from tests.deploy.launch import clean_env, launched, run_server_cli
from tests.support.bundles import make_bundle
from tests.support.metrics import metric, scrape
from tests.support.protos import normalize_reference

TOKEN = "first-token-0123456789"
OTHER_TOKEN = "second-token-abcdef"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    make_bundle(root, "secure", default=True)
    return root


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """Certificates of another CA: neither side trusts them."""
    return make_certificates(tmp_path_factory.mktemp("stranger"))


@pytest.fixture
def keypoints() -> np.ndarray:
    return np.random.default_rng(5).uniform(50, 950, (9, 17, 2)).astype(np.float32)


def expected_lift(models: Path, keypoints: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(
        str(models / "secure" / "lifter.onnx"), providers=["CPUExecutionProvider"]
    )
    x = normalize_reference(keypoints, 1000, 1000)
    return session.run(["pose3d"], {"keypoints": x})[0]


def refused(call, code: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED) -> PoseAugError:
    with pytest.raises(PoseAugError) as info:
        call()
    assert info.value.code == code, info.value
    return info.value


# --- bearer tokens ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("token") / "tokens"
    path.write_text(f"# accepted bearer tokens\n{TOKEN}\n")
    return path


@pytest.fixture(scope="module")
def token_server(models: Path, token_file: Path):
    with launched(models, "--token-file", str(token_file)) as srv:
        yield srv


def lift_counters(srv) -> tuple[float, float]:
    text = scrape(srv.metrics_url)
    return (
        metric(text, "poseaug_requests_total", method="Lift2Dto3D"),
        metric(text, "poseaug_poses_total", method="Lift2Dto3D"),
    )


def auth_failures(srv, **labels: str) -> float:
    return metric(scrape(srv.metrics_url), "poseaug_auth_failures_total", **labels)


def test_missing_and_wrong_tokens_are_refused_before_any_work(
    token_server, models, keypoints, monkeypatch
) -> None:
    monkeypatch.delenv("POSEAUG_TOKEN", raising=False)
    before = lift_counters(token_server)
    lift_method = "/poseaug.v1.PoseAugService/Lift2Dto3D"
    missing_lift = auth_failures(token_server, method=lift_method, reason="missing")
    invalid = auth_failures(token_server, reason="invalid")
    for token in (None, "wrong-token", TOKEN + "x"):
        with PoseAugClient(token_server.address, token=token, max_attempts=1) as client:
            error = refused(lambda c=client: c.lift(keypoints))
            assert "bearer token" in error.message
            refused(lambda c=client: c.models())
            refused(lambda c=client: list(c.lift_stream([keypoints[:2], keypoints[2:]])))
            poses = np.zeros((2, 17, 3), np.float32)
            refused(lambda c=client, p=poses: list(c.augment_stream(p, count=2)))
            refused(lambda c=client, p=poses: c.augment(p))
    assert lift_counters(token_server) == before, "a refused call reached the servicer"
    assert auth_failures(token_server, method=lift_method, reason="missing") == missing_lift + 1
    assert auth_failures(token_server, reason="invalid") == invalid + 10  # 2 tokens x 5 calls

    with PoseAugClient(token_server.address, token=TOKEN) as client:
        np.testing.assert_allclose(
            client.lift(keypoints), expected_lift(models, keypoints), atol=1e-5
        )
    requests, poses = lift_counters(token_server)
    assert (requests, poses) == (before[0] + 1, before[1] + len(keypoints))


def test_health_needs_no_token_but_reflection_does(token_server) -> None:
    with PoseAugClient(token_server.address, token=None) as client:
        assert client.health() == "SERVING"
        assert client.health("poseaug.v1.PoseAugService") == "SERVING"

    def list_services(metadata) -> list[str]:
        with grpc.insecure_channel(token_server.address) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            responses = stub.ServerReflectionInfo(iter([request]), metadata=metadata, timeout=10)
            return [s.name for r in responses for s in r.list_services_response.service]

    with pytest.raises(grpc.RpcError) as info:
        list_services(())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "poseaug.v1.PoseAugService" in list_services((("authorization", f"Bearer {TOKEN}"),))


def test_token_file_rotation_needs_no_restart(token_server, token_file, keypoints) -> None:
    """Old and new token overlap, then the old one is withdrawn: both changes apply live."""
    try:
        token_file.write_text(f"{TOKEN}\n{OTHER_TOKEN}\n")
        assert_accepted_soon(token_server, OTHER_TOKEN, keypoints, True)
        token_file.write_text(f"{OTHER_TOKEN}\n")
        assert_accepted_soon(token_server, TOKEN, keypoints, False)
        assert_accepted_soon(token_server, OTHER_TOKEN, keypoints, True)
        token_file.write_text("")  # an emptied file must not open the server
        time.sleep(1.2)
        assert_accepted_soon(token_server, OTHER_TOKEN, keypoints, True)
        assert_accepted_soon(token_server, "", keypoints, False)
    finally:
        token_file.write_text(f"{TOKEN}\n")
        assert_accepted_soon(token_server, TOKEN, keypoints, True)


def assert_accepted_soon(srv, token: str, keypoints: np.ndarray, accepted: bool) -> None:
    """The server re-reads the token file at most once a second: poll for up to 10 s."""
    deadline = time.monotonic() + 10
    with PoseAugClient(srv.address, token=token or None, max_attempts=1) as client:
        while True:
            try:
                client.lift(keypoints[:1])
                ok = True
            except PoseAugError as error:
                assert error.code == grpc.StatusCode.UNAUTHENTICATED, error
                ok = False
            if ok == accepted:
                return
            assert time.monotonic() < deadline, f"token {token!r} accepted={ok} after 10 s"
            time.sleep(0.1)


# --- TLS and mutual TLS -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(certs: Certificates, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copies of the server's certificate and key, which the rotation test replaces."""
    folder = tmp_path_factory.mktemp("server-tls")
    shutil.copy(certs.server_cert, folder / "tls.crt")
    shutil.copy(certs.server_key, folder / "tls.key")
    return folder


@pytest.fixture(scope="module")
def tls_server(models: Path, tls_files: Path):
    """TLS on the main port, the token from $POSEAUG_TOKEN."""
    flags = ("--tls-cert", str(tls_files / "tls.crt"), "--tls-key", str(tls_files / "tls.key"))
    with launched(models, *flags, env=clean_env(POSEAUG_TOKEN=TOKEN)) as srv:
        yield srv


def test_tls_with_token_from_environment(tls_server, certs, models, keypoints) -> None:
    with PoseAugClient(tls_server.address, tls_ca=certs.ca, token=TOKEN) as client:
        assert client.health() == "SERVING"
        np.testing.assert_allclose(
            client.lift(keypoints), expected_lift(models, keypoints), atol=1e-5
        )
        streamed = np.concatenate(list(client.lift_stream([keypoints[:4], keypoints[4:]])))
        np.testing.assert_allclose(streamed, expected_lift(models, keypoints), atol=1e-5)
    with PoseAugClient(tls_server.address, tls_ca=certs.ca, token=None) as no_token:
        refused(no_token.models)
    assert "transport: TLS; bearer tokens: required" in tls_server.log()


def test_tls_refuses_plaintext_and_unknown_ca(tls_server, certs, stranger) -> None:
    plaintext = PoseAugClient(tls_server.address, token=TOKEN, max_attempts=1, timeout=5)
    with plaintext:
        refused(plaintext.models, grpc.StatusCode.UNAVAILABLE)
    wrong_ca = PoseAugClient(
        tls_server.address, tls_ca=stranger.ca, token=TOKEN, max_attempts=1, timeout=5
    )
    with wrong_ca:
        refused(wrong_ca.models, grpc.StatusCode.UNAVAILABLE)


def test_health_port_stays_plaintext_for_probes(tls_server, capsys) -> None:
    """The Docker HEALTHCHECK / kubelet path: `poseaug health` on the plaintext health port,
    no certificate and no token, while the main port speaks only TLS."""
    assert poseaug_cli(["health", "--server", tls_server.health_address, "--attempts", "1"]) == 0
    assert capsys.readouterr().out.strip() == "SERVING"
    with grpc.insecure_channel(tls_server.health_address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as info:
            list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED, "health port serves health only"


def test_cli_speaks_tls_with_a_token_file(tls_server, certs, tmp_path, capsys) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    flags = ["--server", tls_server.address, "--tls-ca", str(certs.ca)]
    assert poseaug_cli(["models", "--json", *flags, "--token-file", str(token_file)]) == 0
    assert '"name": "secure"' in capsys.readouterr().out
    assert poseaug_cli(["models", *flags, "--token", "nope", "--attempts", "1"]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err


def test_certificate_rotation_applies_to_new_connections(
    tls_server, tls_files, certs, stranger
) -> None:
    """cert-manager replaces the files: new handshakes use the new certificate."""
    try:
        shutil.copy(stranger.server_cert, tls_files / "tls.crt")
        shutil.copy(stranger.server_key, tls_files / "tls.key")
        with PoseAugClient(tls_server.address, tls_ca=stranger.ca, token=TOKEN) as rotated:
            assert [m.name for m in rotated.models()] == ["secure"]
        old_ca = PoseAugClient(
            tls_server.address, tls_ca=certs.ca, token=TOKEN, max_attempts=1, timeout=5
        )
        with old_ca:
            refused(old_ca.models, grpc.StatusCode.UNAVAILABLE)
    finally:
        shutil.copy(certs.server_cert, tls_files / "tls.crt")
        shutil.copy(certs.server_key, tls_files / "tls.key")
    with PoseAugClient(tls_server.address, tls_ca=certs.ca, token=TOKEN) as back:
        assert back.health() == "SERVING"


@pytest.fixture(scope="module")
def mtls_server(models: Path, certs: Certificates):
    flags = (
        "--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key),
        "--tls-client-ca", str(certs.ca),
    )  # fmt: skip
    with launched(models, *flags) as srv:
        yield srv


def test_mutual_tls_needs_a_client_certificate(mtls_server, certs, stranger, keypoints) -> None:
    with PoseAugClient(
        mtls_server.address, tls_ca=certs.ca, tls_cert=certs.client_cert, tls_key=certs.client_key
    ) as client:
        assert client.lift(keypoints).shape == (len(keypoints), 17, 3)
        assert client.health() == "SERVING"
    no_cert = PoseAugClient(mtls_server.address, tls_ca=certs.ca, max_attempts=1, timeout=5)
    with no_cert:
        refused(no_cert.models, grpc.StatusCode.UNAVAILABLE)
        refused(no_cert.health, grpc.StatusCode.UNAVAILABLE)
    foreign_cert = PoseAugClient(
        mtls_server.address,
        tls_ca=certs.ca,
        tls_cert=stranger.client_cert,
        tls_key=stranger.client_key,
        max_attempts=1,
        timeout=5,
    )
    with foreign_cert:
        refused(foreign_cert.models, grpc.StatusCode.UNAVAILABLE)
    assert "transport: mutual TLS; bearer tokens: off" in mtls_server.log()


# --- start-up refusals ------------------------------------------------------------------


def test_bad_security_settings_stop_the_server_at_start(models, certs, tmp_path) -> None:
    empty = tmp_path / "empty-token"
    empty.write_text("# nothing here\n")
    cases = {
        ("--token-file", str(empty)): "holds no token",
        ("--token-file", str(tmp_path / "missing")): "--token-file",
        ("--tls-cert", str(certs.server_cert)): "--tls-cert and --tls-key go together",
        ("--tls-cert", str(certs.server_cert), "--tls-key", str(certs.client_key)): "pair",
        ("--tls-client-ca", str(certs.ca)): "needs --tls-cert",
    }
    for flags, message in cases.items():
        result = run_server_cli(models, *flags)
        assert result.returncode == 2, (flags, result.stderr)
        assert message in result.stderr, (flags, result.stderr)
