"""Camera-aware (format 2, "camera_rays") bundles served beside format 1 ones.

The camera-aware test lifter echoes its input (x, y, visible per joint, joint 0 zeroed), so
every test reads exactly what the server fed it. References are written here from the
contract (proto comments, models/README.md), independently of the server's code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from poseaug.v1 import poseaug_pb2
from poseaug_service.camera_rays import DEFAULT_HFOV_DEG, MISSING_SCORE_THRESHOLD
from tests.service.conftest import Lifter
from tests.service.test_lift import coco_to_h36m_reference, mpii_to_h36m_reference
from tests.support.bundles import make_bundle
from tests.support.protos import array, normalize_reference, tensor
from tests.support.server import ServerHandle, running_server

CLASSIC, AWARE = "classic", "aware"
CAM = poseaug_pb2.CameraIntrinsics
IMG = poseaug_pb2.ImageSize
COCO = poseaug_pb2.KEYPOINT_FORMAT_COCO_17
MPII = poseaug_pb2.KEYPOINT_FORMAT_MPII_16
INVALID = grpc.StatusCode.INVALID_ARGUMENT
# Human3.6M camera 54138969 (S9): its distortion is what the service must invert.
H36M = dict(
    fx=1145.04940459,
    fy=1143.78109572,
    cx=512.54150496,
    cy=515.45148698,
    radial=[-0.20709891, 0.24777518, -0.00307515],
    tangential=[-0.00142447, -0.00097534],
)
RAY_TOL = 1e-6


@pytest.fixture(scope="module")
def camera_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A format 1 bundle (the default), a camera-aware one, and two the server must refuse."""
    root = tmp_path_factory.mktemp("camera-models")
    make_bundle(root, CLASSIC, default=True, with_augmentor=False)
    make_bundle(root, AWARE, default=False, with_augmentor=False, lifter="rays_echo")
    unknown = make_bundle(root, "unknown-input", default=False, with_augmentor=False)
    manifest = json.loads((unknown / "manifest.json").read_text())
    manifest["lifter"]["normalization"] = "depth_rays"
    (unknown / "manifest.json").write_text(json.dumps(manifest))
    # A format 2 manifest over a 2-channel graph: the declared input does not fit.
    mismatched = make_bundle(root, "mismatched", default=False, with_augmentor=False)
    manifest = json.loads((mismatched / "manifest.json").read_text())
    manifest["format_version"] = 2
    manifest["lifter"].update(normalization="camera_rays", input_channels=["x", "y", "visible"])
    (mismatched / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="module")
def cam_server(camera_models: Path) -> Iterator[ServerHandle]:
    with running_server(camera_models, "--max-batch", "64", metrics=False) as handle:
        yield handle


def lift(server: ServerHandle, pixels: np.ndarray, **fields) -> poseaug_pb2.Lift2Dto3DResponse:
    fields.setdefault("model", AWARE)
    request = poseaug_pb2.Lift2Dto3DRequest(keypoints=tensor(pixels), **fields)
    return server.stub.Lift2Dto3D(request)


def fed(response: poseaug_pb2.Lift2Dto3DResponse) -> np.ndarray:
    """What the echo lifter was given, [N, 17, 3] (joint 0 reads as zeros)."""
    return array(response.pose3d)


def project_reference(points: np.ndarray, camera: dict) -> np.ndarray:
    """The proto's CameraIntrinsics distortion model, in float64, written from its comment."""
    x, y = points[..., 0] / points[..., 2], points[..., 1] / points[..., 2]
    k1, k2, k3 = camera.get("radial") or (0.0, 0.0, 0.0)
    p1, p2 = camera.get("tangential") or (0.0, 0.0)
    r2 = x * x + y * y
    d = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3 + p2 * x + p1 * y
    u = camera["fx"] * (x * d + p2 * r2) + camera["cx"]
    v = camera["fy"] * (y * d + p1 * r2) + camera["cy"]
    return np.stack([u, v], axis=-1)


def people(n: int, seed: int) -> np.ndarray:
    """Camera-frame joints [n, 17, 3], metres: people 3-7 m away across a wide view."""
    rng = np.random.default_rng(seed)
    root = np.stack(
        [rng.uniform(-1.5, 1.5, n), rng.uniform(-0.8, 0.8, n), rng.uniform(3, 7, n)], axis=1
    )
    return root[:, None, :] + rng.normal(0, 0.4, (n, 17, 3))


