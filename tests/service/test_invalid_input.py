"""Every malformed request gets INVALID_ARGUMENT (or the documented code) naming its field."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from poseaug.v1 import poseaug_pb2
from tests.service.conftest import LIMIT
from tests.support.protos import lift_request, tensor

INVALID = grpc.StatusCode.INVALID_ARGUMENT
IMG = poseaug_pb2.ImageSize
KP = np.full((2, 17, 2), 100.0, np.float32)


def kp_with(value: float) -> np.ndarray:
    out = KP.copy()
    out[1, 3, 0] = value
    return out


def raw(shape, nbytes: int) -> poseaug_pb2.Tensor:
    return poseaug_pb2.Tensor(shape=shape, data=b"\0" * nbytes)


def raw_lift(shape, nbytes: int) -> poseaug_pb2.Lift2Dto3DRequest:
    return poseaug_pb2.Lift2Dto3DRequest(
        keypoints=raw(shape, nbytes), image_size=IMG(width=9, height=9)
    )


LIFT_CASES = {
    "short data": (
        raw_lift([2, 17, 2], 4 * 68 - 4),
        "keypoints.data",
    ),
    "long data": (
        raw_lift([2, 17, 2], 4 * 68 + 1),
        "keypoints.data",
    ),
    "rank 2": (lift_request(KP.reshape(2, 34)), "keypoints.shape"),
    "rank 4": (lift_request(KP.reshape(1, 2, 17, 2)), "keypoints.shape"),
    "coords 3": (lift_request(np.zeros((2, 17, 3))), "keypoints.shape"),
    "K 16 for H36M": (lift_request(np.zeros((2, 16, 2))), "keypoints.shape"),
    "K 16 for COCO": (
        lift_request(np.zeros((2, 16, 2)), format=poseaug_pb2.KEYPOINT_FORMAT_COCO_17),
        "keypoints.shape",
    ),
    "K 17 for MPII": (
        lift_request(KP, format=poseaug_pb2.KEYPOINT_FORMAT_MPII_16),
        "keypoints.shape",
    ),
    "N = 0": (
        raw_lift([0, 17, 2], 0),
        "keypoints.shape",
    ),
    "N above limit": (lift_request(np.zeros((LIMIT + 1, 17, 2))), "keypoints.shape"),
    "missing keypoints": (
        poseaug_pb2.Lift2Dto3DRequest(image_size=IMG(width=9, height=9)),
        "keypoints",
    ),
    "NaN": (lift_request(kp_with(np.nan)), "keypoints.data"),
    "Inf": (lift_request(kp_with(np.inf)), "keypoints.data"),
    "-Inf": (lift_request(kp_with(-np.inf)), "keypoints.data"),
    "width 0": (lift_request(KP, width=0, height=5), "image_size.width"),
    "height 0": (lift_request(KP, width=5, height=0), "image_size.height"),
    "per-pose width 0": (
        poseaug_pb2.Lift2Dto3DRequest(
            keypoints=tensor(KP), image_sizes=[IMG(width=5, height=5), IMG(width=0, height=5)]
        ),
        "image_sizes[1].width",
    ),
    "per-pose height 0": (
        poseaug_pb2.Lift2Dto3DRequest(
            keypoints=tensor(KP), image_sizes=[IMG(width=5, height=0), IMG(width=5, height=5)]
        ),
        "image_sizes[0].height",
    ),
    "both image sizes": (
        poseaug_pb2.Lift2Dto3DRequest(
            keypoints=tensor(KP),
            image_size=IMG(width=5, height=5),
            image_sizes=[IMG(width=5, height=5)] * 2,
        ),
        "image_size",
    ),
    "neither image size": (poseaug_pb2.Lift2Dto3DRequest(keypoints=tensor(KP)), "image_size"),
    "image_sizes length": (
        poseaug_pb2.Lift2Dto3DRequest(keypoints=tensor(KP), image_sizes=[IMG(width=5, height=5)]),
        "image_sizes",
    ),
    "unknown format": (lift_request(KP, format=42), "format"),
    "unknown model": (lift_request(KP, model="nope"), "model"),
    "scores shape": (lift_request(KP, scores=tensor(np.ones((2, 16)))), "scores.shape"),
    "scores rank": (lift_request(KP, scores=tensor(np.ones((2, 17, 1)))), "scores.shape"),
    "scores N": (lift_request(KP, scores=tensor(np.ones((3, 17)))), "scores.shape"),
    "scores above 1": (lift_request(KP, scores=tensor(np.full((2, 17), 1.5))), "scores.data"),
    "scores below 0": (lift_request(KP, scores=tensor(np.full((2, 17), -0.1))), "scores.data"),
    "scores NaN": (lift_request(KP, scores=tensor(np.full((2, 17), np.nan))), "scores.data"),
    "request_id too long": (lift_request(KP, request_id="x" * 129), "request_id"),
}  # fmt: skip


def assert_invalid(err: grpc.RpcError, field: str, code=INVALID) -> None:
    assert err.code() == code, err.details()
    assert err.details().startswith(f"{field}:"), err.details()


@pytest.mark.parametrize("case", LIFT_CASES)
def test_lift_rejects(server, case: str) -> None:
    request, field = LIFT_CASES[case]
    with pytest.raises(grpc.RpcError) as info:
        server.stub.Lift2Dto3D(request)
    assert_invalid(info.value, field)


def test_lift_limit_is_inclusive(server) -> None:
    resp = server.stub.Lift2Dto3D(lift_request(np.zeros((LIMIT, 17, 2))))
    assert list(resp.pose3d.shape) == [LIMIT, 17, 3]


def test_stream_lift_names_the_bad_message(server) -> None:
    good = poseaug_pb2.StreamLift2Dto3DRequest(request=lift_request(KP, request_id="ok"))
    bad = poseaug_pb2.StreamLift2Dto3DRequest(request=lift_request(kp_with(np.nan)))
    stream = server.stub.StreamLift2Dto3D(iter([good, bad, good]))
    first = next(stream)
    assert first.response.request_id == "ok"
    with pytest.raises(grpc.RpcError) as info:
        next(stream)
    assert_invalid(info.value, "request[1].keypoints.data")


POSES = np.tile(np.linspace(-0.5, 0.5, 51, dtype=np.float32).reshape(1, 17, 3), (2, 1, 1))
POSES[:, 0] = 0.0
CAM = poseaug_pb2.CameraIntrinsics


def aug(**fields) -> poseaug_pb2.AugmentRequest:
    fields.setdefault("poses3d", tensor(POSES))
    return poseaug_pb2.AugmentRequest(**fields)


def camera(**overrides) -> poseaug_pb2.CameraIntrinsics:
    values = dict(fx=1000.0, fy=1000.0, cx=500.0, cy=500.0, width=1000, height=1000)
    values.update(overrides)
    return CAM(**values)


behind = POSES.copy()
behind[1] += [0.0, 0.0, -1.0]
nan_pose = POSES.copy()
nan_pose[0, 4, 1] = np.nan

AUGMENT_CASES = {
    "count above 1024": (aug(count=1025), "count"),
    "N * count above limit": (aug(count=LIMIT // 2 + 1), "count"),
    "negative seed": (aug(seed=-1), "seed"),
    "UNSPECIFIED op": (aug(ops=[poseaug_pb2.AUGMENT_OP_UNSPECIFIED]), "ops[0]"),
    "unknown op": (aug(ops=[poseaug_pb2.AUGMENT_OP_BA, 9]), "ops[1]"),
    "fx 0": (aug(camera=camera(fx=0.0)), "camera.fx"),
    "fy negative": (aug(camera=camera(fy=-3.0)), "camera.fy"),
    "fx NaN": (aug(camera=camera(fx=float("nan"))), "camera.fx"),
    "cx Inf": (aug(camera=camera(cx=float("inf"))), "camera.cx"),
    "camera width 0": (aug(camera=camera(width=0)), "camera.width"),
    "camera height 0": (aug(camera=camera(height=0)), "camera.height"),
    "radial 2 values": (aug(camera=camera(radial=[0.1, 0.2])), "camera.radial"),
    "radial NaN": (aug(camera=camera(radial=[0.1, float("nan"), 0.0])), "camera.radial"),
    "tangential 1 value": (aug(camera=camera(tangential=[0.1])), "camera.tangential"),
    "poses3d K 16": (aug(poses3d=tensor(np.zeros((2, 16, 3)))), "poses3d.shape"),
    "poses3d 2D": (aug(poses3d=tensor(np.zeros((2, 17, 2)))), "poses3d.shape"),
    "poses3d bytes": (aug(poses3d=raw([2, 17, 3], 7)), "poses3d.data"),
    "poses3d N = 0": (aug(poses3d=raw([0, 17, 3], 0)), "poses3d.shape"),
    "poses3d NaN": (aug(poses3d=tensor(nan_pose)), "poses3d.data"),
    "root behind camera": (aug(poses3d=tensor(behind)), "poses3d.data"),
    "missing poses3d": (poseaug_pb2.AugmentRequest(), "poses3d"),
    "unknown model": (aug(model="nope"), "model"),
    "request_id too long": (aug(request_id="y" * 129), "request_id"),
}


@pytest.mark.parametrize("case", AUGMENT_CASES)
def test_augment_rejects(server, case: str) -> None:
    request, field = AUGMENT_CASES[case]
    with pytest.raises(grpc.RpcError) as info:
        server.stub.Augment(request)
    assert_invalid(info.value, field)


def test_augment_without_augmentor_is_failed_precondition(server) -> None:
    with pytest.raises(grpc.RpcError) as info:
        server.stub.Augment(aug(model="beta"))
    assert_invalid(info.value, "model", grpc.StatusCode.FAILED_PRECONDITION)


def test_augment_response_over_message_limit_points_to_stream(server) -> None:
    # The shared server runs with --max-message-mb 2: 4,096 rows of ~624 bytes exceed it.
    with pytest.raises(grpc.RpcError) as info:
        server.stub.Augment(aug(poses3d=tensor(np.tile(POSES, (2, 1, 1))), count=1024))
    assert_invalid(info.value, "count")
    assert "StreamAugment" in info.value.details()


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (poseaug_pb2.StreamAugmentRequest(request=aug(), chunk_size=65_537), "chunk_size"),
        (poseaug_pb2.StreamAugmentRequest(request=aug(count=4096)), "request.count"),
        (
            poseaug_pb2.StreamAugmentRequest(
                request=aug(poses3d=tensor(np.tile(POSES, (2, 1, 1))), count=1024),
                chunk_size=65_536,
            ),
            "chunk_size",
        ),
        (poseaug_pb2.StreamAugmentRequest(request=aug(seed=-5)), "request.seed"),
        (
            poseaug_pb2.StreamAugmentRequest(request=aug(camera=camera(fx=-1.0))),
            "request.camera.fx",
        ),
    ],
)
def test_stream_augment_rejects(server, request_, field: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        list(server.stub.StreamAugment(request_))
    assert_invalid(info.value, field)


def test_get_model_info_unknown_model(server) -> None:
    with pytest.raises(grpc.RpcError) as info:
        server.stub.GetModelInfo(poseaug_pb2.GetModelInfoRequest(model="nope"))
    assert_invalid(info.value, "model")
