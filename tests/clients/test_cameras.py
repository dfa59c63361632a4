"""The clients' camera and scores options against a camera-aware bundle beside a format 1 one.

The camera-aware test lifter echoes its input (x, y, visible per joint, joint 0 zeroed), so a
test reads the rays and visibility the server computed from what the client sent.
"""

from __future__ import annotations

import asyncio
import json
import math

import numpy as np
import pytest

from poseaug_client import AsyncPoseAugClient, Camera, LiftResult, PoseAugClient, PoseAugError
from poseaug_client.cli import main
from poseaug_service.camera_rays import MISSING_SCORE_THRESHOLD
from tests.clients.conftest import CAMERA_AWARE_MODEL, DEFAULT_MODEL
from tests.clients.test_cli import coco_results

TOL = 1e-6
CAMERA = Camera(fx=1200.0, fy=1100.0, cx=640.0, cy=360.0)


def rays(pixels: np.ndarray, camera: Camera) -> np.ndarray:
    """Undistorted pinhole rays (x, y) of pixels."""
    return np.stack(
        [(pixels[..., 0] - camera.cx) / camera.fx, (pixels[..., 1] - camera.cy) / camera.fy], -1
    )


def fov_rays(pixels: np.ndarray, width: int, height: int, degrees: float) -> np.ndarray:
    f = (width / 2) / math.tan(math.radians(degrees) / 2)
    return rays(pixels, Camera(f, f, width / 2, height / 2))


@pytest.fixture
def pixels() -> np.ndarray:
    return np.random.default_rng(2).uniform(0, 1280, (12, 17, 2)).astype(np.float32)


@pytest.fixture
def cam_client(camera_server):
    with PoseAugClient(camera_server.address) as c:
        yield c


def test_lift_sends_the_camera(cam_client, pixels) -> None:
    poses = cam_client.lift(pixels, camera=CAMERA, model=CAMERA_AWARE_MODEL)
    assert poses.shape == (12, 17, 3)
    assert np.abs(poses[:, 1:, :2] - rays(pixels, CAMERA)[:, 1:]).max() < TOL
    assert np.all(poses[:, 1:, 2] == 1.0)


def test_lift_result_reports_inferred_joints_and_the_default_camera(cam_client, pixels) -> None:
    scores = np.random.default_rng(3).uniform(0, 1, (12, 17)).astype(np.float32)
    result = cam_client.lift_result(
        pixels, image_size=(1280, 720), scores=scores, model=CAMERA_AWARE_MODEL
    )
    assert isinstance(result, LiftResult)
    assert result.default_camera and result.model == CAMERA_AWARE_MODEL
    missing = scores < MISSING_SCORE_THRESHOLD
    assert missing.any() and (~missing).any()
    np.testing.assert_array_equal(result.joint_inferred, missing.astype(np.float32))
    seen = ~missing
    seen[:, 0] = False
    expected = fov_rays(pixels, 1280, 720, 60.0)
    assert np.abs(result.poses3d[seen][:, :2] - expected[seen]).max() < TOL
    assert np.all(result.poses3d[missing][:, 2] == 0.0)
    np.testing.assert_allclose(result.pose_scores, scores.mean(axis=1), atol=1e-6)
    # A camera sent: not the default one.
    assert not cam_client.lift_result(
        pixels, camera=CAMERA, model=CAMERA_AWARE_MODEL
    ).default_camera


def test_per_pose_cameras_follow_their_poses_across_chunks(camera_server, pixels) -> None:
    cameras = [Camera(900.0 + 50 * i, 950.0, 600.0 + i, 350.0) for i in range(12)]
    with PoseAugClient(camera_server.address, max_poses_per_call=5) as small_calls:
        result = small_calls.lift_result(pixels, camera=cameras, model=CAMERA_AWARE_MODEL)
    expected = np.stack([rays(p, c) for p, c in zip(pixels, cameras, strict=True)])
    assert np.abs(result.poses3d[:, 1:, :2] - expected[:, 1:]).max() < TOL
    assert result.joint_inferred.shape == (12, 17)


def test_format_one_models_keep_their_answers(cam_client, pixels) -> None:
    plain = cam_client.lift(pixels, image_size=(1280, 720))
    sized = Camera(1.0, 1.0, 0.0, 0.0, width=1280, height=720)
    np.testing.assert_array_equal(cam_client.lift(pixels, camera=sized), plain)
    result = cam_client.lift_result(pixels, image_size=(1280, 720), scores=np.zeros((12, 17)))
    np.testing.assert_array_equal(result.poses3d, plain)
    assert result.joint_inferred is None and not result.default_camera
    # Without a size or a sized camera the format 1 model cannot normalize: the server says so.
    with pytest.raises(PoseAugError) as info:
        cam_client.lift(pixels, camera=CAMERA, model=DEFAULT_MODEL)
    assert info.value.message.startswith("image_size:")


def test_single_pose_and_client_side_checks(cam_client, pixels) -> None:
    one = cam_client.lift_result(pixels[0], camera=[CAMERA], model=CAMERA_AWARE_MODEL)
    assert one.poses3d.shape == (17, 3) and one.joint_inferred.shape == (17,)
    with pytest.raises(PoseAugError) as info:
        cam_client.lift(pixels, camera=[CAMERA] * 3, model=CAMERA_AWARE_MODEL)
    assert info.value.message.startswith("camera:") and "12" in info.value.message
    with pytest.raises(PoseAugError) as info:
        cam_client.lift(pixels, camera="1000,1000,640,360", model=CAMERA_AWARE_MODEL)
    assert info.value.message.startswith("camera:")
    with pytest.raises(PoseAugError) as info:  # the server's check, through the client
        cam_client.lift(pixels, camera=Camera(0.0, 1.0, 0.0, 0.0), model=CAMERA_AWARE_MODEL)
    assert info.value.message.startswith("camera.fx:")