@pytest.mark.parametrize("distorted", [False, True], ids=["pinhole", "h36m-distortion"])
def test_rays_are_the_undistorted_directions(cam_server, distorted: bool) -> None:
    camera = dict(H36M) if distorted else {k: H36M[k] for k in ("fx", "fy", "cx", "cy")}
    points = people(50, seed=3)
    pixels = project_reference(points, camera).astype(np.float32)
    got = fed(lift(cam_server, pixels, camera=CAM(**camera)))
    expected = points[..., :2] / points[..., 2:]
    assert np.abs(got[:, 1:, :2] - expected[:, 1:]).max() < RAY_TOL
    assert np.all(got[:, 1:, 2] == 1.0)
    if distorted:  # the distortion is large enough that ignoring it would fail the test
        naive = (pixels[..., 0] - camera["cx"]) / camera["fx"]
        assert np.abs(naive[:, 1:] - expected[:, 1:, 0]).max() > 1e-3


def test_per_pose_cameras(cam_server) -> None:
    cams = [
        dict(H36M),
        dict(fx=600.0, fy=610.0, cx=320.0, cy=240.0),
        dict(fx=1500.0, fy=1500.0, cx=960.0, cy=540.0, radial=[0.05, -0.01, 0.0]),
    ]
    points = people(3, seed=4)
    pixels = np.stack([project_reference(p, c) for p, c in zip(points, cams, strict=True)])
    response = lift(cam_server, pixels.astype(np.float32), cameras=[CAM(**c) for c in cams])
    expected = points[..., :2] / points[..., 2:]
    assert np.abs(fed(response)[:, 1:, :2] - expected[:, 1:]).max() < RAY_TOL
    assert not response.default_camera


def test_default_camera_when_none_is_sent(cam_server) -> None:
    pixels = np.random.default_rng(5).uniform(0, 1000, (4, 17, 2)).astype(np.float32)
    response = lift(cam_server, pixels, image_size=IMG(width=1920, height=1080))
    assert response.default_camera
    f = 960 / math.tan(math.radians(30))  # 60 degrees across the width
    assert DEFAULT_HFOV_DEG == 60
    expected = np.stack([(pixels[..., 0] - 960) / f, (pixels[..., 1] - 540) / f], axis=-1)
    assert np.abs(fed(response)[:, 1:, :2] - expected[:, 1:]).max() < RAY_TOL
    # Per-pose sizes give per-pose default cameras.
    sizes = [IMG(width=640, height=480)] * 2 + [IMG(width=1920, height=1080)] * 2
    per_pose = lift(cam_server, pixels, image_sizes=sizes)
    assert per_pose.default_camera
    np.testing.assert_allclose(fed(per_pose)[2:], fed(response)[2:], atol=1e-7)
    f640 = 320 / math.tan(math.radians(30))
    assert np.abs(fed(per_pose)[0, 1:, 0] - (pixels[0, 1:, 0] - 320) / f640).max() < RAY_TOL
    # A camera sent: not the default, even with the image size beside it.
    sent = lift(
        cam_server,
        pixels,
        image_size=IMG(width=1920, height=1080),
        camera=CAM(fx=f, fy=f, cx=960, cy=540),
    )
    assert not sent.default_camera
    np.testing.assert_allclose(fed(sent), fed(response), atol=1e-7)


def test_scores_under_the_threshold_make_joints_missing(cam_server) -> None:
    rng = np.random.default_rng(6)
    pixels = rng.uniform(0, 1000, (20, 17, 2)).astype(np.float32)
    scores = rng.uniform(0, 1, (20, 17)).astype(np.float32)
    scores[0, 5] = MISSING_SCORE_THRESHOLD  # exactly at the threshold: seen
    scores[0, 6] = np.nextafter(np.float32(MISSING_SCORE_THRESHOLD), np.float32(0))
    camera = CAM(fx=1000, fy=1000, cx=500, cy=500)
    response = lift(cam_server, pixels, camera=camera, scores=tensor(scores))
    missing = scores < MISSING_SCORE_THRESHOLD
    assert missing[0, 6] and not missing[0, 5]
    assert missing.any() and (~missing).any()
    got = fed(response)
    inferred = array(response.joint_inferred)
    assert inferred.shape == (20, 17) and inferred.dtype == np.float32
    np.testing.assert_array_equal(inferred, missing.astype(np.float32))
    m = missing.copy()
    m[:, 0] = False  # joint 0 is zeroed by the echo lifter whatever it was fed
    assert np.all(got[m] == 0.0)  # x = y = visible = 0
    seen = ~missing
    seen[:, 0] = False
    assert np.all(got[seen][:, 2] == 1.0)
    expected = (pixels - 500) / 1000
    assert np.abs(got[seen][:, :2] - expected[seen]).max() < RAY_TOL
    # pose_scores stay the mean of the mapped scores.
    np.testing.assert_allclose(array(response.pose_scores), scores.mean(axis=1), atol=1e-6)
    # No scores: every joint is seen, and joint_inferred says so.
    plain = lift(cam_server, pixels, camera=camera)
    assert not array(plain.joint_inferred).any()
    assert not plain.HasField("pose_scores")


