"""deploy/k8s/: schema-valid for the Kubernetes versions we support (kubernetes-validate,
strict: unknown fields fail), and consistent with each other and with the image: selectors
match the pod labels, probes use the plaintext health port, args are valid server flags."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from poseaug_service.config import parse_config
from tests.deploy.dockerfile import parse_dockerfile
from tests.support.server import REPO

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="pip install kubernetes-validate (requirements-dev.txt)"
)

K8S = REPO / "deploy" / "k8s"
# gRPC probes are GA since 1.27, the preStop `sleep` action is on by default since 1.30.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def documents() -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


@pytest.fixture(scope="module")
def resources() -> dict[str, dict]:
    found: dict[str, dict] = {}
    for _, doc in documents():
        kind = doc["kind"]
        if kind == "Service" and doc["spec"].get("clusterIP") == "None":
            kind = "HeadlessService"
        assert kind not in found, f"two {kind} resources"
        found[kind] = doc
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_are_schema_valid(version: str) -> None:
    docs = documents()
    assert {d["kind"] for _, d in docs} >= {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    for path, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name} {doc['kind']}: {exc.message} at {list(exc.path)}")


def container(deployment: dict) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def test_deployment_asks_for_a_gpu_and_runs_hardened(resources) -> None:
    deployment = resources["Deployment"]
    c = container(deployment)
    limits, requests = c["resources"]["limits"], c["resources"]["requests"]
    assert int(limits["nvidia.com/gpu"]) >= 1
    assert requests.get("nvidia.com/gpu") == limits["nvidia.com/gpu"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False

    # the pod's uid is the image's USER
    user = parse_dockerfile(REPO / "Dockerfile").last("gpu", "USER").text
    assert str(pod["securityContext"]["runAsUser"]) == user.split(":")[0]


def test_container_args_are_valid_server_flags(resources) -> None:
    c = container(resources["Deployment"])
    config = parse_config([str(a) for a in c["args"]])
    assert config.host == "0.0.0.0"
    assert config.providers == "cuda", "a GPU pod must not silently serve on CPU"
    assert config.tls and config.token_file is not None
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {
        "grpc": config.port,
        "health": config.health_port,
        "metrics": config.metrics_port,
    }
    mounted = [m["mountPath"] for m in c["volumeMounts"]]
    for path in (config.tls_cert, config.tls_key, config.token_file):
        assert any(str(path).startswith(m + "/") for m in mounted), f"{path} is not mounted"
    # SIGTERM drains for grace_s after the preStop sleep; the kubelet waits longer than both
    pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = resources["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > pre_stop + config.grace_s


def test_probes_are_native_grpc_on_the_health_port(resources) -> None:
    c = container(resources["Deployment"])
    config = parse_config([str(a) for a in c["args"]])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == config.health_port, probe
    assert c["readinessProbe"]["grpc"]["service"] == "poseaug.v1.PoseAugService"


def test_headless_service_pdb_and_hpa_select_the_deployment(resources) -> None:
    deployment = resources["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()

    service = resources["HeadlessService"]
    assert service["spec"]["selector"].items() <= labels.items()
    (grpc_port,) = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
    assert grpc_port["targetPort"] == "grpc"
    assert not service["spec"].get("publishNotReadyAddresses", False)

    pdb = resources["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    hpa = resources["HorizontalPodAutoscaler"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2, "the PDB needs a second replica to allow drains"
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]
