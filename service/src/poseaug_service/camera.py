"""Camera intrinsics from requests, and projection of 3D poses to pixels (camera_rays.py
inverts it).

Projection follows the Human3.6M / 3d-pose-baseline model exactly (radial k = (k0, k1, k2),
tangential p = (p0, p1) in the order of the Human3.6M camera files):
    x, y = X/Z, Y/Z;  r2 = x^2 + y^2
    radial = 1 + k0 r2 + k1 r2^2 + k2 r2^3;  tan = p1 x + p0 y
    xd = x (radial + tan) + p1 r2;  yd = y (radial + tan) + p0 r2
    u, v = fx xd + cx, fy yd + cy
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_service.errors import InvalidArgumentError

# Depth below which a point is treated as on the camera plane (avoids division by zero).
MIN_DEPTH = 1e-6


@dataclass(frozen=True)
class Camera:
    fx: float = 1145.0
    fy: float = 1144.0
    cx: float = 512.5
    cy: float = 515.5
    width: int = 1000
    height: int = 1002
    radial: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tangential: tuple[float, float] = (0.0, 0.0)


DEFAULT_CAMERA = Camera()


def check_intrinsics(
    msg: poseaug_pb2.CameraIntrinsics, field: str, size_required: bool = True
) -> None:
    """Refuse non-finite values, fx or fy <= 0, wrong distortion lengths and (when
    `size_required`) a zero width or height; errors name `field`."""
    for name in ("fx", "fy", "cx", "cy"):
        if not math.isfinite(getattr(msg, name)):
            raise InvalidArgumentError(f"{field}.{name}", "must be finite")
    for name in ("fx", "fy"):
        if getattr(msg, name) <= 0:
            raise InvalidArgumentError(f"{field}.{name}", f"must be > 0, got {getattr(msg, name)}")
    if size_required:
        for name in ("width", "height"):
            if getattr(msg, name) == 0:
                raise InvalidArgumentError(f"{field}.{name}", "must be > 0")
    if len(msg.radial) not in (0, 3):
        raise InvalidArgumentError(f"{field}.radial", f"needs 0 or 3 values, got {len(msg.radial)}")
    if len(msg.tangential) not in (0, 2):
        raise InvalidArgumentError(
            f"{field}.tangential", f"needs 0 or 2 values, got {len(msg.tangential)}"
        )
    for name in ("radial", "tangential"):
        if not all(math.isfinite(v) for v in getattr(msg, name)):
            raise InvalidArgumentError(f"{field}.{name}", "must be finite")


def camera_from_proto(msg: poseaug_pb2.CameraIntrinsics, field: str = "camera") -> Camera:
    """Validate Augment's intrinsics; an all-zero (unset) message gives the default camera."""
    scalars = (msg.fx, msg.fy, msg.cx, msg.cy, msg.width, msg.height)
    if not any(scalars) and not msg.radial and not msg.tangential:
        return DEFAULT_CAMERA
    check_intrinsics(msg, field)
    return Camera(
        fx=msg.fx,
        fy=msg.fy,
        cx=msg.cx,
        cy=msg.cy,
        width=msg.width,
        height=msg.height,
        radial=tuple(msg.radial) or (0.0, 0.0, 0.0),
        tangential=tuple(msg.tangential) or (0.0, 0.0),
    )


def project(points: np.ndarray, camera: Camera) -> np.ndarray:
    """Project camera-frame points [..., 3] (metres) to pixels [..., 2], float32."""
    p = np.asarray(points, dtype=np.float64)
    z = np.maximum(p[..., 2], MIN_DEPTH)
    x = p[..., 0] / z
    y = p[..., 1] / z
    out = np.empty((*p.shape[:-1], 2), dtype=np.float32)
    if not any(camera.radial) and not any(camera.tangential):  # a pinhole: no distortion terms
        out[..., 0] = camera.fx * x + camera.cx
        out[..., 1] = camera.fy * y + camera.cy
        return out
    r2 = x * x + y * y
    k0, k1, k2 = camera.radial
    p0, p1 = camera.tangential
    radial = 1.0 + r2 * (k0 + r2 * (k1 + r2 * k2))
    tan = p1 * x + p0 * y
    xd = x * (radial + tan) + p1 * r2
    yd = y * (radial + tan) + p0 * r2
    out[..., 0] = camera.fx * xd + camera.cx
    out[..., 1] = camera.fy * yd + camera.cy
    return out
