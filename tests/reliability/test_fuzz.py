"""Property-based fuzzing of every RPC against one real server: random shapes (wrong ranks,
zero, negative and huge dimensions), data of the right and wrong byte lengths, NaN/Inf, unknown
enum values, extreme integers, odd strings, and raw bytes that are no message at all. The
server must answer every call with OK (a well-formed answer) or INVALID_ARGUMENT, and stay up.

Bounded for CI: 50 examples per RPC, no deadline, one server for the module, no example
database written into the repository.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from poseaug.v1 import poseaug_pb2
from tests.support.bundles import make_bundle
from tests.support.server import ServerHandle, running_server

MODEL = "fuzz"
RAYS_MODEL = "fuzz-rays"  # camera-aware (format 2), served beside the default format 1 MODEL
MAX_POSES = 4096
FUZZ = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
OK_OR_INVALID = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
UINT32 = st.one_of(st.integers(0, 4000), st.sampled_from([2**31, 2**32 - 1]))
INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
ODD_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, 3.4e38, -3.4e38, 1e-45, 0.0])
DOUBLES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5000, 5000))
DIMS = st.one_of(
    st.integers(0, 40),
    st.sampled_from([1, 2, 3, 16, 17, -1, 2**31, 2**32 + 17, 2**62, 2**63 - 1, -(2**63)]),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    models: Path = tmp_path_factory.mktemp("models")
    make_bundle(models, MODEL)
    make_bundle(models, RAYS_MODEL, default=False, lifter="rays_echo")
    flags = ("--max-poses-per-request", str(MAX_POSES), "--max-message-mb", "16")
    with running_server(models, *flags) as handle:
        yield handle


@st.composite
def tensors(draw, likely_shapes) -> poseaug_pb2.Tensor:
    """Mostly plausible shapes with exact-length data (sometimes poisoned with NaN/Inf),
    otherwise anything: any rank, any dimension, any byte length."""
    shape = draw(st.one_of(likely_shapes, st.lists(DIMS, max_size=5)))
    n = math.prod(shape) if shape and all(d >= 1 for d in shape) else -1
    if 0 < n <= 4096 and draw(st.integers(0, 4)) > 0:
        values = np.random.default_rng(draw(st.integers(0, 2**32))).uniform(-3000, 3000, n)
        values = values.astype("<f4")
        if draw(st.booleans()):
            values[draw(st.integers(0, n - 1))] = draw(ODD_FLOATS)
        data = values.tobytes()
        data = data[: max(0, len(data) + draw(st.sampled_from([0, 0, 0, -1, -4, 4])))]
        data += b"\0" * max(0, draw(st.sampled_from([0, 0, 0, 1, 4])))
    else:
        data = draw(st.binary(max_size=400))
    return poseaug_pb2.Tensor(shape=shape, data=data)


def keypoint_shapes():
    return st.tuples(st.integers(1, 60), st.sampled_from([16, 17]), st.just(2)).map(list)


def pose_shapes():
    return st.tuples(st.integers(1, 40), st.just(17), st.just(3)).map(list)


MODEL_NAMES = st.one_of(st.just(""), st.just(MODEL), st.just(RAYS_MODEL), st.text(max_size=20))
REQUEST_IDS = st.one_of(st.just(""), st.text(max_size=160))


@st.composite
def image_size(draw) -> poseaug_pb2.ImageSize:
    return poseaug_pb2.ImageSize(width=draw(UINT32), height=draw(UINT32))


def finite_array(draw, shape: list[int], low: float, high: float) -> np.ndarray:
    """Valid float32 values, sometimes one of them NaN/Inf/huge (poisoned)."""
    values = np.random.default_rng(draw(st.integers(0, 2**32))).uniform(low, high, shape)
    values = values.astype("<f4")
    if draw(st.integers(0, 4)) == 0:
        values.flat[draw(st.integers(0, values.size - 1))] = draw(ODD_FLOATS)
    return values


def tensor_of(values: np.ndarray) -> poseaug_pb2.Tensor:
    return poseaug_pb2.Tensor(shape=list(values.shape), data=values.tobytes())


@st.composite
def plausible_camera(draw) -> poseaug_pb2.CameraIntrinsics:
    """Real intrinsics, sometimes distorted, with or without a size."""
    sized = draw(st.booleans())
    return poseaug_pb2.CameraIntrinsics(
        fx=draw(st.floats(100, 3000)),
        fy=draw(st.floats(100, 3000)),
        cx=draw(st.floats(0, 2000)),
        cy=draw(st.floats(0, 2000)),
        width=draw(st.integers(1, 4000)) if sized else 0,
        height=draw(st.integers(1, 4000)) if sized else 0,
        radial=draw(st.sampled_from([[], [0.01, -0.002, 0.0005], [-0.2, 0.25, -0.003]])),
        tangential=draw(st.sampled_from([[], [0.001, -0.001]])),
    )


@st.composite
def wild_camera(draw) -> poseaug_pb2.CameraIntrinsics:
    return poseaug_pb2.CameraIntrinsics(
        fx=draw(DOUBLES),
        fy=draw(DOUBLES),
        cx=draw(DOUBLES),
        cy=draw(DOUBLES),
        width=draw(UINT32),
        height=draw(UINT32),
        radial=draw(st.lists(DOUBLES, max_size=4)),
        tangential=draw(st.lists(DOUBLES, max_size=3)),
    )


@st.composite
def plausible_lift(draw) -> poseaug_pb2.Lift2Dto3DRequest:
    """Close to valid: right K for the format, real image sizes and cameras, maybe one bad
    value."""
    fmt = draw(st.integers(0, 3))
    n, k = draw(st.integers(1, 60)), 16 if fmt == 3 else 17
    req = poseaug_pb2.Lift2Dto3DRequest(
        format=fmt,
        keypoints=tensor_of(finite_array(draw, [n, k, 2], -100, 2100)),
        model=draw(st.sampled_from(["", MODEL, RAYS_MODEL])),
        request_id=draw(st.text(max_size=8)),
    )
    cameras = draw(st.sampled_from(["none", "one", "many"]))
    if cameras == "one":
        req.camera.CopyFrom(draw(plausible_camera()))
    elif cameras == "many":
        req.cameras.extend(draw(st.lists(plausible_camera(), min_size=n, max_size=n)))
    if cameras != "none" and draw(st.booleans()):
        pass  # no image size: the camera has to do
    elif draw(st.booleans()):
        req.image_size.CopyFrom(
            draw(
                st.builds(
                    poseaug_pb2.ImageSize, width=st.integers(1, 4000), height=st.integers(1, 4000)
                )
            )
        )
    else:
        sizes = st.builds(
            poseaug_pb2.ImageSize, width=st.integers(0, 4000), height=st.integers(1, 4000)
        )
        req.image_sizes.extend(draw(st.lists(sizes, min_size=n, max_size=n)))
    if draw(st.booleans()):
        req.scores.CopyFrom(tensor_of(finite_array(draw, [n, k], 0, 1.0001)))
    return req


@st.composite
def wild_lift(draw) -> poseaug_pb2.Lift2Dto3DRequest:
    req = poseaug_pb2.Lift2Dto3DRequest(
        format=draw(st.one_of(st.integers(0, 4), INT32)),
        model=draw(MODEL_NAMES),
        request_id=draw(REQUEST_IDS),
    )
    if draw(st.integers(0, 9)) > 0:
        req.keypoints.CopyFrom(draw(tensors(keypoint_shapes())))
    if draw(st.integers(0, 3)) == 0:
        scores = st.tuples(st.integers(1, 60), st.sampled_from([16, 17])).map(list)
        req.scores.CopyFrom(draw(tensors(scores)))
    sizes = draw(st.sampled_from(["one", "one", "many", "both", "none"]))
    if sizes in ("one", "both"):
        req.image_size.CopyFrom(draw(image_size()))
    if sizes in ("many", "both"):
        req.image_sizes.extend(draw(st.lists(image_size(), max_size=65)))
    cameras = draw(st.sampled_from(["none", "none", "one", "many", "both"]))
    if cameras in ("one", "both"):
        req.camera.CopyFrom(draw(wild_camera()))
    if cameras in ("many", "both"):
        req.cameras.extend(draw(st.lists(wild_camera(), max_size=65)))
    return req


def lift_requests():
    return st.one_of(plausible_lift(), wild_lift())


@st.composite
def plausible_augment(draw) -> poseaug_pb2.AugmentRequest:
    n = draw(st.integers(1, 40))
    poses = finite_array(draw, [n, 17, 3], -1.0, 1.0)
    if draw(st.booleans()):
        poses[:, :, 2] += 4.0  # absolute poses in front of the camera
    req = poseaug_pb2.AugmentRequest(
        poses3d=tensor_of(poses),
        ops=draw(st.lists(st.integers(1, 3), max_size=3, unique=True)),
        count=draw(st.integers(0, 8)),
        seed=draw(st.integers(0, 2**63 - 1)),
        model=draw(st.sampled_from(["", MODEL])),
    )
    if draw(st.booleans()):
        radial = draw(st.sampled_from([[], [0.01, -0.002, 0.0005]]))
        tangential = draw(st.sampled_from([[], [0.001, -0.001]]))
        req.camera.CopyFrom(
            poseaug_pb2.CameraIntrinsics(
                fx=draw(st.floats(100, 3000)),
                fy=draw(st.floats(100, 3000)),
                cx=draw(st.floats(0, 2000)),
                cy=draw(st.floats(0, 2000)),
                width=draw(st.integers(1, 4000)),
                height=draw(st.integers(1, 4000)),
                radial=radial,
                tangential=tangential,
            )
        )
    return req


@st.composite
def wild_augment(draw) -> poseaug_pb2.AugmentRequest:
    req = poseaug_pb2.AugmentRequest(
        ops=draw(st.lists(st.one_of(st.integers(0, 4), INT32), max_size=5)),
        count=draw(st.one_of(st.integers(0, 8), UINT32)),
        seed=draw(INT64),
        model=draw(MODEL_NAMES),
        request_id=draw(REQUEST_IDS),
    )
    if draw(st.integers(0, 9)) > 0:
        req.poses3d.CopyFrom(draw(tensors(pose_shapes())))
    if draw(st.booleans()):
        req.camera.CopyFrom(draw(wild_camera()))
    return req


def augment_requests():
    return st.one_of(plausible_augment(), wild_augment())


def code_of(call) -> tuple[grpc.StatusCode, object]:
    """(status code, reply or error details); the code shows in --hypothesis-show-statistics."""
    try:
        result = grpc.StatusCode.OK, call()
    except grpc.RpcError as error:
        result = error.code(), error.details()
    event(result[0].name)
    return result


def assert_tensor(tensor: poseaug_pb2.Tensor, *tail: int) -> int:
    """A well-formed output tensor [M, *tail]; returns M."""
    assert list(tensor.shape[1:]) == list(tail)
    assert len(tensor.data) == 4 * math.prod(tensor.shape)
    assert np.isfinite(np.frombuffer(tensor.data, "<f4")).all()
    return tensor.shape[0]


def check_lift(request: poseaug_pb2.Lift2Dto3DRequest, reply) -> None:
    n = assert_tensor(reply.pose3d, 17, 3)
    assert n == request.keypoints.shape[0]
    assert reply.request_id == request.request_id and reply.model == (request.model or MODEL)
    if reply.model == RAYS_MODEL:
        assert assert_tensor(reply.joint_inferred, 17) == n
        assert reply.default_camera == (not request.HasField("camera") and not request.cameras)
    else:
        assert not reply.HasField("joint_inferred") and not reply.default_camera


def check_augment(request: poseaug_pb2.AugmentRequest, reply, rows: int | None = None) -> None:
    m = assert_tensor(reply.poses3d, 17, 3)
    assert assert_tensor(reply.keypoints2d, 17, 2) == m
    if rows is not None:
        assert m == rows


@pytest.fixture(autouse=True)
def still_serving(server: ServerHandle) -> Iterator[None]:
    yield
    assert server.process.poll() is None, f"server died:\n{server.log()[-3000:]}"
    health = health_pb2_grpc.HealthStub(server.channel)
    status = health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert "Traceback" not in server.log(), server.log()[-3000:]


@FUZZ
@given(request=lift_requests())
def test_lift(server: ServerHandle, request) -> None:
    code, reply = code_of(lambda: server.stub.Lift2Dto3D(request, timeout=30))
    assert code in OK_OR_INVALID, (code, reply)
    if code == grpc.StatusCode.OK:
        check_lift(request, reply)


@FUZZ
@given(requests=st.lists(lift_requests(), min_size=1, max_size=3))
def test_stream_lift(server: ServerHandle, requests) -> None:
    messages = [poseaug_pb2.StreamLift2Dto3DRequest(request=r) for r in requests]
    code, replies = code_of(lambda: list(server.stub.StreamLift2Dto3D(iter(messages), timeout=30)))
    assert code in OK_OR_INVALID, (code, replies)
    if code == grpc.StatusCode.OK:
        assert len(replies) == len(requests)
        for request, reply in zip(requests, replies, strict=True):
            check_lift(request, reply.response)


@FUZZ
@given(request=augment_requests())
def test_augment(server: ServerHandle, request) -> None:
    code, reply = code_of(lambda: server.stub.Augment(request, timeout=30))
    assert code in OK_OR_INVALID, (code, reply)
    if code == grpc.StatusCode.OK:
        check_augment(request, reply, request.poses3d.shape[0] * max(1, request.count))


@FUZZ
@given(request=augment_requests(), chunk_size=st.one_of(st.integers(0, 70), UINT32))
def test_stream_augment(server: ServerHandle, request, chunk_size) -> None:
    """Reads at most three chunks, then cancels: a bulk job must not run on unasked."""
    message = poseaug_pb2.StreamAugmentRequest(request=request, chunk_size=chunk_size)

    def first_chunks():
        call = server.stub.StreamAugment(message, timeout=30)
        chunks = []
        try:
            for chunk in call:
                chunks.append(chunk)
                if len(chunks) == 3:
                    break
        finally:
            call.cancel()
        return chunks

    code, chunks = code_of(first_chunks)
    assert code in OK_OR_INVALID, (code, chunks)
    if code == grpc.StatusCode.OK:
        offset = 0
        for chunk in chunks:
            assert chunk.offset == offset
            check_augment(request, chunk.chunk)
            offset += chunk.chunk.poses3d.shape[0]


@FUZZ
@given(name=st.one_of(MODEL_NAMES, st.text(max_size=300)))
def test_get_model_info(server: ServerHandle, name) -> None:
    code, reply = code_of(
        lambda: server.stub.GetModelInfo(poseaug_pb2.GetModelInfoRequest(model=name), timeout=10)
    )
    assert code in OK_OR_INVALID, (code, reply)
    assert (code == grpc.StatusCode.OK) == (name in ("", MODEL, RAYS_MODEL))
    if code == grpc.StatusCode.OK:
        assert reply.model.name == (name or MODEL)


METHODS = [
    ("/poseaug.v1.PoseAugService/Lift2Dto3D", False, False),
    ("/poseaug.v1.PoseAugService/StreamLift2Dto3D", True, True),
    ("/poseaug.v1.PoseAugService/Augment", False, False),
    ("/poseaug.v1.PoseAugService/StreamAugment", False, True),
    ("/poseaug.v1.PoseAugService/ListModels", False, False),
    ("/poseaug.v1.PoseAugService/GetModelInfo", False, False),
]


@FUZZ
@given(
    method=st.sampled_from(METHODS),
    payloads=st.lists(st.binary(max_size=200), min_size=1, max_size=3),
)
def test_raw_bytes_on_every_method(server: ServerHandle, method, payloads) -> None:
    """Bytes that may not even parse as the request message: INVALID_ARGUMENT, never INTERNAL
    (and no traceback in the log, see still_serving)."""
    path, client_streams, server_streams = method
    channel = server.channel
    if client_streams:
        call = lambda: list(channel.stream_stream(path)(iter(payloads), timeout=30))  # noqa: E731
    elif server_streams:
        call = lambda: list(channel.unary_stream(path)(payloads[0], timeout=30))  # noqa: E731
    else:
        call = lambda: channel.unary_unary(path)(payloads[0], timeout=30)  # noqa: E731
    code, reply = code_of(call)
    assert code in OK_OR_INVALID, (path, payloads, code, reply)
