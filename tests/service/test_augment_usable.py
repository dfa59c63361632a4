"""Augment's output as callers use it: placed in the camera's view, no more than a bound from
upright, checked against the joint limits (and re-drawn on request), in COCO-17 on request."""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest

from poseaug.v1 import poseaug_pb2
from poseaug_client.plausibility import outside_joint_limits
from poseaug_service.keypoint_formats import COCO_TO_H36M, H36M_TO_COCO
from poseaug_service.placement import FILL, MIN_JOINT_DEPTH_M, MIN_ROOT_DEPTH_M
from poseaug_service.rotations import UP, from_axis_angle, to_matrix
from tests.service.test_augment import AS_LEARNED, H36M_LIKE, camera_message, source_poses
from tests.support.poses import STANDING, bend_knees, standing_poses
from tests.support.protos import array, tensor

BA = poseaug_pb2.AUGMENT_OP_BA
CAMERAS = {
    "square": poseaug_pb2.CameraIntrinsics(
        fx=1145, fy=1145, cx=500, cy=500, width=1000, height=1000
    ),
    "full_hd": poseaug_pb2.CameraIntrinsics(
        fx=1500, fy=1500, cx=960, cy=540, width=1920, height=1080
    ),
    "portrait_wide": poseaug_pb2.CameraIntrinsics(
        fx=700, fy=700, cx=540, cy=960, width=1080, height=1920
    ),
    "h36m_distorted": camera_message(H36M_LIKE),
}


def request(poses: np.ndarray, **fields) -> poseaug_pb2.AugmentRequest:
    return poseaug_pb2.AugmentRequest(poses3d=tensor(poses), **fields)


def tilt_deg(axis_angle: np.ndarray) -> np.ndarray:
    """How far each rotation takes the camera's up direction, degrees."""
    turned = to_matrix(from_axis_angle(axis_angle)) @ UP
    return np.degrees(np.arccos(np.clip(turned @ UP, -1.0, 1.0)))


@pytest.mark.parametrize("camera", list(CAMERAS), ids=list(CAMERAS))
def test_default_placement_keeps_every_body_in_view_at_a_plausible_size(server, camera) -> None:
    cam = CAMERAS[camera]
    resp = server.stub.Augment(request(source_poses(40, seed=3), count=5, seed=8, camera=cam))
    poses, pix = array(resp.poses3d), array(resp.keypoints2d)
    assert ((pix >= 0) & (pix <= [cam.width, cam.height])).all()
    share = ((pix.max(axis=1) - pix.min(axis=1)) / [cam.width, cam.height]).max(axis=1)
    depth = poses[:, 0, 2]
    assert (depth >= MIN_ROOT_DEPTH_M - 1e-6).all()
    assert (poses[..., 2] >= MIN_JOINT_DEPTH_M - 1e-6).all()
    # Only a body held back at the nearest depth allowed may fill less than the range: a lens
    # so wide that a body looks small there (the portrait camera sees 107 degrees from top to
    # bottom, and the toy bodies are about 1 m tall: most of them are held back there).
    floor = np.maximum(
        MIN_ROOT_DEPTH_M, MIN_JOINT_DEPTH_M - (poses[..., 2] - depth[:, None]).min(1)
    )
    free = depth > floor + 1e-3
    assert free.mean() > 0.3
    assert share[free].min() >= FILL[0] - 1e-3 and share.max() <= FILL[1] + 1e-3
    assert share.max() - share.min() > 0.3  # sizes are drawn across the range, not fixed
    assert np.array_equal(array(resp.parameters.translation), poses[:, 0])


def test_placement_moves_bodies_rigidly(server) -> None:
    """In-view placement changes where a body is, nothing else."""
    poses = source_poses(6, seed=4)
    learned = server.stub.Augment(request(poses, count=3, seed=5, **AS_LEARNED))
    placed = server.stub.Augment(request(poses, count=3, seed=5, max_tilt_deg=180.0))
    a, b = array(learned.poses3d), array(placed.poses3d)
    assert np.abs((a - a[:, :1]) - (b - b[:, :1])).max() <= 1e-5
    assert np.abs(a[:, 0] - b[:, 0]).max() > 0.1


