"""Joint range of motion in torch: the augmentor's plausibility check and its penalty.

The differentiable twin of the client's `poseaug_client.plausibility` (numpy, used by the
service on every augmented pose); training does not depend on the client, so the limits and
angle definitions are written here again and tests/contract holds the two equal. See that
module for the frames, the angles and where each limit comes from.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Angle -> (low, high) in degrees; left and right share an entry (the client's JOINT_LIMITS).
JOINT_LIMITS: dict[str, tuple[float, float]] = {
    "knee_flexion": (-10.0, 160.0),
    "elbow_flexion": (0.0, 165.0),
    "hip_flexion": (-40.0, 160.0),
    "hip_abduction": (-35.0, 50.0),
    "shoulder_extension": (-180.0, 70.0),
    "trunk_flexion": (-30.0, 80.0),
    "trunk_lateral_flexion": (-45.0, 45.0),
    "trunk_rotation": (-50.0, 50.0),
    "neck_flexion": (-80.0, 70.0),
    "neck_lateral_flexion": (-65.0, 65.0),
}
_HIP, _SPINE, _THORAX, _NOSE, _HEAD = 0, 7, 8, 9, 10
HEAD_SEGMENT_BACK_DEG = 28.0  # the client's: neck flexion counts from the upright head
_LEGS = {"right": (1, 2, 3), "left": (4, 5, 6)}
_ARMS = {"right": (14, 15, 16), "left": (11, 12, 13)}
_EPS = 1e-9
_CLIP = 1.0 - 1e-6  # asin/acos stay differentiable at the ends


def _unit(v: Tensor) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(_EPS)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1)


def _frame(right: Tensor, up: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r = _unit(right)
    u = _unit(up - _dot(up, r)[..., None] * r)
    return r, u, torch.cross(u, r, dim=-1)


def _asin(x: Tensor) -> Tensor:
    return torch.rad2deg(torch.asin(x.clamp(-_CLIP, _CLIP)))


def _atan2(y: Tensor, x: Tensor) -> Tensor:
    return torch.rad2deg(torch.atan2(y, x))


def joint_angles(poses: Tensor) -> dict[str, Tensor]:
    """Angles in degrees of poses [..., 17, 3] (camera frame): name -> [...]."""
    p = poses
    r, u, f = _frame(p[..., 1, :] - p[..., 4, :], p[..., _SPINE, :] - p[..., _HIP, :])
    rt, ut, ft = _frame(p[..., 14, :] - p[..., 11, :], p[..., _THORAX, :] - p[..., _SPINE, :])
    out: dict[str, Tensor] = {}
    for side, (hip, knee, ankle) in _LEGS.items():
        thigh = _unit(p[..., knee, :] - p[..., hip, :])
        shank = _unit(p[..., ankle, :] - p[..., knee, :])
        bend = _dot(torch.cross(thigh, shank, dim=-1), r)
        out[f"{side}_knee_flexion"] = -_atan2(bend, _dot(thigh, shank))
        outward = r if side == "right" else -r
        out[f"{side}_hip_flexion"] = _atan2(_dot(thigh, f), -_dot(thigh, u))
        out[f"{side}_hip_abduction"] = _asin(_dot(thigh, outward))
    for side, (shoulder, elbow, wrist) in _ARMS.items():
        upper = _unit(p[..., elbow, :] - p[..., shoulder, :])
        fore = _unit(p[..., wrist, :] - p[..., elbow, :])
        cos = _dot(upper, fore).clamp(-_CLIP, _CLIP)
        out[f"{side}_elbow_flexion"] = torch.rad2deg(torch.acos(cos))
        out[f"{side}_shoulder_extension"] = _asin(-_dot(upper, ft))
    chest = _unit(p[..., _THORAX, :] - p[..., _SPINE, :])
    out["trunk_flexion"] = _atan2(_dot(chest, f), _dot(chest, u))
    out["trunk_lateral_flexion"] = _asin(_dot(chest, r))
    shoulders = p[..., 14, :] - p[..., 11, :]
    across = _unit(shoulders - _dot(shoulders, u)[..., None] * u)
    out["trunk_rotation"] = _atan2(_dot(torch.cross(r, across, dim=-1), u), _dot(r, across))
    head = _unit(p[..., _HEAD, :] - p[..., _NOSE, :])
    out["neck_flexion"] = _atan2(_dot(head, ft), _dot(head, ut)) + HEAD_SEGMENT_BACK_DEG
    out["neck_lateral_flexion"] = _asin(_dot(head, rt))
    return out


def _limits(name: str) -> tuple[float, float]:
    return JOINT_LIMITS[name.removeprefix("left_").removeprefix("right_")]


def outside_joint_limits(poses: Tensor) -> Tensor:
    """[...] bool: poses with any angle outside JOINT_LIMITS."""
    flags = [(a < _limits(n)[0]) | (a > _limits(n)[1]) for n, a in joint_angles(poses).items()]
    return torch.stack(flags, -1).any(-1)


def range_of_motion_excess(poses: Tensor) -> Tensor:
    """[...]: the sum over angles of the squared excess (radians) beyond each limit; zero for
    a pose inside every limit. The augmentor's loss uses it to keep BA's bodies possible."""
    total = torch.zeros(poses.shape[:-2], dtype=poses.dtype, device=poses.device)
    for name, angle in joint_angles(poses).items():
        low, high = _limits(name)
        excess = torch.relu(angle - high) + torch.relu(low - angle)
        total = total + (excess * (math.pi / 180.0)) ** 2
    return total


def tilt_from_upright(poses: Tensor, up: Tensor) -> Tensor:
    """Degrees between each torso (hip -> thorax) and `up` [..., 3] (unit)."""
    torso = _unit(poses[..., _THORAX, :] - poses[..., _HIP, :])
    return torch.rad2deg(torch.acos(_dot(torso, up).clamp(-_CLIP, _CLIP)))
