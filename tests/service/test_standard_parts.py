"""Health, reflection, Prometheus metrics, ListModels and GetModelInfo."""

from __future__ import annotations

import json

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from poseaug.v1 import poseaug_pb2
from tests.support.bundles import JOINT_NAMES, PARENTS
from tests.support.metrics import metric, scrape
from tests.support.protos import lift_request, tensor
from tests.support.server import running_server

SERVICE = "poseaug.v1.PoseAugService"


@pytest.mark.parametrize("service", ["", SERVICE])
def test_health_serving(server, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(server.channel)
    status = stub.Check(health_pb2.HealthCheckRequest(service=service)).status
    assert status == health_pb2.HealthCheckResponse.SERVING


def test_health_unknown_service_not_found(server) -> None:
    stub = health_pb2_grpc.HealthStub(server.channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_services(server) -> None:
    db = ProtoReflectionDescriptorDatabase(server.channel)
    services = set(db.get_services())
    assert {SERVICE, "grpc.health.v1.Health"} <= services
    proto = db.FindFileContainingSymbol(SERVICE)
    methods = {m.name for s in proto.service for m in s.method}
    assert {"Lift2Dto3D", "StreamLift2Dto3D", "Augment", "StreamAugment"} <= methods


def test_metrics_endpoint(server) -> None:
    server.stub.Lift2Dto3D(lift_request(np.zeros((3, 17, 2))))
    with pytest.raises(grpc.RpcError):
        server.stub.Lift2Dto3D(lift_request(np.zeros((3, 16, 2))))
    poses = np.zeros((2, 17, 3), np.float32)
    poses[:, 1:, 1] = 0.3
    server.stub.Augment(poseaug_pb2.AugmentRequest(poses3d=tensor(poses), count=3))
    text = scrape(server.metrics_url)
    assert metric(text, "poseaug_requests_total", method="Lift2Dto3D", code="OK") >= 1
    assert metric(text, "poseaug_errors_total", method="Lift2Dto3D", code="INVALID_ARGUMENT") >= 1
    assert metric(text, "poseaug_requests_total", method="Augment", code="OK") >= 1
    assert metric(text, "poseaug_request_latency_seconds_count", method="Lift2Dto3D") >= 2
    assert metric(text, "poseaug_batch_size_count", kind="lift") >= 1
    assert metric(text, "poseaug_batch_size_count", kind="augment") >= 1
    assert metric(text, "poseaug_queue_delay_seconds_count") >= 1
    assert metric(text, "poseaug_poses_total", method="Lift2Dto3D") >= 3
    assert metric(text, "poseaug_poses_total", method="Augment") >= 6
    assert "poseaug_inflight_requests" in text
    assert "poseaug_queue_depth" in text


def test_list_models(server, models_dir) -> None:
    resp = server.stub.ListModels(poseaug_pb2.ListModelsRequest())
    assert resp.default_model == "alpha"
    by_name = {m.name: m for m in resp.models}
    assert set(by_name) == {"alpha", "beta"}
    alpha, beta = by_name["alpha"], by_name["beta"]
    assert alpha.is_default and not beta.is_default
    assert alpha.has_augmentor and not beta.has_augmentor
    assert beta.version == "2.0.0"
    assert list(alpha.joint_names) == list(JOINT_NAMES)
    assert list(alpha.joint_parents) == list(PARENTS)
    assert set(alpha.input_formats) == {
        poseaug_pb2.KEYPOINT_FORMAT_H36M_17,
        poseaug_pb2.KEYPOINT_FORMAT_COCO_17,
        poseaug_pb2.KEYPOINT_FORMAT_MPII_16,
    }
    manifest = json.loads((models_dir / "alpha" / "manifest.json").read_text())
    assert json.loads(alpha.manifest_json) == manifest
    assert dict(alpha.metrics) == manifest["metrics"]


def test_get_model_info_reports_real_providers(server, models_dir) -> None:
    default = server.stub.GetModelInfo(poseaug_pb2.GetModelInfoRequest()).model
    assert default.name == "alpha"
    beta = server.stub.GetModelInfo(poseaug_pb2.GetModelInfoRequest(model="beta")).model
    assert beta.name == "beta"
    providers = list(default.providers)
    assert providers and providers[-1] == "CPUExecutionProvider"
    assert set(providers) <= set(ort.get_available_providers())
    # What ORT really runs on here with the same request (CUDA only where it loads).
    session = ort.InferenceSession(
        str(models_dir / "alpha" / "lifter.onnx"), providers=ort.get_available_providers()[-2:]
    )
    if "CUDAExecutionProvider" not in session.get_providers():
        assert providers == ["CPUExecutionProvider"]
    assert f"on providers {providers}" in server.log()


def test_providers_cpu_flag(models_dir) -> None:
    with running_server(models_dir, "--providers", "cpu", metrics=False) as srv:
        info = srv.stub.GetModelInfo(poseaug_pb2.GetModelInfoRequest()).model
        assert list(info.providers) == ["CPUExecutionProvider"]
