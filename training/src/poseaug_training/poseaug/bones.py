"""Bone vectors <-> poses on the H36M-17 tree.

Every PoseAug operation edits bones (directions or lengths) and rebuilds the pose by forward
kinematics, so both directions live here, vectorized over any leading batch dimensions and
built from gathers and one matrix product only (differentiable and ONNX-exportable).
Bone ``b`` runs from ``PARENTS[b + 1]`` to joint ``b + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import torch
from torch import Tensor

from poseaug_training.skeleton import BONE_CHILDREN, BONE_PARENTS, PARENTS

EPS = 1e-8


@cache
def _ancestor_rows(parents: tuple[int, ...]) -> tuple[tuple[float, ...], ...]:
    """Row ``j``: 1.0 for every bone on the path from the root to joint ``j``."""
    n_joints = len(parents)
    for j, p in enumerate(parents):
        if j == 0 and p != -1:
            raise ValueError("joint 0 must be the root (parent -1)")
        if j > 0 and not 0 <= p < j:
            raise ValueError(f"parent of joint {j} must precede it, got {p}")
    rows: list[list[float]] = [[0.0] * (n_joints - 1) for _ in range(n_joints)]
    for j in range(1, n_joints):
        rows[j] = list(rows[parents[j]])
        rows[j][j - 1] = 1.0
    return tuple(tuple(r) for r in rows)


def kinematic_matrix(
    parents: Sequence[int] = PARENTS,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """The [J, J-1] 0/1 matrix ``A`` with ``pose = A @ bones`` (root at the origin)."""
    return torch.tensor(_ancestor_rows(tuple(parents)), dtype=dtype, device=device)


def bone_vectors(pose: Tensor) -> Tensor:
    """Bone vectors child - parent: [..., 17, 3] -> [..., 16, 3]."""
    return pose[..., list(BONE_CHILDREN), :] - pose[..., list(BONE_PARENTS), :]


def pose_from_bone_vectors(bones: Tensor, root: Tensor | None = None) -> Tensor:
    """Forward kinematics: [..., 16, 3] bones -> [..., 17, 3] pose.

    The root joint sits at the origin, or at ``root`` ([..., 3]) when given.
    """
    pose = torch.matmul(kinematic_matrix(dtype=bones.dtype, device=bones.device), bones)
    if root is not None:
        pose = pose + root.unsqueeze(-2)
    return pose


def bone_lengths(pose: Tensor) -> Tensor:
    """Bone lengths: [..., 17, 3] -> [..., 16]."""
    return torch.linalg.vector_norm(bone_vectors(pose), dim=-1)


def normalize(vectors: Tensor, eps: float = EPS) -> Tensor:
    """Unit vectors along the last axis; a zero vector stays finite (divided by ``eps``)."""
    return vectors / torch.linalg.vector_norm(vectors, dim=-1, keepdim=True).clamp_min(eps)


def unit_bone_vectors(pose: Tensor, eps: float = EPS) -> Tensor:
    """Unit bone directions: [..., 17, 3] -> [..., 16, 3]."""
    return normalize(bone_vectors(pose), eps)


def root_relative(pose: Tensor) -> Tensor:
    """Shift a pose so that joint 0 is at the origin."""
    return pose - pose[..., :1, :]


def with_bone_lengths(pose: Tensor, lengths: Tensor) -> Tensor:
    """The pose with its bone directions and the given lengths [..., 16]; joint 0 stays put.

    The official data refresh (function_poseaug/dataloader_update.py, ``random_bl_aug``) uses
    this each epoch to give every training pose the bone lengths of a random training subject.
    """
    unit = unit_bone_vectors(pose)
    return pose_from_bone_vectors(unit * lengths.unsqueeze(-1), pose[..., 0, :])
