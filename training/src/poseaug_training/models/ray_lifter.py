"""The camera-aware lifter: camera rays and a visibility flag per joint in, metric 3D out.

Input `keypoints` [N, 17, 3]: normalized camera coordinates (x, y) = ((u - cx) / fx,
(v - cy) / fy) of undistorted pixels, and visible (1 seen, 0 missing: x = y = 0). Rays do not
depend on image size or focal length, so one lifter serves every camera.

The normalization lives in the graph, so training, export and serving cannot disagree on it:
1. Perspective crop (Yu et al., CVPR 2021, "PCLs"): the rays are rotated so that the person's
   centre lies on the optical axis, as if a virtual camera looked straight at them. A person
   at the edge of a wide-angle image then looks like one in the middle of a narrow one.
2. Centre and scale: the visible joints are centred and scaled to unit RMS radius; missing
   joints are zero and flagged.
3. The VPose 1f network predicts the root-relative pose in the virtual camera; it is rotated
   back into the real camera frame.
"""

from __future__ import annotations

import torch
from torch import nn

from poseaug_training.models.common import ResidualBlock, RootRelativeLifter, linear_bn_relu

# Smallest RMS radius of a normalized pose (rays): guards poses with 0 or 1 visible joints.
MIN_SCALE = 1e-4


def look_at_rotation(direction: torch.Tensor) -> torch.Tensor:
    """[N, 3, 3] rotations R with R d = (0, 0, 1) for unit directions d [N, 3] (d_z > 0):
    the smallest rotation, by Rodrigues' formula for aligning two vectors."""
    dx, dy, dz = direction.unbind(-1)
    zero = torch.zeros_like(dx)
    k = torch.stack([zero, zero, -dx, zero, zero, -dy, dx, dy, zero], -1).reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=direction.dtype, device=direction.device)
    return eye + k + torch.matmul(k, k) / (1.0 + dz)[:, None, None]


def perspective_normalize(keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, 17, 3] rays + visibility -> (network input [N, 17, 3], rotation R [N, 3, 3]) where
    R turns camera coordinates into the virtual camera's."""
    vis = keypoints[..., 2:3]
    rays = keypoints[..., :2] * vis
    count = vis.sum(1).clamp_min(1.0)
    centre = rays.sum(1) / count
    d = torch.cat([centre, torch.ones_like(centre[:, :1])], -1)
    rot = look_at_rotation(d / d.norm(dim=-1, keepdim=True))
    p = torch.matmul(torch.cat([rays, torch.ones_like(vis)], -1), rot.transpose(1, 2))
    xy = p[..., :2] / p[..., 2:3].clamp_min(1e-3)
    mean = (xy * vis).sum(1, keepdim=True) / count[:, None]
    spread = ((xy - mean).square().sum(-1, keepdim=True) * vis).sum(1, keepdim=True)
    scale = torch.sqrt(spread / count[:, None]).clamp_min(MIN_SCALE)
    return torch.cat([(xy - mean) / scale * vis, vis], -1), rot


class RayLifter(RootRelativeLifter):
    """VPose 1f over perspective-normalized rays with visibility flags (51 inputs)."""

    input_channels = 3

    def __init__(
        self, num_joints: int = 17, channels: int = 1024, blocks: int = 4, dropout: float = 0.25
    ) -> None:
        body = nn.Sequential(
            linear_bn_relu(num_joints * 3, channels, dropout),
            *[ResidualBlock(channels, dropout) for _ in range(blocks)],
        )
        super().__init__(body, channels, num_joints)
        self.config = {
            "name": "vpose_rays",
            "channels": channels,
            "blocks": blocks,
            "dropout": dropout,
        }

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        x, rot = perspective_normalize(keypoints)
        return torch.matmul(super().forward(x), rot)
