"""The joint limits are written twice (the client's numpy check, which the service applies to
every augmented pose, and training's differentiable torch twin): the same limits, the same
angles, the same verdicts."""

from __future__ import annotations

import numpy as np
import torch

from poseaug_client import plausibility as client
from poseaug_training.poseaug import joint_limits as training
from tests.support.poses import STANDING, bend_knees, standing_poses


def poses() -> np.ndarray:
    rng = np.random.default_rng(0)
    random = rng.normal(0, 0.3, (200, 17, 3))
    bent = np.stack([bend_knees(STANDING, d) for d in np.linspace(-40, 175, 60)])
    return np.concatenate([standing_poses(100, seed=1), random, bent]).astype(np.float64)


def test_same_limits() -> None:
    assert {k: (v.low, v.high) for k, v in client.JOINT_LIMITS.items()} == training.JOINT_LIMITS
    assert client.HEAD_SEGMENT_BACK_DEG == training.HEAD_SEGMENT_BACK_DEG


def test_same_angles_and_verdicts() -> None:
    p = poses()
    expected = client.joint_angles(p)
    got = training.joint_angles(torch.from_numpy(p))
    assert set(got) == set(expected)
    for name, angle in expected.items():
        # asin/acos are clipped 1e-6 short of +-1 in torch (finite gradients): <0.1 deg there
        np.testing.assert_allclose(got[name].numpy(), angle, atol=0.1, err_msg=name)
    flags = client.outside_joint_limits(p)
    assert np.array_equal(training.outside_joint_limits(torch.from_numpy(p)).numpy(), flags)
    assert 0.2 < flags.mean() < 0.9  # both verdicts occur
    up = np.array([0.0, -1.0, 0.0])
    np.testing.assert_allclose(
        training.tilt_from_upright(torch.from_numpy(p), torch.from_numpy(up)).numpy(),
        client.tilt_from_upright(p, up),
        atol=0.1,
    )


def test_standing_bodies_are_inside_and_bent_back_knees_are_not() -> None:
    assert not client.outside_joint_limits(standing_poses(50)).any()
    assert client.outside_joint_limits(bend_knees(STANDING, -15.0))
    assert client.outside_joint_limits(bend_knees(STANDING, 170.0))
    assert not client.outside_joint_limits(bend_knees(STANDING, 150.0))
    angles = client.joint_angles(bend_knees(STANDING, 40.0))
    assert abs(angles["left_knee_flexion"] - 40.0) < 1e-6
    assert abs(angles["right_hip_flexion"]) < 1e-6
