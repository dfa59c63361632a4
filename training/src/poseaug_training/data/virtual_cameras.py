"""Random virtual cameras: Human3.6M's poses as other cameras would see them.

Real footage comes from phones, webcams and outdoor cameras: other fields of view and image
shapes, off-centre principal points, cameras looking up or steeply down, rolled, near and far,
people anywhere in the frame and partly cut by it. A lifter trained through Human3.6M's four
cameras alone fails there, so every training pair is seen through a fresh camera drawn from
`TRAIN_VIEWS`; the unseen-cameras test draws from the wider `UNSEEN_VIEWS`.

Conventions: world poses are root-relative, metres, z up (Human3.6M's world frame); camera
frame x right, y down, z forward; intrinsics packed as in `camera.INTRINSICS_DIM` (no
distortion: virtual cameras are ideal pinholes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from poseaug_training.data.camera import INTRINSICS_DIM

# Image shapes (width : height) of common cameras: outdoor/video 16:9, webcams 4:3, square
# crops, phones held upright 9:16. The long side is LONG_SIDE_PX pixels.
ASPECTS: tuple[float, ...] = (16 / 9, 4 / 3, 1.0, 9 / 16)
LONG_SIDE_PX = 1920.0
# Nearest root depth: with the body's +-0.5 m in depth every joint stays >= 1 m away.
MIN_DEPTH_M = 1.5


@dataclass(frozen=True)
class ViewRanges:
    """Where virtual cameras are drawn from (uniform within each range)."""

    hfov_deg: tuple[float, float]  # horizontal field of view
    pitch_deg: tuple[float, float]  # camera elevation: > 0 looks down, < 0 looks up
    roll_deg: tuple[float, float]
    principal_offset: float  # principal point off-centre, fraction of width / height
    # The person's distance: either from the share of the image height they fill ...
    fill: tuple[float, float] | None = None
    # ... or directly in metres.
    distance_m: tuple[float, float] | None = None
    # Root position in the image, as a fraction of width and height; with probability
    # `cut_probability` from the wider `cut_range`, so people are cut by the frame.
    root_range: tuple[float, float] = (0.15, 0.85)
    cut_probability: float = 0.0
    cut_range: tuple[float, float] = (-0.05, 1.05)
    keep_inside: bool = False  # shift the person into the frame where they fit (tests)


# Training: fields of view 30-100 deg, upward to steeply downward looks, people filling
# 20-90% of the image height, sometimes cut by the frame.
TRAIN_VIEWS = ViewRanges(
    hfov_deg=(30.0, 100.0),
    pitch_deg=(-25.0, 75.0),
    roll_deg=(-20.0, 20.0),
    principal_offset=0.10,
    fill=(0.2, 0.9),
    cut_probability=0.15,
)
# The unseen-cameras test: wider than training in field of view, elevation and distance.
UNSEEN_VIEWS = ViewRanges(
    hfov_deg=(25.0, 110.0),
    pitch_deg=(-70.0, 70.0),
    roll_deg=(-25.0, 25.0),
    principal_offset=0.10,
    distance_m=(2.0, 12.0),
    root_range=(0.2, 0.8),
    keep_inside=True,
)


@dataclass
class VirtualViews:
    """Poses placed in front of virtual cameras."""

    pose3d: torch.Tensor  # [N, 17, 3] root-relative, camera frame
    root: torch.Tensor  # [N, 3] root in the camera frame (z > 0)
    intrinsics: torch.Tensor  # [N, 11] pinhole intrinsics, image size in the last two slots
    rotation: torch.Tensor  # [N, 3, 3] world -> camera (clips move their other frames with it)


def _uniform(n: int, lo_hi: tuple[float, float], gen: torch.Generator | None) -> torch.Tensor:
    lo, hi = lo_hi
    return torch.rand(n, generator=gen, dtype=torch.float64) * (hi - lo) + lo


def _rot_x(a: torch.Tensor) -> torch.Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(-1, 3, 3)


def _rot_z(a: torch.Tensor) -> torch.Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(-1, 3, 3)


# A level camera looking along world +y: camera x = world x, camera y = -world z (down),
# camera z = world y (forward). Its frame is where gravity-mode PoseAug reads poses (up = -y).
LEVEL_FROM_WORLD = torch.tensor(
    [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64
)


def camera_rotations(n: int, ranges: ViewRanges, gen: torch.Generator | None) -> torch.Tensor:
    """[N, 3, 3] world -> camera: the person turned by any yaw, then the camera's pitch and roll."""
    yaw = _uniform(n, (-math.pi, math.pi), gen)
    pitch = torch.deg2rad(_uniform(n, ranges.pitch_deg, gen))
    roll = torch.deg2rad(_uniform(n, ranges.roll_deg, gen))
    return _rot_z(roll) @ _rot_x(pitch) @ LEVEL_FROM_WORLD @ _rot_z(yaw)


