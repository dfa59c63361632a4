"""Small synthetic poses for the PoseAug tests (no Human3.6M data)."""

from __future__ import annotations

import math

import torch

# A standing person in the camera frame (x right, y down, z forward), metres, hip at origin.
STANDING_POSE: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 0.0),  # hip
    (-0.13, 0.0, 0.0),  # right hip
    (-0.13, 0.45, 0.02),  # right knee
    (-0.13, 0.88, 0.05),  # right ankle
    (0.13, 0.0, 0.0),  # left hip
    (0.13, 0.45, 0.02),  # left knee
    (0.13, 0.88, 0.05),  # left ankle
    (0.0, -0.23, 0.01),  # spine
    (0.0, -0.48, 0.0),  # thorax
    (0.0, -0.58, -0.06),  # neck/nose
    (0.0, -0.69, 0.0),  # head
    (0.16, -0.46, 0.0),  # left shoulder
    (0.42, -0.40, 0.03),  # left elbow
    (0.66, -0.34, 0.0),  # left wrist
    (-0.16, -0.46, 0.0),  # right shoulder
    (-0.42, -0.40, 0.03),  # right elbow
    (-0.66, -0.34, 0.0),  # right wrist
)


def random_poses(n: int, seed: int = 0, jitter: float = 0.04) -> torch.Tensor:
    """[n,17,3] root-relative poses: the standing pose, jittered, turned about the vertical."""
    g = torch.Generator().manual_seed(seed)
    pose = torch.tensor(STANDING_POSE).expand(n, -1, -1).clone()
    pose = pose + jitter * torch.randn(pose.shape, generator=g)
    yaw = (torch.rand(n, generator=g) * 2 - 1) * math.pi
    c, s = torch.cos(yaw), torch.sin(yaw)
    x, y, z = pose.unbind(-1)
    pose = torch.stack([c[:, None] * x + s[:, None] * z, y, -s[:, None] * x + c[:, None] * z], -1)
    return pose - pose[:, :1]


def random_roots(n: int, seed: int = 0) -> torch.Tensor:
    """[n,3] root positions in front of the camera (z around 5 m)."""
    g = torch.Generator().manual_seed(seed + 1)
    xy = 0.5 * torch.randn(n, 2, generator=g)
    z = 4.0 + 2.0 * torch.rand(n, 1, generator=g)
    return torch.cat([xy, z], dim=1)
