"""RT: rotation and translation of the whole body, the last PoseAug operation.

Rotation: axis-angle ``pi * tanh(raw)`` per component (official RTGenerator), turned into a
matrix by Rodrigues' formula written with elementary ops so it exports to ONNX.
Translation: the official code predicts an absolute root and squares its depth to keep it
non-negative; here the network predicts an offset from the source root (a stable start: a
near-zero output means "stay where the source was") and the depth goes through a softplus
floor at ``min_depth`` so that it stays positive and away from the camera plane.

Gravity mode (``mode="gravity"``, the camera-aware generation): a virtual camera already gives
a lifter every viewpoint and every place in the image, so RT keeps to what a camera cannot
give, the body's orientation relative to gravity. Poses are read in a level camera frame
(up = -y): the rotation is a turn about the vertical (yaw, any angle, which is what callers of
Augment see as a new viewpoint) followed by a tilt about a horizontal axis of at most
``max_tilt_deg`` (leaning, bending over, lying); the translation is the source root (placement
is the camera's, or the service's, business). The composed rotation is returned as an
axis-angle vector like the free mode's, through quaternions so it is exact at any angle.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from poseaug_training.poseaug.op_network import OpNetwork
from poseaug_training.skeleton import NUM_JOINTS

DEFAULT_MIN_DEPTH = 1.5  # metres
RT_MODES = ("free", "gravity")
DEFAULT_MAX_TILT_DEG = 60.0
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


def _quaternion(axis_angle: Tensor) -> Tensor:
    """Axis-angle [N,3] -> unit quaternion [N,4] (w, x, y, z)."""
    angle = axis_angle.norm(dim=-1, keepdim=True)
    half = 0.5 * angle
    # sin(half)/angle, with its Taylor series near zero so the gradient stays finite
    scale = torch.where(
        angle < 1e-4, 0.5 - angle * angle / 48.0, torch.sin(half) / angle.clamp_min(1e-4)
    )
    return torch.cat([torch.cos(half), axis_angle * scale], dim=-1)


def _quaternion_product(a: Tensor, b: Tensor) -> Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def _axis_angle(q: Tensor) -> Tensor:
    """Unit quaternion [N,4] -> axis-angle [N,3] with angle in [0, pi]."""
    q = torch.where(q[:, :1] < 0, -q, q)  # w >= 0: the shorter of the two rotations
    vec = q[:, 1:]
    n = vec.norm(dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(n, q[:, :1])
    scale = torch.where(n < 1e-6, 2.0 / q[:, :1].clamp_min(1e-6), angle / n.clamp_min(1e-6))
    return vec * scale


def gravity_rotation(raw: Tensor, max_tilt: Tensor | float, enabled: Tensor | float) -> Tensor:
    """Raw [N,3] (yaw, tilt x, tilt z) -> axis-angle [N,3] of tilt o yaw in a level camera frame
    (up = -y): yaw pi * tanh about y, then a tilt of at most `max_tilt` (radians) about the
    horizontal axis (x, 0, z) the other two outputs point along. 0 when disabled."""
    yaw = torch.tanh(raw[:, :1]) * (math.pi * enabled)
    zero = torch.zeros_like(yaw)
    horizontal = torch.cat([raw[:, 1:2], zero, raw[:, 2:3]], dim=-1)
    size = horizontal.norm(dim=-1, keepdim=True)
    # tanh(size) / size, with its Taylor series near zero (finite value and gradient there)
    squash = torch.where(
        size < 1e-4, 1.0 - size * size / 3.0, torch.tanh(size) / size.clamp_min(1e-4)
    )
    tilt = horizontal * (squash * max_tilt * enabled)
    q = _quaternion_product(_quaternion(tilt), _quaternion(torch.cat([zero, yaw, zero], -1)))
    return _axis_angle(q)


def apply_rotation_translation(pose: Tensor, rotation: Tensor, translation: Tensor) -> Tensor:
    """Rotate a root-relative pose [N,17,3] about its root, then put the root at translation."""
    rotated = torch.matmul(pose, axis_angle_to_matrix(rotation).transpose(1, 2))
    return rotated + translation.unsqueeze(1)


class RotationTranslationGenerator(nn.Module):
    """Two branches (rotation, translation) like the official RTGenerator, both seeing the noise;
    gravity mode has the rotation branch only (see the module docstring)."""

    def __init__(
        self,
        noise_dim: int = 48,
        min_depth: float = DEFAULT_MIN_DEPTH,
        hidden: int = 256,
        num_blocks: int = 2,
        mode: str = "free",
        max_tilt_deg: float = DEFAULT_MAX_TILT_DEG,
    ) -> None:
        super().__init__()
        if mode not in RT_MODES:
            raise ValueError(f"RT mode must be one of {RT_MODES}, got {mode!r}")
        self.noise_dim = noise_dim
        self.mode = mode
        # Buffers, so a checkpoint carries the depth floor and tilt bound it was trained with.
        self.register_buffer("min_depth", torch.tensor(float(min_depth)))
        if mode == "gravity":
            self.register_buffer("max_tilt", torch.tensor(math.radians(max_tilt_deg)))
        n_in = NUM_JOINTS * 3 + noise_dim
        self.rotation_net = OpNetwork(n_in, 3, hidden, num_blocks)
        if mode == "free":  # gravity mode keeps the source root: nothing to learn
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
        if self.mode == "gravity":
            rotation = gravity_rotation(self.rotation_net(features), self.max_tilt, enabled)
            translation = root
        else:
            rotation = rotation_from_raw(self.rotation_net(features), enabled)
            translation = translation_from_raw(
                self.translation_net(features), root, enabled, self.min_depth
            )
        return apply_rotation_translation(pose, rotation, translation), rotation, translation
