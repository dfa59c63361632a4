"""PoseAugClient against the real server: unary calls, formats, options, chunking, errors."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from poseaug.v1 import poseaug_pb2
from poseaug_client import H36M_JOINT_NAMES, Camera, PoseAugClient, PoseAugError
from tests.clients.conftest import DEFAULT_MODEL, LIFT_ONLY_MODEL
from tests.clients.helpers import raw_augment, raw_lift, request_count


def test_health_reports_serving_for_server_and_service(client: PoseAugClient) -> None:
    assert client.health() == "SERVING"
    assert client.health("poseaug.v1.PoseAugService") == "SERVING"
    with pytest.raises(PoseAugError) as info:
        client.health("no.such.Service")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert "no.such.Service" in info.value.message


def test_models_describe_both_bundles(client: PoseAugClient) -> None:
    models = {m.name: m for m in client.models()}
    assert set(models) == {DEFAULT_MODEL, LIFT_ONLY_MODEL}
    tiny, lift_only = models[DEFAULT_MODEL], models[LIFT_ONLY_MODEL]
    assert tiny.is_default and not lift_only.is_default
    assert tiny.has_augmentor and not lift_only.has_augmentor
    assert set(tiny.input_formats) == {"h36m17", "coco17", "mpii16"}
    assert tiny.joint_names == H36M_JOINT_NAMES
    assert tiny.joint_parents[0] == -1 and len(tiny.joint_parents) == 17
    assert tiny.providers, "the server names the execution providers in use"
    assert tiny.metrics == {"test.synthetic.mpjpe_mm": 1.5}
    assert tiny.manifest["name"] == DEFAULT_MODEL
    assert tiny.to_dict()["name"] == DEFAULT_MODEL


def test_model_info_default_named_and_unknown(client: PoseAugClient) -> None:
    assert client.model_info().name == DEFAULT_MODEL
    assert client.model_info(LIFT_ONLY_MODEL).name == LIFT_ONLY_MODEL
    with pytest.raises(PoseAugError) as info:
        client.model_info("no-such-model")
    assert info.value.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    assert "no-such-model" in info.value.message


def test_lift_matches_the_bare_stub(client, server, keypoints) -> None:
    poses = client.lift(keypoints, image_size=(1280, 720))
    assert poses.shape == (23, 17, 3) and poses.dtype == np.float32
    assert poses.flags.writeable
    np.testing.assert_array_equal(poses, raw_lift(server, keypoints, size=(1280, 720)))
    np.testing.assert_array_equal(poses[:, 0], 0.0)  # root-relative


@pytest.mark.parametrize(
    ("name", "enum", "joints"),
    [
        ("coco17", poseaug_pb2.KEYPOINT_FORMAT_COCO_17, 17),
        ("MPII_16", poseaug_pb2.KEYPOINT_FORMAT_MPII_16, 16),
    ],
)
def test_lift_sends_the_keypoint_format(client, server, name, enum, joints) -> None:
    keypoints = np.random.default_rng(2).uniform(100, 900, (5, joints, 2)).astype(np.float32)
    poses = client.lift(keypoints, format=name)
    np.testing.assert_array_equal(poses, raw_lift(server, keypoints, fmt=enum))


def test_per_pose_image_sizes_match_one_call_per_size(client, keypoints) -> None:
    sizes = np.array([[1000, 1000], [1920, 1080], [640, 480]] * 8)[: len(keypoints)]
    together = client.lift(keypoints, image_size=sizes)
    for i in (0, 1, 2):
        alone = client.lift(keypoints[i : i + 1], image_size=tuple(sizes[i]))
        np.testing.assert_array_equal(together[i : i + 1], alone)
    assert not np.array_equal(together[0], client.lift(keypoints[:1], image_size=(1920, 1080))[0])


def test_single_pose_and_scores(client, keypoints) -> None:
    batch = client.lift(keypoints)
    single = client.lift(keypoints[3])
    assert single.shape == (17, 3)
    np.testing.assert_array_equal(single, batch[3])
    scores = np.random.default_rng(3).uniform(0, 1, keypoints.shape[:2])
    np.testing.assert_array_equal(client.lift(keypoints, scores=scores), batch)


def test_model_selection(client, server, keypoints) -> None:
    other = client.lift(keypoints, model=LIFT_ONLY_MODEL)
    np.testing.assert_array_equal(other, raw_lift(server, keypoints, model=LIFT_ONLY_MODEL))
    assert not np.allclose(other, client.lift(keypoints))


def test_lift_over_the_per_call_limit_is_chunked_with_identical_results(server, keypoints) -> None:
    with (
        PoseAugClient(server.address) as whole,
        PoseAugClient(server.address, max_poses_per_call=4) as chunked,
    ):
        expected = whole.lift(keypoints)
        before = request_count(server, "Lift2Dto3D")
        got = chunked.lift(keypoints)
        assert request_count(server, "Lift2Dto3D") - before == 6  # ceil(23 / 4) calls
    np.testing.assert_array_equal(got, expected)


def test_augment_returns_poses_projections_and_parameters(client, server, poses3d) -> None:
    result = client.augment(poses3d, count=3, seed=11)
    poses, keypoints2d, params = result  # a tuple, as documented
    assert poses.shape == (33, 17, 3) and keypoints2d.shape == (33, 17, 2)
    assert set(params) == {
        "bone_angle_offsets",
        "bone_length_ratios",
        "rotation",
        "translation",
        "outside_joint_limits",
    }
    assert result.outside_joint_limits.shape == (33,)
    assert result.outside_joint_limits.dtype == bool
    assert params["bone_angle_offsets"].shape == (33, 16, 3)
    assert params["bone_length_ratios"].shape == (33, 16)
    np.testing.assert_array_equal(poses, raw_augment(server, poses3d, 3, 11))
    np.testing.assert_array_equal(client.augment(poses3d, count=3, seed=11).poses3d, poses)
    assert not np.allclose(client.augment(poses3d, count=3, seed=12).poses3d, poses)


def test_augment_ops_and_camera(client, poses3d) -> None:
    always = {"translation", "outside_joint_limits"}  # where each pose is, and the check
    only_bl = client.augment(poses3d, ops="bl")
    assert set(only_bl.params) == {"bone_length_ratios", *always}
    only_rt = client.augment(poses3d, ops=["RT"])
    assert set(only_rt.params) == {"rotation", *always}
    camera = {"fx": 500.0, "fy": 500.0, "cx": 320.0, "cy": 240.0, "width": 640, "height": 480}
    # With the augmentor's own placement the camera only changes the projection ...
    default_cam = client.augment(poses3d, seed=4, placement="learned")
    other_cam = client.augment(poses3d, seed=4, camera=camera, placement="learned")
    np.testing.assert_array_equal(other_cam.poses3d, default_cam.poses3d)
    assert not np.allclose(other_cam.keypoints2d, default_cam.keypoints2d)
    # ... by default each body is placed in that camera's image: a Camera works like a mapping.
    placed = client.augment(poses3d, seed=4, camera=Camera(500, 500, 320, 240, 640, 480))
    np.testing.assert_array_equal(
        placed.poses3d, client.augment(poses3d, seed=4, camera=camera).poses3d
    )
    assert ((placed.keypoints2d >= 0) & (placed.keypoints2d <= [640, 480])).all()
    assert not np.allclose(placed.poses3d[:, 0], other_cam.poses3d[:, 0])


def test_augment_options_reach_the_server(client, poses3d) -> None:
    camera = Camera(1500, 1500, 960, 540, 1920, 1080)
    coco = client.augment(poses3d, count=2, seed=1, camera=camera, keypoint_format="coco17")
    h36m = client.augment(poses3d, count=2, seed=1, camera=camera)
    np.testing.assert_array_equal(coco.keypoints2d[:, 0], h36m.keypoints2d[:, 9])  # nose
    upright = client.augment(poses3d, count=2, seed=1, camera=camera, max_tilt_deg=0)
    assert not np.array_equal(upright.poses3d, h36m.poses3d)
    again = client.augment(poses3d, count=2, seed=1, camera=camera, redraw_implausible=True)
    assert again.outside_joint_limits.sum() <= h36m.outside_joint_limits.sum()
    streamed = list(client.augment_stream(poses3d, count=2, seed=1, camera=camera, chunk_size=5))
    np.testing.assert_array_equal(np.concatenate([c.poses3d for c in streamed]), h36m.poses3d)


def test_augment_over_the_limit_streams_and_matches_one_call(server, poses3d) -> None:
    with (
        PoseAugClient(server.address) as whole,
        PoseAugClient(server.address, max_poses_per_call=4) as chunked,
    ):
        expected = whole.augment(poses3d, count=2, seed=5)
        before = request_count(server, "StreamAugment")
        got = chunked.augment(poses3d, count=2, seed=5)
        assert request_count(server, "StreamAugment") - before == 1
    for a, b in zip(got[:2], expected[:2], strict=True):
        np.testing.assert_array_equal(a, b)
    for name, value in expected.params.items():
        np.testing.assert_array_equal(got.params[name], value)


def test_augment_needs_a_bundle_with_an_augmentor(client, poses3d) -> None:
    with pytest.raises(PoseAugError) as info:
        client.augment(poses3d, model=LIFT_ONLY_MODEL)
    assert info.value.code != grpc.StatusCode.OK
    assert LIFT_ONLY_MODEL in info.value.message or "augmentor" in info.value.message


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.lift(np.zeros((2, 16, 2))), "keypoints"),
        (lambda c: c.lift(np.zeros((2, 17, 2)), format="openpose"), "format"),
        (lambda c: c.lift(np.zeros((2, 17, 2)), image_size=(0, 10)), "image_size"),
        (lambda c: c.lift(np.zeros((2, 17, 2)), image_size=np.ones((3, 2))), "image_size"),
        (lambda c: c.lift(np.zeros((2, 17, 2)), scores=np.ones((2, 16))), "scores"),
        (lambda c: c.augment(np.zeros((2, 17, 2))), "poses3d"),
        (lambda c: c.augment(np.zeros((2, 17, 3)), count=0), "count"),
        (lambda c: c.augment(np.zeros((2, 17, 3)), ops="xx"), "ops"),
        (lambda c: c.augment(np.zeros((2, 17, 3)), seed=-1), "seed"),
        (lambda c: c.augment(np.zeros((2, 17, 3)), camera={"f": 1}), "camera"),
        (lambda c: c.augment(np.zeros((2, 17, 3)), camera=[{"fx": 1}] * 2), "camera"),
        (lambda c: c.augment(np.zeros((2, 17, 3)), placement="floor"), "placement"),
        (lambda c: c.augment(np.zeros((2, 17, 3)), max_tilt_deg=190), "max_tilt_deg"),
        (lambda c: c.augment(np.zeros((2, 17, 3)), keypoint_format="mpii16"), "keypoint_format"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field(client, call, field) -> None:
    with pytest.raises(PoseAugError) as info:
        call(client)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message.startswith(field)


def test_server_side_rejections_carry_code_and_message(client, server, keypoints) -> None:
    bad = keypoints.copy()
    bad[0, 0, 0] = np.nan
    before = request_count(server, "Lift2Dto3D", "INVALID_ARGUMENT")
    with pytest.raises(PoseAugError) as info:
        client.lift(bad)
    assert request_count(server, "Lift2Dto3D", "INVALID_ARGUMENT") - before == 1
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.code_name == "INVALID_ARGUMENT"
    assert "keypoints" in info.value.message
    assert str(info.value).startswith("INVALID_ARGUMENT: ")


def test_progress_bar_only_when_asked(client, keypoints, capsys) -> None:
    client.lift(keypoints)
    assert capsys.readouterr().err == ""
    client.lift(keypoints, progress=True)
    assert "lift" in capsys.readouterr().err
    client.augment(keypoints[:2, :, :1].repeat(3, -1), progress={"desc": "my job"})
    assert "my job" in capsys.readouterr().err
