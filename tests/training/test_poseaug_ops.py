"""The three differentiable operations: BA, BL and RT."""

from __future__ import annotations

import math

import torch

from poseaug_training.poseaug.bone_angle_op import apply_bone_angle, bone_angle_change
from poseaug_training.poseaug.bone_length_op import (
    BL_FIXED_BONES,
    GROUP_OF_BONE,
    apply_bone_length,
    bone_length_ratios,
    group_changes,
)
from poseaug_training.poseaug.bones import bone_lengths, bone_vectors, unit_bone_vectors
from poseaug_training.poseaug.rotation_translation_op import (
    apply_rotation_translation,
    axis_angle_to_matrix,
    rotation_from_raw,
    translation_from_raw,
)
from poseaug_training.skeleton import BA_FIXED_BONES, BONE_LENGTH_GROUPS, NUM_BONES
from tests.training.poseaug_helpers import random_poses, random_roots

N = 16


def _offsets(seed: int, scale: float = 0.5) -> torch.Tensor:
    return scale * torch.randn(N, NUM_BONES, 3, generator=torch.Generator().manual_seed(seed))


# ---- BA ----------------------------------------------------------------------------------


def test_ba_keeps_every_bone_length_and_the_fixed_bones():
    pose = random_poses(N, seed=0)
    new, applied = apply_bone_angle(pose, _offsets(1))
    torch.testing.assert_close(bone_lengths(new), bone_lengths(pose), atol=1e-5, rtol=0)
    fixed = list(BA_FIXED_BONES)
    torch.testing.assert_close(bone_vectors(new)[:, fixed], bone_vectors(pose)[:, fixed])
    assert torch.count_nonzero(applied[:, fixed]) == 0
    assert torch.count_nonzero(new[:, 0]) == 0  # root-relative


def test_ba_changes_the_other_bone_angles():
    pose = random_poses(N, seed=0)
    new, _ = apply_bone_angle(pose, _offsets(2))
    change = bone_angle_change(pose, new)
    movable = [b for b in range(NUM_BONES) if b not in BA_FIXED_BONES]
    assert (change[:, movable] > 1e-3).float().mean() > 0.9
    assert change[:, list(BA_FIXED_BONES)].abs().max() < 1e-6


def test_ba_disabled_is_identity_and_reports_zero_offsets():
    pose = random_poses(N, seed=4)
    new, applied = apply_bone_angle(pose, _offsets(3), enabled=torch.tensor(0.0))
    torch.testing.assert_close(new, pose, atol=1e-6, rtol=0)
    assert torch.count_nonzero(applied) == 0


def test_bone_angle_change_is_one_minus_cosine():
    pose = random_poses(2, seed=5)
    assert bone_angle_change(pose, pose).abs().max() < 1e-6
    # Bend the right shin (bone 2) by 90 degrees about an axis orthogonal to it.
    bones = bone_vectors(pose)
    shin = bones[:, 2]
    axis = torch.linalg.cross(shin, torch.randn(2, 3, generator=torch.Generator().manual_seed(0)))
    turned = torch.nn.functional.normalize(axis, dim=-1) * shin.norm(dim=-1, keepdim=True)
    new_pose = pose.clone()
    new_pose[:, 3] = pose[:, 2] + turned
    torch.testing.assert_close(bone_angle_change(pose, new_pose)[:, 2], torch.ones(2))


# ---- BL ----------------------------------------------------------------------------------


def test_bl_ratios_stay_within_limit_and_are_symmetric():
    raw = 50.0 * torch.randn(N, len(BONE_LENGTH_GROUPS), generator=torch.Generator().manual_seed(0))
    ratios = bone_length_ratios(raw)
    assert ratios.shape == (N, NUM_BONES)
    assert ratios.min() >= 0.8 - 1e-6 and ratios.max() <= 1.2 + 1e-6
    assert ratios.max() > 1.19 and ratios.min() < 0.81  # saturates at the limit
    for group in BONE_LENGTH_GROUPS:
        for b in group[1:]:
            torch.testing.assert_close(ratios[:, b], ratios[:, group[0]], atol=0, rtol=0)
    torch.testing.assert_close(ratios[:, list(BL_FIXED_BONES)], torch.ones(N, 1))


def test_bl_limit_is_configurable():
    raw = 50.0 * torch.randn(N, len(BONE_LENGTH_GROUPS), generator=torch.Generator().manual_seed(1))
    ratios = bone_length_ratios(raw, limit=0.05)
    assert (ratios - 1).abs().max() <= 0.05 + 1e-6
    assert (ratios - 1).abs().max() > 0.049


