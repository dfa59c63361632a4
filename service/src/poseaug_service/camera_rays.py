"""Pixels -> camera rays and visibility: the input of camera-aware ("camera_rays") lifters.

A lifter that sees x = (u - cx) / fx, y = (v - cy) / fy of the undistorted pixel needs no
image size and no focal length of its own, so one model serves every camera (real footage
differs from Human3.6M most in its intrinsics; see the design notes). The distortion of
camera.py's `project` is inverted by fixed-point iteration, as OpenCV's undistortPoints does,
vectorized over every joint of the batch. Detector scores decide which joints the lifter sees:
a missing joint is fed as x = y = 0, visible = 0, and the lifter infers it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_client.contract import DEFAULT_HFOV_DEG  # the camera of requests that send none

# A joint whose (mapped) detector score is below this counts as missing.
MISSING_SCORE_THRESHOLD = 0.3
# Fixed-point undistortion: stop when no ray moves more than this, or after this many steps
# (Human3.6M's distortion converges to 1e-12 in about 10).
UNDISTORT_STEP_TOLERANCE = 1e-12
UNDISTORT_MAX_STEPS = 100
# A ray whose re-distortion misses its pixel's ray by more than this did not converge.
UNDISTORT_RESIDUAL = 1e-6


@dataclass(frozen=True)
class Intrinsics:
    """The cameras of a batch as columns: M = 1 row for the whole batch or N (one per pose);
    fx, fy, cx, cy are [M, 1], radial [M, 3] and tangential [M, 2] (camera.py's order)."""

    fx: np.ndarray
    fy: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    radial: np.ndarray
    tangential: np.ndarray

    @property
    def distorted(self) -> bool:
        return bool(self.radial.any() or self.tangential.any())


def default_intrinsics(width: float | np.ndarray, height: float | np.ndarray) -> Intrinsics:
    """The default camera of an image size (scalars, or [N] arrays per pose)."""
    w = np.asarray(width, dtype=np.float64).reshape(-1, 1)
    h = np.asarray(height, dtype=np.float64).reshape(-1, 1)
    f = (w / 2) / math.tan(math.radians(DEFAULT_HFOV_DEG) / 2)
    m = len(w)
    return Intrinsics(f, f, w / 2, h / 2, np.zeros((m, 3)), np.zeros((m, 2)))


def intrinsics_from_protos(cameras: Sequence[poseaug_pb2.CameraIntrinsics]) -> Intrinsics:
    """Columns of validated CameraIntrinsics messages (see camera.check_intrinsics)."""
    m = len(cameras)
    scalars = np.array([(c.fx, c.fy, c.cx, c.cy) for c in cameras], dtype=np.float64)
    radial, tangential = np.zeros((m, 3)), np.zeros((m, 2))
    for i, c in enumerate(cameras):
        if c.radial:
            radial[i] = c.radial
        if c.tangential:
            tangential[i] = c.tangential
    fx, fy, cx, cy = (scalars[:, j : j + 1] for j in range(4))
    return Intrinsics(fx, fy, cx, cy, radial, tangential)


def _distort(x: np.ndarray, y: np.ndarray, k: np.ndarray, p: np.ndarray):
    """camera.py's distortion of ideal rays (x, y) [M or N, J]; k [.., 3], p [.., 2]."""
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k[:, 0:1] + r2 * (k[:, 1:2] + r2 * k[:, 2:3]))
    tan = p[:, 1:2] * x + p[:, 0:1] * y
    return x * (radial + tan) + p[:, 1:2] * r2, y * (radial + tan) + p[:, 0:1] * r2


def undistort(
    xd: np.ndarray, yd: np.ndarray, radial: np.ndarray, tangential: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ideal rays (x, y) whose distortion is (xd, yd), and each ray's residual (how far its
    re-distortion lands from (xd, yd)); non-finite where the iteration diverged."""
    k, p = radial, tangential
    x, y = xd.copy(), yd.copy()
    with np.errstate(all="ignore"):
        for _ in range(UNDISTORT_MAX_STEPS):
            r2 = x * x + y * y
            scale = 1.0 + r2 * (k[:, 0:1] + r2 * (k[:, 1:2] + r2 * k[:, 2:3]))
            scale = scale + p[:, 1:2] * x + p[:, 0:1] * y
            x_next = (xd - p[:, 1:2] * r2) / scale
            y_next = (yd - p[:, 0:1] * r2) / scale
            step = np.maximum(np.abs(x_next - x), np.abs(y_next - y))
            x, y = x_next, y_next
            if not (step > UNDISTORT_STEP_TOLERANCE).any():  # NaN steps stop it too
                break
        xr, yr = _distort(x, y, k, p)
        residual = np.maximum(np.abs(xr - xd), np.abs(yr - yd))
    return x, y, residual


def pixels_to_rays(pixels: np.ndarray, cameras: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Rays [N, J, 2] (float64) of pixels [N, J, 2], and each joint's undistortion residual
    [N, J] (0 for undistorted cameras)."""
    p = np.asarray(pixels, dtype=np.float64)
    xd = (p[..., 0] - cameras.cx) / cameras.fx
    yd = (p[..., 1] - cameras.cy) / cameras.fy
    residual = np.zeros_like(xd)
    if cameras.distorted:
        xd, yd, residual = undistort(xd, yd, cameras.radial, cameras.tangential)
    return np.stack([xd, yd], axis=-1), residual


def visible_joints(scores: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """[N, J] bool: joints whose score reaches the threshold (all of them without scores)."""
    if scores is None:
        return np.ones(shape, dtype=bool)
    return scores >= MISSING_SCORE_THRESHOLD


def ray_input(rays: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """The lifter input [N, J, 3] float32: (x, y, 1) for visible joints, (0, 0, 0) else."""
    out = np.zeros((*visible.shape, 3), dtype=np.float32)
    out[..., :2] = np.where(visible[..., None], rays, 0.0)
    out[..., 2] = visible
    return out
