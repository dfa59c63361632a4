"""Lift2Dto3D: validate a request, map its keypoints to H36M-17, prepare the input its model's
manifest declares (screen coordinates for format 1 bundles, camera rays and visibility for
camera-aware ones), lift them, answer.

Parsing is separate from running so StreamLift2Dto3D can validate message k+1 while message k
is being lifted, and so both RPCs report errors with the same field names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_service.bundle import SCREEN
from poseaug_service.camera import check_intrinsics
from poseaug_service.camera_rays import (
    UNDISTORT_RESIDUAL,
    default_intrinsics,
    intrinsics_from_protos,
    pixels_to_rays,
    ray_input,
    visible_joints,
)
from poseaug_service.errors import InvalidArgumentError
from poseaug_service.keypoint_formats import (
    FORMATS,
    H36M_JOINT_NAMES,
    SCORE_SOURCES,
    lowest_source_scores,
    to_h36m,
)
from poseaug_service.limits import echo
from poseaug_service.normalization import normalize_screen
from poseaug_service.repository import ModelRepository, RepositoryState
from poseaug_service.sessions import LoadedModel
from poseaug_service.tensors import to_array, to_tensor

MAX_REQUEST_ID = 128


@dataclass(frozen=True)
class LiftInput:
    """A validated lift request: H36M-17 lifter input prepared as its model's manifest says."""

    model: LoadedModel
    keypoints: np.ndarray  # [N, 17, 2] screen coordinates, or [N, 17, 3] rays + visibility
    pose_scores: np.ndarray | None  # [N] or None
    request_id: str
    joint_inferred: np.ndarray | None = None  # [N, 17] float32, camera-aware models only
    default_camera: bool = False
    track_ids: np.ndarray | None = None  # [N] int64 when sent (temporal bundles use them)

    @property
    def nbytes(self) -> int:
        """Bytes of its arrays (what keeping it costs; the memory budget counts it)."""
        arrays = (self.keypoints, self.pose_scores, self.joint_inferred, self.track_ids)
        return sum(a.nbytes for a in arrays if a is not None)


def response_bytes(poses: int) -> int:
    """About what a lift response of `poses` poses costs while it is built and sent: its
    float32 poses, joint_inferred and scores, as arrays and again as message bytes."""
    return 2 * poses * (17 * 3 * 4 + 17 * 4 + 4)


def check_request_id(request_id: str, prefix: str = "") -> None:
    if len(request_id) > MAX_REQUEST_ID:
        raise InvalidArgumentError(
            f"{prefix}request_id", f"at most {MAX_REQUEST_ID} characters, got {len(request_id)}"
        )


def resolve_model(
    repo: ModelRepository | RepositoryState, name: str, prefix: str = ""
) -> LoadedModel:
    model = repo.get(name)
    if model is None:
        loaded = ", ".join(sorted(repo.models))
        message = f"unknown model {echo(name)}; loaded: {loaded}"
        raise InvalidArgumentError(f"{prefix}model", message)
    return model


Sizes = tuple  # (width, height): floats for the batch, or [N] arrays per pose


def _image_sizes(req: poseaug_pb2.Lift2Dto3DRequest, n: int, prefix: str) -> Sizes | None:
    """The image size(s) sent, or None."""
    one = req.HasField("image_size")
    many = len(req.image_sizes) > 0
    if one and many:
        raise InvalidArgumentError(
            f"{prefix}image_size", "set at most one of image_size and image_sizes (both are set)"
        )
    if one:
        size = req.image_size
        for name in ("width", "height"):
            if getattr(size, name) == 0:
                raise InvalidArgumentError(f"{prefix}image_size.{name}", "must be > 0")
        return float(size.width), float(size.height)
    if not many:
        return None
    if len(req.image_sizes) != n:
        raise InvalidArgumentError(
            f"{prefix}image_sizes", f"needs one entry per pose ({n}), got {len(req.image_sizes)}"
        )
    sizes = np.array([(s.width, s.height) for s in req.image_sizes], dtype=np.float64)
    bad = np.flatnonzero((sizes <= 0).any(axis=1))
    if bad.size:
        i = int(bad[0])
        axis = "width" if sizes[i, 0] <= 0 else "height"
        raise InvalidArgumentError(f"{prefix}image_sizes[{i}].{axis}", "must be > 0")
    return sizes[:, 0], sizes[:, 1]