def sample_intrinsics(n: int, ranges: ViewRanges, gen: torch.Generator | None) -> torch.Tensor:
    """[N, 11]: square pixels, a field of view and image shape from `ranges`, off-centre
    principal point."""
    aspects = torch.tensor(ASPECTS, dtype=torch.float64)
    aspect = aspects[torch.randint(len(ASPECTS), (n,), generator=gen)]
    width = torch.where(aspect >= 1, torch.full_like(aspect, LONG_SIDE_PX), LONG_SIDE_PX * aspect)
    height = width / aspect
    hfov = torch.deg2rad(_uniform(n, ranges.hfov_deg, gen))
    f = width / 2 / torch.tan(hfov / 2)
    off = ranges.principal_offset
    cx = width * (0.5 + _uniform(n, (-off, off), gen))
    cy = height * (0.5 + _uniform(n, (-off, off), gen))
    intr = torch.zeros(n, INTRINSICS_DIM, dtype=torch.float64)
    intr[:, 0], intr[:, 1], intr[:, 2], intr[:, 3] = f, f, cx, cy
    intr[:, 9], intr[:, 10] = width, height
    return intr


def camera_from_level(world_to_camera: torch.Tensor) -> torch.Tensor:
    """[N, 3, 3]: a level camera's frame (same centre, up = -y) -> the camera's own, from the
    camera's world -> camera rotations [N, 3, 3] (world z up)."""
    level = LEVEL_FROM_WORLD.to(world_to_camera)
    return world_to_camera @ level.transpose(0, 1)


def place_in_view(
    world_rel: torch.Tensor, ranges: ViewRanges, gen: torch.Generator | None = None
) -> VirtualViews:
    """Put root-relative world poses [N, 17, 3] in front of fresh virtual cameras."""
    n = len(world_rel)
    rot = camera_rotations(n, ranges, gen)
    pose = torch.einsum("nij,nkj->nki", rot, world_rel.double())
    intr = sample_intrinsics(n, ranges, gen)
    f, c, size = intr[:, 0:2], intr[:, 2:4], intr[:, 9:11]
    if ranges.distance_m is not None:
        depth = _uniform(n, ranges.distance_m, gen)
    else:
        assert ranges.fill is not None
        extent = (pose[..., 1].amax(1) - pose[..., 1].amin(1)).clamp_min(0.5)
        depth = (f[:, 1] * extent / (_uniform(n, ranges.fill, gen) * size[:, 1])).clamp_min(
            MIN_DEPTH_M
        )
    where = torch.stack([_uniform(n, ranges.root_range, gen) for _ in range(2)], -1)
    if ranges.cut_probability > 0:
        cut = torch.stack([_uniform(n, ranges.cut_range, gen) for _ in range(2)], -1)
        pick = torch.rand(n, generator=gen, dtype=torch.float64) < ranges.cut_probability
        where = torch.where(pick[:, None], cut, where)
    target = where * size
    for _ in range(8 if ranges.keep_inside else 1):
        ray = (target - c) / f
        root = torch.cat([ray * depth[:, None], depth[:, None]], -1)
        if not ranges.keep_inside:
            break
        pix = (pose[..., :2] + root[:, None, :2]) / (pose[..., 2:] + root[:, None, 2:]) * f[
            :, None
        ] + c[:, None]
        low = (-pix.amin(1)).clamp_min(0)  # overflow past the left / top edge
        high = (pix.amax(1) - size).clamp_min(0)
        target = target + low - high
    return VirtualViews(pose.float(), root.float(), intr.float(), rot.float())
