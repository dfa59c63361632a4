"""Cameras of requests: camera-aware lifters turn pixels into rays with them, Augment projects
its poses through one.

A lift may name one camera for the whole batch or one per pose. Without one, the server's
camera-aware lifters use their default camera (see the proto's Lift2Dto3DRequest) and say so
in the result's `default_camera`; screen-normalized lifters only take the image size from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from poseaug.v1 import poseaug_pb2
from poseaug_client.errors import invalid_argument
from poseaug_client.formats import camera_message


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels. width and height 0 mean "not given"; radial (k1, k2, k3)
    and tangential (p1, p2) distortion as in the Human3.6M camera files, or empty for none."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int = 0
    height: int = 0
    radial: tuple[float, ...] = ()
    tangential: tuple[float, ...] = ()

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> Camera:
        """The camera of an image whose width spans `hfov_deg` degrees: square pixels,
        principal point at the centre, no distortion."""
        if not 0 < hfov_deg < 180:
            raise invalid_argument(f"fov: must be between 0 and 180 degrees, got {hfov_deg}")
        f = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
        return cls(f, f, width / 2, height / 2, int(width), int(height))

    def to_proto(self) -> poseaug_pb2.CameraIntrinsics:
        return poseaug_pb2.CameraIntrinsics(
            fx=self.fx,
            fy=self.fy,
            cx=self.cx,
            cy=self.cy,
            width=self.width,
            height=self.height,
            radial=list(self.radial),
            tangential=list(self.tangential),
        )


CameraLike = Camera | poseaug_pb2.CameraIntrinsics | Mapping[str, object]
CameraOption = CameraLike | Sequence[CameraLike] | None


def _message(camera: object) -> poseaug_pb2.CameraIntrinsics:
    if isinstance(camera, Camera):
        return camera.to_proto()
    if isinstance(camera, poseaug_pb2.CameraIntrinsics | Mapping):
        return camera_message(camera)  # type: ignore[return-value]
    raise invalid_argument(
        f"camera: expected a Camera (or a sequence of them, one per pose), got "
        f"{type(camera).__name__}"
    )


def augment_camera(camera: object | None) -> poseaug_pb2.CameraIntrinsics | None:
    """Augment's one camera (its width and height are required there), or None (default)."""
    if camera is None:
        return None
    if isinstance(camera, Sequence) and not isinstance(camera, str | bytes | Mapping):
        raise invalid_argument("camera: Augment takes one camera for the whole request")
    return _message(camera)


def lift_cameras(
    camera: CameraOption, n: int
) -> tuple[poseaug_pb2.CameraIntrinsics | None, list[poseaug_pb2.CameraIntrinsics] | None]:
    """(camera of the batch, None) or (None, one camera per pose), or (None, None)."""
    if camera is None:
        return None, None
    if isinstance(camera, Camera | poseaug_pb2.CameraIntrinsics | Mapping):
        return _message(camera), None
    if not isinstance(camera, Sequence) or isinstance(camera, str | bytes):
        raise invalid_argument(f"camera: expected a Camera or a sequence of {n}")
    if len(camera) != n:
        raise invalid_argument(f"camera: expected one camera per pose ({n}), got {len(camera)}")
    return None, [_message(c) for c in camera]