@pytest.mark.parametrize("bound", [0.0, 5.0, 15.0])
def test_tilt_is_cut_to_the_bound_and_the_turn_about_up_kept(server, bound) -> None:
    # Upright bodies: the bound's stop at horizontal (test_rotations.py) never acts on them
    poses = standing_poses(20, seed=6)
    fields = dict(count=4, seed=21, placement=poseaug_pb2.PLACEMENT_LEARNED)
    free = server.stub.Augment(request(poses, max_tilt_deg=180.0, **fields))
    cut = server.stub.Augment(request(poses, max_tilt_deg=bound, **fields))
    free_rot, cut_rot = array(free.parameters.rotation), array(cut.parameters.rotation)
    free_tilt, cut_tilt = tilt_deg(free_rot), tilt_deg(cut_rot)
    assert free_tilt.max() > bound + 1  # the toy augmentor does tilt past the bound
    np.testing.assert_allclose(cut_tilt, np.minimum(free_tilt, bound), atol=1e-3)
    # the bounded body is the learned one turned by R_cut R_free^T about its root
    turn = to_matrix(from_axis_angle(cut_rot)) @ to_matrix(from_axis_angle(free_rot)).transpose(
        0, 2, 1
    )
    free_body = array(free.poses3d) - array(free.parameters.translation)[:, None]
    cut_body = array(cut.poses3d) - array(cut.parameters.translation)[:, None]
    np.testing.assert_allclose(cut_body, np.einsum("nij,nkj->nki", turn, free_body), atol=1e-5)
    # where the bound cuts nothing, nothing changes: RT's own rotation and pose, to the bit
    untouched = free_tilt <= bound - 1e-3
    np.testing.assert_array_equal(cut_rot[untouched], free_rot[untouched])
    np.testing.assert_array_equal(array(cut.poses3d)[untouched], array(free.poses3d)[untouched])


def test_default_tilt_bound_is_30_degrees(server) -> None:
    poses = source_poses(20, seed=7)
    fields = dict(count=4, seed=2, placement=poseaug_pb2.PLACEMENT_LEARNED)
    default = server.stub.Augment(request(poses, **fields))
    thirty = server.stub.Augment(request(poses, max_tilt_deg=30.0, **fields))
    fifteen = server.stub.Augment(request(poses, max_tilt_deg=15.0, **fields))
    assert default.poses3d.data == thirty.poses3d.data
    assert default.poses3d.data != fifteen.poses3d.data  # the toy tilts up to about 22 degrees
    assert tilt_deg(array(default.parameters.rotation)).max() <= 30 + 1e-3


def test_joint_limit_flags_match_the_client_check(server) -> None:
    poses = np.concatenate([standing_poses(10, seed=1), source_poses(10, seed=2)])
    resp = server.stub.Augment(request(poses, count=3, seed=4))
    flags = array(resp.outside_joint_limits)
    assert flags.shape == (60,)
    expected = outside_joint_limits(array(resp.poses3d))
    assert np.array_equal(flags > 0.5, expected)
    assert expected[:30].mean() < expected[30:].mean()  # standing bodies, random joints
    assert resp.redrawn == 0


def test_redraw_replaces_implausible_rows_only(server) -> None:
    # Knees a degree short of the hyperextension limit: BA's offsets push some of them over.
    near_limit = np.repeat(bend_knees(STANDING, -9.0)[None], 12, axis=0).astype(np.float32)
    fields = dict(count=4, seed=13, ops=[BA])
    once = server.stub.Augment(request(near_limit, **fields))
    redrawn = server.stub.Augment(request(near_limit, redraw_implausible=True, **fields))
    before, after = (
        array(once.outside_joint_limits) > 0.5,
        array(redrawn.outside_joint_limits) > 0.5,
    )
    assert before.sum() >= 5, "the test needs rows outside the limits to start with"
    assert after.sum() < before.sum()
    assert redrawn.redrawn == before.sum()
    assert np.array_equal(array(once.poses3d)[~before], array(redrawn.poses3d)[~before])
    assert np.array_equal(after, outside_joint_limits(array(redrawn.poses3d)))


