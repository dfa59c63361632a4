"""Part-aware KCS 3D discriminator and 2D pose discriminator."""

from __future__ import annotations

import math

import torch

from poseaug_training.poseaug.bones import unit_bone_vectors
from poseaug_training.poseaug.kcs_discriminator import (
    KCS_PART_BONES,
    KCSDiscriminator,
    kcs_matrix,
)
from poseaug_training.poseaug.pose2d_discriminator import Pose2DDiscriminator
from poseaug_training.skeleton import NUM_JOINTS, PART_BONES
from tests.training.poseaug_helpers import random_poses, random_roots

N = 10


def _disc() -> KCSDiscriminator:
    torch.manual_seed(0)
    return KCSDiscriminator().eval()


def test_kcs_output_has_one_score_per_part():
    d = _disc()
    out = d(random_poses(N))
    assert out.shape == (N, len(PART_BONES))
    assert d.part_names == tuple(PART_BONES)


def test_kcs_parts_extend_the_skeleton_parts_with_torso_anchors():
    for part, bones in PART_BONES.items():
        assert set(bones) <= set(KCS_PART_BONES[part])
    assert KCS_PART_BONES["left_leg"] == (0, 3, 4, 5, 6)
    assert KCS_PART_BONES["right_arm"] == (7, 13, 14, 15)


def test_kcs_psi_is_b_b_transpose_of_unit_bones():
    d = _disc()
    pose = random_poses(N, seed=1)
    psi = d.psi(pose)
    unit = unit_bone_vectors(pose)
    for part, bones in KCS_PART_BONES.items():
        b = unit[:, list(bones)]
        expected = torch.einsum("nic,njc->nij", b, b)
        torch.testing.assert_close(psi[part], expected)
        torch.testing.assert_close(psi[part], kcs_matrix(b))
        assert psi[part].shape == (N, len(bones), len(bones))
        torch.testing.assert_close(
            torch.diagonal(psi[part], dim1=1, dim2=2), torch.ones(N, len(bones))
        )


def test_kcs_invariant_to_translation_rotation_and_bone_scale():
    d = _disc()
    pose = random_poses(N, seed=2)
    ref = d(pose)
    torch.testing.assert_close(d(pose + random_roots(N)[:, None]), ref, atol=1e-4, rtol=1e-4)
    a = math.radians(40)
    rot = torch.tensor([[1.0, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    torch.testing.assert_close(d(pose @ rot.T), ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(d(1.3 * pose), ref, atol=1e-4, rtol=1e-4)


def test_kcs_tells_poses_apart_and_passes_gradients():
    d = _disc()
    pose = random_poses(N, seed=3).requires_grad_(True)
    bent = random_poses(N, seed=3, jitter=0.3)
    assert (d(pose) - d(bent)).abs().max() > 1e-3
    d(pose).sum().backward()
    assert pose.grad is not None and pose.grad.abs().sum() > 0


def test_kcs_with_raw_bone_vectors_sees_length():
    torch.manual_seed(0)
    d = KCSDiscriminator(unit_bones=False).eval()
    pose = random_poses(N, seed=4)
    assert (d(1.3 * pose) - d(pose)).abs().max() > 1e-4


def test_pose2d_discriminator_shape_position_sensitivity_and_gradients():
    torch.manual_seed(0)
    d = Pose2DDiscriminator().eval()
    pose2d = (random_poses(N, seed=5)[..., :2] / 5.0).requires_grad_(True)
    out = d(pose2d)
    assert out.shape == (N, 1)
    # Not root-relative: where the body is in the image matters.
    shifted = d(pose2d + torch.tensor([0.3, 0.1]))
    assert (shifted - out).abs().max() > 1e-4
    out.sum().backward()
    assert pose2d.grad.abs().sum() > 0
    assert d.layer1.in_features == NUM_JOINTS * 2 and d.layer2.out_features == 100
