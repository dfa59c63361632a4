"""Bone vectors, forward kinematics, lengths and directions."""

from __future__ import annotations

import pytest
import torch

from poseaug_training.poseaug.bones import (
    bone_lengths,
    bone_vectors,
    kinematic_matrix,
    normalize,
    pose_from_bone_vectors,
    root_relative,
    unit_bone_vectors,
    with_bone_lengths,
)
from poseaug_training.skeleton import NUM_BONES, NUM_JOINTS, PARENTS
from tests.training.poseaug_helpers import random_poses, random_roots


def test_bone_vectors_are_child_minus_parent():
    torch.manual_seed(0)
    pose = torch.randn(5, NUM_JOINTS, 3)
    bones = bone_vectors(pose)
    assert bones.shape == (5, NUM_BONES, 3)
    for b in range(NUM_BONES):
        torch.testing.assert_close(bones[:, b], pose[:, b + 1] - pose[:, PARENTS[b + 1]])


def test_round_trip_pose_bones_pose():
    pose = random_poses(8, seed=1)
    root = random_roots(8, seed=1)
    absolute = pose + root[:, None]
    rebuilt = pose_from_bone_vectors(bone_vectors(absolute), root)
    torch.testing.assert_close(rebuilt, absolute, atol=1e-6, rtol=0)
    rebuilt_rel = pose_from_bone_vectors(bone_vectors(absolute))
    torch.testing.assert_close(rebuilt_rel, root_relative(absolute), atol=1e-6, rtol=0)
    assert torch.count_nonzero(rebuilt_rel[:, 0]) == 0


def test_forward_kinematics_supports_extra_leading_dims():
    torch.manual_seed(0)
    bones = torch.randn(2, 3, NUM_BONES, 3)
    pose = pose_from_bone_vectors(bones)
    assert pose.shape == (2, 3, NUM_JOINTS, 3)
    torch.testing.assert_close(bone_vectors(pose), bones, atol=1e-6, rtol=0)


def test_kinematic_matrix_marks_the_path_to_each_joint():
    a = kinematic_matrix()
    assert a.shape == (NUM_JOINTS, NUM_BONES)
    for j in range(NUM_JOINTS):
        path, k = set(), j
        while PARENTS[k] != -1:
            path.add(k - 1)
            k = PARENTS[k]
        assert {int(b) for b in torch.nonzero(a[j]).flatten()} == path


def test_kinematic_matrix_rejects_bad_tree():
    with pytest.raises(ValueError):
        kinematic_matrix((-1, 2, 0))
    with pytest.raises(ValueError):
        kinematic_matrix((0, 0))


def test_lengths_and_unit_directions_recompose_bones():
    pose = random_poses(6, seed=2)
    lengths = bone_lengths(pose)
    unit = unit_bone_vectors(pose)
    assert lengths.shape == (6, NUM_BONES)
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(6, NUM_BONES))
    torch.testing.assert_close(unit * lengths[..., None], bone_vectors(pose), atol=1e-6, rtol=0)


def test_normalize_keeps_zero_vectors_finite_with_finite_gradient():
    v = torch.zeros(2, 3, requires_grad=True)
    out = normalize(v)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(v.grad).all()


def test_unit_bone_vectors_gradcheck():
    pose = random_poses(2, seed=3).double().requires_grad_(True)
    assert torch.autograd.gradcheck(unit_bone_vectors, (pose,))


def test_with_bone_lengths_sets_lengths_keeps_directions_and_root():
    pose = random_poses(4, seed=4) + random_roots(4, seed=4)[:, None]
    lengths = bone_lengths(random_poses(4, seed=40))
    new = with_bone_lengths(pose, lengths)
    torch.testing.assert_close(bone_lengths(new), lengths, atol=1e-5, rtol=0)
    torch.testing.assert_close(unit_bone_vectors(new), unit_bone_vectors(pose), atol=1e-5, rtol=0)
    torch.testing.assert_close(new[:, 0], pose[:, 0])
