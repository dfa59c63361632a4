"""Where Augment puts each augmented body: in the request camera's view, at a plausible size.

Callers train lifters on Augment's pairs as their own camera sees them, so a body outside the
image or 20 m away is a pair they throw away. By default (PLACEMENT_IN_VIEW) each body is
placed, whatever the augmentor's translation was, so that:
- its bounding box in the image fills a share of the image drawn uniformly from `FILL`
  (the larger of box height / image height and box width / image width: upright people fill
  that share of the height, lying ones of the width);
- the box sits at a position drawn uniformly among those that keep it inside the image;
- its root is at least `MIN_ROOT_DEPTH_M` in front of the camera and every joint at least
  `MIN_JOINT_DEPTH_M` (a lens so wide that a body 1.5 m away fills under 20% of it gets the
  body at 1.5 m, smaller than the range).
The draws are a pure function of (seed, output row), like the augmentor's noise, so unary and
streamed calls agree. Depth follows from size and camera: with fx = 1500 and a 1080-pixel-high
image, a 1.7 m tall person stands about 2.6 m (90%) to 11.8 m (20%) away.
"""

from __future__ import annotations

import numpy as np

from poseaug_service.camera import Camera, project

FILL = (0.2, 0.9)
MIN_ROOT_DEPTH_M = 1.5
MIN_JOINT_DEPTH_M = 0.5
# Fixed-point steps: perspective makes size and position depend on where the body is, so both
# are refined together on the pinhole model, then checked once through the real projection
# (with the camera's distortion) and nudged inside where that moved a joint out.
_STEPS = 3
_NUDGES = 4


def _box(points: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    pix = project(points, camera).astype(np.float64)
    return pix.min(axis=1), pix.max(axis=1)


def image_share(points: np.ndarray, camera: Camera) -> np.ndarray:
    """[M]: how much of the image each posed body's box fills (see the module docstring)."""
    lo, hi = _box(points, camera)
    return ((hi - lo) / np.array([camera.width, camera.height], np.float64)).max(axis=1)


def place_in_view(pose: np.ndarray, camera: Camera, draws: np.ndarray) -> np.ndarray:
    """Roots [M, 3] (camera frame, metres) for root-relative poses [M, 17, 3], from uniform
    draws [M, 3] in [0, 1): the share of the image, then the box position across and down."""
    pose = np.asarray(pose, dtype=np.float64)
    # joints-major [17, M] coordinates: the min and max over a body's joints are then
    # element-wise over 17 rows (vectorized), not 17-long reductions per body
    x, y, z = np.ascontiguousarray(pose.transpose(2, 1, 0))
    size_wh = np.array([camera.width, camera.height], np.float64)
    focal = np.array([camera.fx, camera.fy], np.float64)
    centre = np.array([camera.cx, camera.cy], np.float64)
    fill = FILL[0] + (FILL[1] - FILL[0]) * draws[:, 0]
    floor = np.maximum(MIN_ROOT_DEPTH_M, MIN_JOINT_DEPTH_M - z.min(axis=0))
    extent = np.stack([x.max(axis=0) - x.min(axis=0), y.max(axis=0) - y.min(axis=0)], axis=1)
    depth = np.maximum((focal * extent / (fill[:, None] * size_wh)).max(axis=1), floor)
    ray = np.zeros((len(pose), 2))  # the root's ray (x / z, y / z)
    for _ in range(_STEPS):
        lo, hi = _pinhole_box(x, y, z, ray, depth, focal, centre)
        share = ((hi - lo) / size_wh).max(axis=1)
        new_depth = np.maximum(depth * share / fill, floor)
        # the box after the depth change, about the root's pixel (nearly a scaling)
        root_pix = ray * focal + centre
        scale = (depth / new_depth)[:, None]
        lo, hi = root_pix + (lo - root_pix) * scale, root_pix + (hi - root_pix) * scale
        target = draws[:, 1:3] * np.maximum(size_wh - (hi - lo), 0.0)
        ray = ray + (target - lo) / focal
        depth = new_depth
    root = np.concatenate([ray * depth[:, None], depth[:, None]], axis=1)
    distorted = any(camera.radial) or any(camera.tangential)
    for _ in range(_NUDGES):  # the real projection (distortion included), pinhole or not
        if distorted:
            lo, hi = _box(pose + root[:, None], camera)
        else:
            lo, hi = _pinhole_box(x, y, z, root[:, :2] / root[:, 2:], root[:, 2], focal, centre)
        share = ((hi - lo) / size_wh).max(axis=1)
        # farther along the same ray when too big, nearer (down to the floor) when too small
        scale = np.maximum(share / FILL[1], 1.0) * np.minimum(share / FILL[0], 1.0)
        scale = np.maximum(scale, floor / root[:, 2])
        over = np.maximum(-lo, 0.0) - np.maximum(hi - size_wh, 0.0)
        if not over.any() and (np.abs(scale - 1.0) <= 1e-9).all():
            break
        root[:, :2] += over * root[:, 2:3] / focal
        root *= scale[:, None]
    return root


def _pinhole_box(x, y, z, ray, depth, focal, centre) -> tuple[np.ndarray, np.ndarray]:
    """Pixel box [M, 2] low and high corners of bodies (joint coordinates x, y, z [17, M],
    root-relative) whose root is at depth `depth` [M] on `ray` [M, 2], undistorted."""
    inv = 1.0 / (z + depth)
    u = (x + ray[:, 0] * depth) * inv
    v = (y + ray[:, 1] * depth) * inv
    lo = np.stack([u.min(axis=0), v.min(axis=0)], axis=1)
    hi = np.stack([u.max(axis=0), v.max(axis=0)], axis=1)
    return lo * focal + centre, hi * focal + centre