def lowest_coco(s: np.ndarray) -> np.ndarray:
    """COCO scores -> H36M-17, each built joint taking the lowest score of its keypoints."""
    low = np.minimum
    pelvis, thorax = low(s[:, 11], s[:, 12]), low(s[:, 5], s[:, 6])
    joints = [
        pelvis, s[:, 12], s[:, 14], s[:, 16], s[:, 11], s[:, 13], s[:, 15], low(pelvis, thorax),
        thorax, s[:, 0], low(s[:, 1], s[:, 2]), s[:, 5], s[:, 7], s[:, 9], s[:, 6], s[:, 8],
        s[:, 10],
    ]  # fmt: skip
    return np.stack(joints, axis=1)


def lowest_mpii(s: np.ndarray) -> np.ndarray:
    joints = [
        s[:, 6], s[:, 2], s[:, 1], s[:, 0], s[:, 3], s[:, 4], s[:, 5],
        np.minimum(s[:, 6], s[:, 7]), s[:, 7], s[:, 8], s[:, 9], s[:, 13], s[:, 14], s[:, 15],
        s[:, 12], s[:, 11], s[:, 10],
    ]  # fmt: skip
    return np.stack(joints, axis=1)


@pytest.mark.parametrize(
    ("fmt", "k", "lowest", "mapping"),
    [
        (COCO, 17, lowest_coco, coco_to_h36m_reference),
        (MPII, 16, lowest_mpii, mpii_to_h36m_reference),
    ],
    ids=["coco17", "mpii16"],
)
def test_built_joints_take_the_lowest_source_score(cam_server, fmt, k, lowest, mapping) -> None:
    rng = np.random.default_rng(7)
    pixels = rng.uniform(0, 1000, (200, k, 2)).astype(np.float32)
    scores = rng.uniform(0.1, 0.9, (200, k)).astype(np.float32)
    camera = CAM(fx=1000, fy=1000, cx=500, cy=500)
    response = lift(cam_server, pixels, format=fmt, camera=camera, scores=tensor(scores))
    expected = lowest(scores) < MISSING_SCORE_THRESHOLD
    np.testing.assert_array_equal(array(response.joint_inferred), expected.astype(np.float32))
    # Where the lowest and the mean disagree, the lowest decides (a mean would pass these).
    mean = mapping(scores[..., None].astype(np.float64))[..., 0]
    assert (expected & (mean >= MISSING_SCORE_THRESHOLD)).any()
    # Keypoints map as before: seen joints' rays are the mapped pixels' rays.
    rays = (mapping(pixels.astype(np.float64)) - 500) / 1000
    seen = ~expected
    seen[:, 0] = False
    assert np.abs(fed(response)[seen][:, :2] - rays[seen]).max() < RAY_TOL


def test_format_one_bundles_are_unchanged_beside_camera_aware_ones(
    cam_server, camera_models: Path
) -> None:
    reference = Lifter(camera_models / CLASSIC / "lifter.onnx")
    pixels = np.random.default_rng(8).uniform(0, 1280, (30, 17, 2)).astype(np.float32)
    scores = np.full((30, 17), 0.1, np.float32)  # all "missing": format 1 does not care
    expected = reference(normalize_reference(pixels, 1280, 720))
    classic = lift(
        cam_server,
        pixels,
        model=CLASSIC,
        image_size=IMG(width=1280, height=720),
        scores=tensor(scores),
    )
    assert np.abs(array(classic.pose3d) - expected).max() <= 1e-5
    assert not classic.HasField("joint_inferred") and not classic.default_camera
    # A camera's size stands in for image_size; its focal length is not used by format 1.
    with_camera = lift(
        cam_server,
        pixels,
        model=CLASSIC,
        camera=CAM(fx=50, fy=50, cx=1, cy=1, width=1280, height=720),
    )
    assert np.abs(array(with_camera.pose3d) - expected).max() <= 1e-5
    # Per-pose cameras' sizes are per-pose image sizes.
    sizes = [(1280, 720), (640, 480)] * 15
    per_pose = lift(
        cam_server,
        pixels,
        model=CLASSIC,
        cameras=[CAM(fx=50, fy=50, cx=1, cy=1, width=w, height=h) for w, h in sizes],
    )
    w, h = np.array(sizes).T
    per_pose_expected = reference(normalize_reference(pixels, w, h))
    assert np.abs(array(per_pose.pose3d) - per_pose_expected).max() <= 1e-5
    assert np.abs(per_pose_expected[1] - expected[1]).max() > 1e-3  # the sizes mattered
    # The default model is the format 1 one: requests without a model are served as before.
    default = cam_server.stub.Lift2Dto3D(
        poseaug_pb2.Lift2Dto3DRequest(
            keypoints=tensor(pixels), image_size=IMG(width=1280, height=720)
        )
    )
    assert default.model == CLASSIC
    np.testing.assert_array_equal(array(default.pose3d), array(classic.pose3d))