def test_bl_scales_lengths_and_keeps_directions():
    pose = random_poses(N, seed=6)
    raw = torch.randn(N, len(BONE_LENGTH_GROUPS), generator=torch.Generator().manual_seed(2))
    ratios = bone_length_ratios(raw)
    new = apply_bone_length(pose, ratios)
    torch.testing.assert_close(bone_lengths(new), bone_lengths(pose) * ratios, atol=1e-5, rtol=0)
    torch.testing.assert_close(unit_bone_vectors(new), unit_bone_vectors(pose), atol=1e-5, rtol=0)
    changes = group_changes(ratios)
    for g, group in enumerate(BONE_LENGTH_GROUPS):
        torch.testing.assert_close(changes[:, g], ratios[:, group[0]] - 1)
    assert [GROUP_OF_BONE[b] for b in BONE_LENGTH_GROUPS[1]] == [1, 1]


def test_bl_disabled_gives_unit_ratios():
    raw = torch.randn(N, len(BONE_LENGTH_GROUPS))
    ratios = bone_length_ratios(raw, enabled=torch.tensor(0.0))
    torch.testing.assert_close(ratios, torch.ones(N, NUM_BONES), atol=0, rtol=0)


# ---- RT ----------------------------------------------------------------------------------


def _skew(r: torch.Tensor) -> torch.Tensor:
    x, y, z = r.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(-1, 3, 3)


def test_rodrigues_matches_matrix_exponential():
    g = torch.Generator().manual_seed(0)
    r = torch.cat(
        [
            (torch.rand(20, 3, generator=g) * 2 - 1) * math.pi,
            1e-5 * torch.randn(4, 3, generator=g),
            torch.zeros(1, 3),
        ]
    ).double()
    rot = axis_angle_to_matrix(r)
    torch.testing.assert_close(rot, torch.linalg.matrix_exp(_skew(r)), atol=1e-9, rtol=0)
    rot32 = axis_angle_to_matrix(r.float())
    eye = torch.eye(3).expand(len(r), 3, 3)
    torch.testing.assert_close(rot32 @ rot32.transpose(1, 2), eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot32), torch.ones(len(r)), atol=1e-5, rtol=0)


def test_rodrigues_gradient_finite_at_zero_rotation():
    r = torch.zeros(3, 3, requires_grad=True)
    (axis_angle_to_matrix(r) * torch.randn(3, 3, 3)).sum().backward()
    assert torch.isfinite(r.grad).all()
    # d R / d r at 0 is the skew generator: d(R[2,1])/d(r_x) = 1
    r0 = torch.zeros(1, 3, requires_grad=True)
    axis_angle_to_matrix(r0)[0, 2, 1].backward()
    torch.testing.assert_close(r0.grad, torch.tensor([[1.0, 0.0, 0.0]]))


def test_rotation_range_and_disable():
    raw = 100.0 * torch.randn(N, 3)
    rot = rotation_from_raw(raw)
    assert rot.abs().max() <= math.pi
    assert rot.abs().max() > 3.0
    assert torch.count_nonzero(rotation_from_raw(raw, torch.tensor(0.0))) == 0


def test_rt_keeps_shape_and_puts_root_at_translation():
    pose = random_poses(N, seed=7)
    root = random_roots(N, seed=7)
    g = torch.Generator().manual_seed(3)
    rotation = rotation_from_raw(torch.randn(N, 3, generator=g))
    translation = translation_from_raw(torch.randn(N, 3, generator=g), root)
    out = apply_rotation_translation(pose, rotation, translation)
    torch.testing.assert_close(torch.cdist(out, out), torch.cdist(pose, pose), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 0], translation)
    assert (rotation.abs() > 1e-3).all()


def test_rt_depth_stays_positive_above_min_depth():
    root = random_roots(N, seed=8)
    raw = torch.zeros(N, 3)
    raw[:, 2] = -100.0  # try to push the body behind the camera
    t = translation_from_raw(raw, root, min_depth=1.5)
    assert (t[:, 2] >= 1.5).all()
    torch.testing.assert_close(t[:, :2], root[:, :2])
    far = translation_from_raw(torch.tensor([[0.0, 0.0, 3.0]]), torch.tensor([[0.0, 0.0, 5.0]]))
    assert abs(float(far[0, 2]) - 8.0) < 1e-4  # far from the floor the offset passes through


def test_rt_disabled_translation_is_root():
    root = random_roots(N, seed=9)
    t = translation_from_raw(torch.randn(N, 3), root, enabled=torch.tensor(0.0))
    torch.testing.assert_close(t, root, atol=0, rtol=0)