def test_models_tell_the_generations_apart(cam_client) -> None:
    infos = {m.name: m for m in cam_client.models()}
    assert infos[DEFAULT_MODEL].lifter_input == "videopose3d_screen"
    assert not infos[DEFAULT_MODEL].camera_aware
    assert infos[CAMERA_AWARE_MODEL].lifter_input == "camera_rays"
    assert infos[CAMERA_AWARE_MODEL].camera_aware
    assert cam_client.model_info(CAMERA_AWARE_MODEL).to_dict()["lifter_input"] == "camera_rays"


def test_async_client_camera_and_scores(camera_server, pixels) -> None:
    scores = np.full((12, 17), 0.9, np.float32)
    scores[:, 3] = 0.1

    async def run():
        async with AsyncPoseAugClient(camera_server.address) as aclient:
            poses = await aclient.lift(pixels, camera=CAMERA, model=CAMERA_AWARE_MODEL)
            result = await aclient.lift_result(
                pixels, scores=scores, camera=CAMERA, model=CAMERA_AWARE_MODEL
            )
            streamed = [
                b
                async for b in aclient.lift_stream(
                    [pixels[:4], {"keypoints": pixels[4:], "camera": CAMERA}],
                    camera=Camera(500.0, 500.0, 0.0, 0.0),
                    model=CAMERA_AWARE_MODEL,
                )
            ]
            return poses, result, streamed

    poses, result, streamed = asyncio.run(run())
    assert np.abs(poses[:, 1:, :2] - rays(pixels, CAMERA)[:, 1:]).max() < TOL
    assert np.all(result.joint_inferred[:, 3] == 1.0) and result.joint_inferred.sum() == 12
    assert np.all(result.poses3d[:, 3] == 0.0)
    other = Camera(500.0, 500.0, 0.0, 0.0)
    assert np.abs(streamed[0][:, 1:, :2] - rays(pixels[:4], other)[:, 1:]).max() < TOL
    assert np.abs(streamed[1][:, 1:, :2] - rays(pixels[4:], CAMERA)[:, 1:]).max() < TOL


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_camera_and_fov(camera_server, pixels, tmp_path, capsys) -> None:
    np.savez(tmp_path / "in.npz", keypoints=pixels)
    common = ["lift", "--server", camera_server.address, "--input", tmp_path / "in.npz"]
    common += ["--model", CAMERA_AWARE_MODEL]
    code, _, err = cli(
        capsys, *common, "--output", tmp_path / "cam.npz", "--camera", "1200,1100,640,360"
    )
    assert code == 0, err
    with np.load(tmp_path / "cam.npz") as out:
        got, inferred = out["pose3d"], out["joint_inferred"]
    assert np.abs(got[:, 1:, :2] - rays(pixels, CAMERA)[:, 1:]).max() < TOL
    assert inferred.shape == (12, 17) and not inferred.any()
    code, _, err = cli(
        capsys, *common, "--output", tmp_path / "fov.npz", "--fov", "90", "--image-size", "1280x720"
    )
    assert code == 0, err
    with np.load(tmp_path / "fov.npz") as out:
        got = out["pose3d"]
    assert np.abs(got[:, 1:, :2] - fov_rays(pixels, 1280, 720, 90.0)[:, 1:]).max() < TOL
    for bad in (["--camera", "0,1,2,3"], ["--camera", "1,2,3"], ["--fov", "180"]):
        with pytest.raises(SystemExit) as info:
            cli(capsys, *common, "--output", tmp_path / "x.npz", *bad)
        assert info.value.code == 2
        assert bad[0] in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(capsys, *common, "--output", tmp_path / "x.npz", "--fov", "45", "--camera", "1,1,0,0")
    assert "not allowed with" in capsys.readouterr().err


def test_cli_coco_json_scores_drive_missing_joints(camera_server, pixels, tmp_path, capsys) -> None:
    visibility = np.random.default_rng(5).choice([0.0, 0.2, 0.8, 1.0], (12, 17))
    (tmp_path / "dets.json").write_text(json.dumps(coco_results(pixels, visibility)))
    code, _, err = cli(
        capsys, "lift", "--server", camera_server.address, "--input", tmp_path / "dets.json",
        "--output", tmp_path / "out.json", "--model", CAMERA_AWARE_MODEL, "--fov", "60",
        "--image-size", "1280x720",
    )  # fmt: skip
    assert code == 0, err
    records = json.loads((tmp_path / "out.json").read_text())
    # COCO's own lowest-source rule, written here: hip from both hips, head from both eyes...
    lowest = np.minimum
    v = visibility
    pelvis, thorax = lowest(v[:, 11], v[:, 12]), lowest(v[:, 5], v[:, 6])
    h36m = np.stack(
        [pelvis, v[:, 12], v[:, 14], v[:, 16], v[:, 11], v[:, 13], v[:, 15],
         lowest(pelvis, thorax), thorax, v[:, 0], lowest(v[:, 1], v[:, 2]), v[:, 5], v[:, 7],
         v[:, 9], v[:, 6], v[:, 8], v[:, 10]], axis=1,
    )  # fmt: skip
    expected = h36m < MISSING_SCORE_THRESHOLD
    got = np.array([r["joint_inferred"] for r in records])
    np.testing.assert_array_equal(got, expected)
    assert records[0]["image_id"] == 100