def test_stream_mixes_generations_in_order(cam_server, camera_models: Path) -> None:
    reference = Lifter(camera_models / CLASSIC / "lifter.onnx")
    rng = np.random.default_rng(9)
    batches = [rng.uniform(0, 1000, (n, 17, 2)).astype(np.float32) for n in (3, 100, 1, 70)]
    camera = CAM(fx=800, fy=800, cx=500, cy=500)
    messages = []
    for i, batch in enumerate(batches):
        model = AWARE if i % 2 else CLASSIC
        request = poseaug_pb2.Lift2Dto3DRequest(
            keypoints=tensor(batch), model=model, request_id=str(i), camera=camera,
            image_size=IMG(width=1000, height=1000),
        )  # fmt: skip
        messages.append(poseaug_pb2.StreamLift2Dto3DRequest(request=request))
    responses = [m.response for m in cam_server.stub.StreamLift2Dto3D(iter(messages))]
    assert [r.request_id for r in responses] == ["0", "1", "2", "3"]
    for i, (batch, response) in enumerate(zip(batches, responses, strict=True)):
        if i % 2:
            assert np.abs(fed(response)[:, 1:, :2] - (batch[:, 1:] - 500) / 800).max() < RAY_TOL
            assert response.HasField("joint_inferred")
        else:
            expected = reference(normalize_reference(batch, 1000, 1000))
            assert np.abs(array(response.pose3d) - expected).max() <= 1e-5


def test_models_say_what_their_lifter_is_fed(cam_server) -> None:
    listed = cam_server.stub.ListModels(poseaug_pb2.ListModelsRequest())
    inputs = {m.name: m.lifter_input for m in listed.models}
    assert inputs == {CLASSIC: "videopose3d_screen", AWARE: "camera_rays"}
    info = cam_server.stub.GetModelInfo(poseaug_pb2.GetModelInfoRequest(model=AWARE)).model
    assert info.lifter_input == "camera_rays"


def test_unknown_inputs_are_refused_with_a_logged_reason(cam_server) -> None:
    log = cam_server.log()
    assert "refusing model bundle unknown-input" in log
    assert "unknown lifter.normalization 'depth_rays'" in log
    assert "refusing model bundle mismatched" in log
    assert "has 2 values per joint" in log


KP = np.full((2, 17, 2), 100.0, np.float32)
GOOD = dict(fx=1000.0, fy=1000.0, cx=500.0, cy=500.0)


def cam(**overrides) -> poseaug_pb2.CameraIntrinsics:
    return CAM(**{**GOOD, **overrides})