@pytest.mark.parametrize("chunk_size", [1, 7])
def test_streamed_rows_equal_unary_rows_with_every_option(server, chunk_size: int) -> None:
    near_limit = np.repeat(bend_knees(STANDING, -9.0)[None], 5, axis=0).astype(np.float32)
    poses = np.concatenate([near_limit, source_poses(4, seed=9)])
    job = request(
        poses,
        count=3,
        seed=77,
        redraw_implausible=True,
        keypoint_format=poseaug_pb2.KEYPOINT_FORMAT_COCO_17,
        camera=CAMERAS["full_hd"],
    )
    unary = server.stub.Augment(job)
    chunks = list(
        server.stub.StreamAugment(
            poseaug_pb2.StreamAugmentRequest(request=job, chunk_size=chunk_size)
        )
    )
    for name in ("poses3d", "keypoints2d", "outside_joint_limits"):
        streamed = np.concatenate([array(getattr(c.chunk, name)) for c in chunks])
        assert streamed.tobytes() == array(getattr(unary, name)).tobytes()
    assert sum(c.chunk.redrawn for c in chunks) == unary.redrawn


def test_coco_keypoints(server) -> None:
    poses = standing_poses(8, seed=3)
    fields = dict(count=2, seed=6, camera=CAMERAS["full_hd"])
    h36m = server.stub.Augment(request(poses, **fields))
    coco = server.stub.Augment(
        request(poses, keypoint_format=poseaug_pb2.KEYPOINT_FORMAT_COCO_17, **fields)
    )
    assert h36m.keypoint_format == poseaug_pb2.KEYPOINT_FORMAT_H36M_17
    assert coco.keypoint_format == poseaug_pb2.KEYPOINT_FORMAT_COCO_17
    assert coco.poses3d.data == h36m.poses3d.data
    h, c = array(h36m.keypoints2d), array(coco.keypoints2d)
    assert c.shape == h.shape == (16, 17, 2)
    np.testing.assert_allclose(c, np.einsum("kj,njc->nkc", H36M_TO_COCO, h), atol=1e-3)
    np.testing.assert_allclose(c[:, 0], h[:, 9], atol=1e-3)  # nose = neck/nose
    np.testing.assert_allclose(c[:, 9], h[:, 13], atol=1e-3)  # left wrist by name
    # The lift side's COCO mapping takes head and neck/nose back exactly.
    back = np.einsum("jk,nkc->njc", COCO_TO_H36M, c)
    np.testing.assert_allclose(back[:, [9, 10]], h[:, [9, 10]], atol=1e-3)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (dict(max_tilt_deg=-1.0), "max_tilt_deg"),
        (dict(max_tilt_deg=180.5), "max_tilt_deg"),
        (dict(max_tilt_deg=math.nan), "max_tilt_deg"),
        (dict(placement=7), "placement"),
        (dict(keypoint_format=poseaug_pb2.KEYPOINT_FORMAT_MPII_16), "keypoint_format"),
        (dict(keypoint_format=42), "keypoint_format"),
    ],
    ids=["tilt_negative", "tilt_over_180", "tilt_nan", "placement", "mpii", "format_unknown"],
)
def test_bad_options_are_refused_naming_the_field(server, fields, field) -> None:
    job = request(source_poses(2), seed=1, **fields)
    with pytest.raises(grpc.RpcError) as err:
        server.stub.Augment(job)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field), err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        list(server.stub.StreamAugment(poseaug_pb2.StreamAugmentRequest(request=job)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"request.{field}"), err.value.details()
