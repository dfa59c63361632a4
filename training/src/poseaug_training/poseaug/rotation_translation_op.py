"""RT: rotation and translation of the whole body, the last PoseAug operation.

Rotation: axis-angle ``pi * tanh(raw)`` per component (official RTGenerator), turned into a
matrix by Rodrigues' formula written with elementary ops so it exports to ONNX.
Translation: the official code predicts an absolute root and squares its depth to keep it
non-negative; here the network predicts an offset from the source root (a stable start: a
near-zero output means "stay where the source was") and the depth goes through a softplus
floor at ``min_depth`` so that it stays positive and away from the camera plane.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from poseaug_training.poseaug.op_network import OpNetwork
from poseaug_training.skeleton import NUM_JOINTS

DEFAULT_MIN_DEPTH = 1.5  # metres
_SMALL_ANGLE_SQ = 1e-6
# 1/metres: the softplus floor bends within ~0.25 m of min_depth and is ~identity above it.
_DEPTH_FLOOR_SHARPNESS = 4.0


def axis_angle_to_matrix(rotation: Tensor) -> Tensor:
    """Rodrigues: axis-angle [N,3] (radians) -> rotation matrices [N,3,3].

    ``R = I + a K + b K^2`` with ``K`` the cross-product matrix of the (unnormalized) axis-angle
    vector, ``a = sin(t)/t`` and ``b = (1 - cos t)/t^2 = 2 sin^2(t/2)/t^2``; Taylor series
    near ``t = 0`` keep values and gradients finite there.
    """
    x, y, z = rotation.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(-1, 3, 3)
    theta_sq = (rotation * rotation).sum(-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    safe_sq = theta_sq.clamp_min(_SMALL_ANGLE_SQ)  # the unused branch stays finite
    theta = torch.sqrt(safe_sq)
    half_sin = torch.sin(0.5 * theta)
    a = torch.where(small, 1.0 - theta_sq / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta_sq / 24.0, 2.0 * half_sin * half_sin / safe_sq)
    eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device)
    return eye + a[:, None, None] * k + b[:, None, None] * torch.matmul(k, k)


def rotation_from_raw(raw: Tensor, enabled: Tensor | float = 1.0) -> Tensor:
    """Raw network output [N,3] -> axis-angle in (-pi, pi) per component (0 when disabled)."""
    return torch.tanh(raw) * (math.pi * enabled)


def translation_from_raw(
    raw: Tensor,
    root: Tensor,
    enabled: Tensor | float = 1.0,
    min_depth: float | Tensor = DEFAULT_MIN_DEPTH,
) -> Tensor:
    """Raw output [N,3] = offset from the source root [N,3] -> new root [N,3] (depth > min_depth).

    Disabled gives exactly ``root``.
    """
    moved = root + raw
    k = _DEPTH_FLOOR_SHARPNESS
    depth = min_depth + F.softplus(k * (moved[:, 2:3] - min_depth)) / k
    target = torch.cat([moved[:, :2], depth], dim=1)
    return root + enabled * (target - root)


def apply_rotation_translation(pose: Tensor, rotation: Tensor, translation: Tensor) -> Tensor:
    """Rotate a root-relative pose [N,17,3] about its root, then put the root at translation."""
    rotated = torch.matmul(pose, axis_angle_to_matrix(rotation).transpose(1, 2))
    return rotated + translation.unsqueeze(1)


class RotationTranslationGenerator(nn.Module):
    """Two branches (rotation, translation) like the official RTGenerator; both see the noise."""

    def __init__(
        self,
        noise_dim: int = 48,
        min_depth: float = DEFAULT_MIN_DEPTH,
        hidden: int = 256,
        num_blocks: int = 2,
    ) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        # A buffer, so a checkpoint carries the depth floor it was trained with.
        self.register_buffer("min_depth", torch.tensor(float(min_depth)))
        n_in = NUM_JOINTS * 3 + noise_dim
        self.rotation_net = OpNetwork(n_in, 3, hidden, num_blocks)
        self.translation_net = OpNetwork(n_in, 3, hidden, num_blocks)

    def forward(
        self,
        source: Tensor,
        pose: Tensor,
        root: Tensor,
        noise: Tensor,
        enabled: Tensor | float = 1.0,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Features from ``source`` [N,17,3]; RT applied to ``pose`` (root-relative BL output).

        Returns (absolute pose [N,17,3], rotation [N,3], translation [N,3]).
        """
        features = torch.cat([source.flatten(1), noise], dim=1)
        rotation = rotation_from_raw(self.rotation_net(features), enabled)
        translation = translation_from_raw(
            self.translation_net(features), root, enabled, self.min_depth
        )
        return apply_rotation_translation(pose, rotation, translation), rotation, translation