def _track_ids(req: poseaug_pb2.Lift2Dto3DRequest, n: int, prefix: str) -> np.ndarray | None:
    """The poses' track ids (length N) or None when none are sent."""
    if not req.track_ids:
        return None
    if len(req.track_ids) != n:
        raise InvalidArgumentError(
            f"{prefix}track_ids",
            f"needs one entry per pose ({n}) or none, got {len(req.track_ids)}",
        )
    return np.array(req.track_ids, dtype=np.int64)


def _cameras(
    req: poseaug_pb2.Lift2Dto3DRequest, n: int, prefix: str
) -> tuple[list[poseaug_pb2.CameraIntrinsics], list[str]]:
    """The validated camera(s) sent (none, one for the batch, or one per pose), with the
    field name of each."""
    many = len(req.cameras) > 0
    if req.HasField("camera"):
        if many:
            raise InvalidArgumentError(
                f"{prefix}camera", "set at most one of camera and cameras (both are set)"
            )
        cameras, fields = [req.camera], [f"{prefix}camera"]
    elif many:
        if len(req.cameras) != n:
            raise InvalidArgumentError(
                f"{prefix}cameras", f"needs one entry per pose ({n}), got {len(req.cameras)}"
            )
        cameras = list(req.cameras)
        fields = [f"{prefix}cameras[{i}]" for i in range(n)]
    else:
        return [], []
    for camera, field in zip(cameras, fields, strict=True):
        check_intrinsics(camera, field, size_required=False)
    return cameras, fields


def _check_camera_sizes(
    cameras: list, fields: list[str], sizes: Sizes, per_pose_sizes: bool, prefix: str
) -> None:
    """A camera's width and height, where given (non-zero), must match the image size."""
    for axis, image in zip(("width", "height"), sizes, strict=True):
        given = np.array([getattr(c, axis) for c in cameras], dtype=np.float64)
        given, expected = np.broadcast_arrays(given, np.asarray(image, dtype=np.float64))
        bad = np.flatnonzero((given != 0) & (given != expected))
        if bad.size:
            i = int(bad[0])
            field = fields[i if len(fields) > 1 else 0]
            source = f"image_sizes[{i}]" if per_pose_sizes else "image_size"
            raise InvalidArgumentError(
                f"{field}.{axis}",
                f"{int(given[i])} does not match {prefix}{source}.{axis} {int(expected[i])}",
            )


def _screen_sizes(
    sizes: Sizes | None, cameras: list, fields: list[str], model: str, prefix: str
) -> Sizes:
    """The image size(s) a screen-normalized model divides by: those sent, or the cameras'."""
    if sizes is not None:
        return sizes
    unsized = [f for c, f in zip(cameras, fields, strict=True) if not (c.width and c.height)]
    if not cameras or unsized:
        raise InvalidArgumentError(
            f"{prefix}image_size",
            f"model {model} normalizes keypoints by the image size: set image_size, "
            "image_sizes or the camera's width and height"
            + (f" ({unsized[0]} has none)" if unsized else ""),
        )
    if len(cameras) == 1:
        return float(cameras[0].width), float(cameras[0].height)
    w = np.array([c.width for c in cameras], dtype=np.float64)
    return w, np.array([c.height for c in cameras], dtype=np.float64)