BAD_CAMERAS = {
    "fx NaN": (dict(camera=cam(fx=math.nan)), "camera.fx"),
    "fy Inf": (dict(camera=cam(fy=math.inf)), "camera.fy"),
    "cx NaN": (dict(camera=cam(cx=math.nan)), "camera.cx"),
    "cy -Inf": (dict(camera=cam(cy=-math.inf)), "camera.cy"),
    "radial NaN": (dict(camera=cam(radial=[0.1, math.nan, 0.0])), "camera.radial"),
    "tangential Inf": (dict(camera=cam(tangential=[math.inf, 0.0])), "camera.tangential"),
    "radial 2 values": (dict(camera=cam(radial=[0.1, 0.2])), "camera.radial"),
    "fx 0": (dict(camera=cam(fx=0.0)), "camera.fx"),
    "fy negative": (dict(camera=cam(fy=-5.0)), "camera.fy"),
    "all-zero camera": (dict(camera=CAM()), "camera.fx"),
    "per-pose fx 0": (dict(cameras=[cam(), cam(fx=0.0)]), "cameras[1].fx"),
    "per-pose cy NaN": (dict(cameras=[cam(cy=math.nan), cam()]), "cameras[0].cy"),
    "camera and cameras": (dict(camera=cam(), cameras=[cam(), cam()]), "camera"),
    "cameras length": (dict(cameras=[cam()]), "cameras"),
    "width vs image_size": (
        dict(camera=cam(width=640, height=480), image_size=IMG(width=1920, height=480)),
        "camera.width",
    ),
    "height vs image_size": (
        dict(camera=cam(width=640, height=480), image_size=IMG(width=640, height=360)),
        "camera.height",
    ),
    "per-pose camera vs image_sizes": (
        dict(
            cameras=[cam(width=640, height=480), cam(width=640, height=480)],
            image_sizes=[IMG(width=640, height=480), IMG(width=640, height=360)],
        ),
        "cameras[1].height",
    ),
    "camera vs image_sizes": (
        dict(
            camera=cam(width=640, height=480),
            image_sizes=[IMG(width=640, height=480), IMG(width=800, height=480)],
        ),
        "camera.width",
    ),
    "cameras vs image_size": (
        dict(
            cameras=[cam(), cam(width=800, height=480)],
            image_size=IMG(width=640, height=480),
        ),
        "cameras[1].width",
    ),
}


@pytest.mark.parametrize("model", [AWARE, CLASSIC])
@pytest.mark.parametrize("case", BAD_CAMERAS)
def test_bad_cameras_are_refused(cam_server, case: str, model: str) -> None:
    fields, field = BAD_CAMERAS[case]
    with pytest.raises(grpc.RpcError) as info:
        lift(cam_server, KP, model=model, **fields)
    assert info.value.code() == INVALID, info.value.details()
    assert info.value.details().startswith(f"{field}:"), info.value.details()


def test_sizes_each_generation_needs(cam_server) -> None:
    # Camera-aware: a camera with fx, fy, cx, cy is enough (width and height not given).
    assert lift(cam_server, KP, camera=cam()).HasField("pose3d")
    # Matching sizes are fine; zero (not given) sizes are never compared.
    lift(cam_server, KP, camera=cam(width=640, height=480), image_size=IMG(width=640, height=480))
    lift(
        cam_server,
        KP,
        cameras=[cam(), cam(width=9, height=9)],
        image_sizes=[IMG(width=1, height=1), IMG(width=9, height=9)],
    )
    for model, fields, message in [
        (AWARE, {}, "needs a camera"),  # neither a camera nor a size for the default camera
        (CLASSIC, {}, "normalizes keypoints by the image size"),
        (CLASSIC, dict(camera=cam()), "camera has none"),  # camera without width and height
        (CLASSIC, dict(cameras=[cam(width=5, height=5), cam()]), "cameras[1] has none"),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            lift(cam_server, KP, model=model, **fields)
        assert info.value.code() == INVALID
        assert info.value.details().startswith("image_size:"), info.value.details()
        assert message in info.value.details()


def test_stream_names_the_bad_camera(cam_server) -> None:
    good = poseaug_pb2.Lift2Dto3DRequest(keypoints=tensor(KP), model=AWARE, camera=cam())
    bad = poseaug_pb2.Lift2Dto3DRequest(keypoints=tensor(KP), model=AWARE, camera=cam(fx=-1.0))
    stream = cam_server.stub.StreamLift2Dto3D(
        iter([poseaug_pb2.StreamLift2Dto3DRequest(request=r) for r in (good, bad)])
    )
    assert next(stream).response.HasField("joint_inferred")
    with pytest.raises(grpc.RpcError) as info:
        next(stream)
    assert info.value.details().startswith("request[1].camera.fx:"), info.value.details()


def test_undistortion_that_cannot_converge_is_refused(cam_server) -> None:
    # A pixel far outside the image of a strongly distorted camera has no ray.
    pixels = KP.copy()
    pixels[1, 4] = (1e5, 1e5)
    camera = cam(radial=[-0.3, 0.0, 0.0])
    with pytest.raises(grpc.RpcError) as info:
        lift(cam_server, pixels, camera=camera)
    assert info.value.code() == INVALID
    assert info.value.details().startswith("camera:"), info.value.details()
    # The same pixel is fine once its joint is missing.
    scores = np.ones((2, 17), np.float32)
    scores[1, 4] = 0.0
    response = lift(cam_server, pixels, camera=camera, scores=tensor(scores))
    assert array(response.joint_inferred)[1, 4] == 1.0