def _ray_input(
    pixels: np.ndarray,
    visible: np.ndarray,
    cameras: list,
    fields: list[str],
    sizes: Sizes | None,
    model: str,
    prefix: str,
) -> tuple[np.ndarray, bool]:
    """(lifter input [N, 17, 3], whether the default camera was used) of a camera-aware model."""
    if cameras:
        intrinsics = intrinsics_from_protos(cameras)
    elif sizes is not None:
        intrinsics = default_intrinsics(*sizes)
    else:
        raise InvalidArgumentError(
            f"{prefix}image_size",
            f"model {model} needs a camera (camera or cameras) or the image size for its "
            "default camera",
        )
    rays, residual = pixels_to_rays(pixels, intrinsics)
    lifted = ray_input(rays, visible)
    failed = visible & ~(residual <= UNDISTORT_RESIDUAL)
    failed |= ~np.isfinite(lifted[..., :2]).all(axis=-1)
    if failed.any():
        i = int(np.flatnonzero(failed.any(axis=1))[0])
        field = fields[i if len(fields) > 1 else 0] if fields else f"{prefix}keypoints.data"
        raise InvalidArgumentError(
            field, f"pose {i}: its keypoints have no finite undistorted ray through this camera"
        )
    return lifted, not cameras


def parse_lift(
    req: poseaug_pb2.Lift2Dto3DRequest, repo: ModelRepository, max_poses: int, prefix: str = ""
) -> LiftInput:
    """Validate `req` and prepare the input its model's manifest declares; raises
    InvalidArgumentError naming the field (prefixed, e.g. 'request[3].')."""
    check_request_id(req.request_id, prefix)
    model = resolve_model(repo, req.model, prefix)
    if req.format not in FORMATS:
        raise InvalidArgumentError(f"{prefix}format", f"unknown keypoint format {req.format}")
    k, matrix, format_name = FORMATS[req.format]
    if not req.HasField("keypoints"):
        raise InvalidArgumentError(f"{prefix}keypoints", "is required")
    shape = list(req.keypoints.shape)
    if len(shape) == 3 and shape[1] != k:
        raise InvalidArgumentError(
            f"{prefix}keypoints.shape",
            f"format {format_name} has K = {k} keypoints, got shape {shape}",
        )
    pixels = to_array(
        req.keypoints, f"{prefix}keypoints", rank=3, fixed={1: k, 2: 2}, max_rows=max_poses
    )
    n = pixels.shape[0]
    track_ids = _track_ids(req, n, prefix)
    sizes = _image_sizes(req, n, prefix)
    cameras, fields = _cameras(req, n, prefix)
    if sizes is not None and cameras:
        _check_camera_sizes(cameras, fields, sizes, len(req.image_sizes) > 0, prefix)
    scores = pose_scores = None
    if req.HasField("scores"):
        scores = to_array(req.scores, f"{prefix}scores", rank=2, fixed={0: n, 1: k})
        if ((scores < 0) | (scores > 1)).any():
            raise InvalidArgumentError(f"{prefix}scores.data", "every score must be in [0, 1]")
        pose_scores = to_h36m(scores, matrix).mean(axis=1, dtype=np.float32)
    points = to_h36m(pixels, matrix)
    if model.lifter_input == SCREEN:
        sizes = _screen_sizes(sizes, cameras, fields, model.name, prefix)
        keypoints = normalize_screen(points, *sizes)
        return LiftInput(model, keypoints, pose_scores, req.request_id, track_ids=track_ids)
    lowest = None if scores is None else lowest_source_scores(scores, SCORE_SOURCES[req.format])
    visible = visible_joints(lowest, points.shape[:2])
    keypoints, default_camera = _ray_input(
        points, visible, cameras, fields, sizes, model.name, prefix
    )
    inferred = (~visible).astype(np.float32)
    return LiftInput(
        model, keypoints, pose_scores, req.request_id, inferred, default_camera, track_ids
    )


def lift_response(parsed: LiftInput, pose3d: np.ndarray) -> poseaug_pb2.Lift2Dto3DResponse:
    resp = poseaug_pb2.Lift2Dto3DResponse(
        pose3d=to_tensor(pose3d),
        joint_names=H36M_JOINT_NAMES,
        model=parsed.model.name,
        model_version=parsed.model.version,
        request_id=parsed.request_id,
    )
    if parsed.pose_scores is not None:
        resp.pose_scores.CopyFrom(to_tensor(parsed.pose_scores))
    if parsed.joint_inferred is not None:
        resp.joint_inferred.CopyFrom(to_tensor(parsed.joint_inferred))
    resp.default_camera = parsed.default_camera
    return resp
