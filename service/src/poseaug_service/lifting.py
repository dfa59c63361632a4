"""Lift2Dto3D: validate a request, map and normalize its keypoints, lift them, answer.

Parsing is separate from running so StreamLift2Dto3D can validate message k+1 while message k
is being lifted, and so both RPCs report errors with the same field names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_service.errors import InvalidArgumentError
from poseaug_service.keypoint_formats import FORMATS, H36M_JOINT_NAMES, to_h36m
from poseaug_service.normalization import normalize_screen
from poseaug_service.runtime import LoadedModel, ModelRepository, RepositoryState
from poseaug_service.tensors import to_array, to_tensor

MAX_REQUEST_ID = 128


@dataclass(frozen=True)
class LiftInput:
    """A validated lift request: normalized H36M-17 keypoints ready for the lifter."""

    model: LoadedModel
    keypoints: np.ndarray  # [N, 17, 2] float32, normalized screen coordinates
    pose_scores: np.ndarray | None  # [N] or None
    request_id: str


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
        raise InvalidArgumentError(
            f"{prefix}model", f"unknown model {name!r}; loaded: {', '.join(sorted(repo.models))}"
        )
    return model


def _image_sizes(req: poseaug_pb2.Lift2Dto3DRequest, n: int, prefix: str) -> tuple:
    one = req.HasField("image_size")
    many = len(req.image_sizes) > 0
    if one == many:
        raise InvalidArgumentError(
            f"{prefix}image_size",
            "set exactly one of image_size and image_sizes"
            + (" (both are set)" if one else " (neither is set)"),
        )
    if one:
        size = req.image_size
        for name in ("width", "height"):
            if getattr(size, name) == 0:
                raise InvalidArgumentError(f"{prefix}image_size.{name}", "must be > 0")
        return float(size.width), float(size.height)
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


def parse_lift(
    req: poseaug_pb2.Lift2Dto3DRequest, repo: ModelRepository, max_poses: int, prefix: str = ""
) -> LiftInput:
    """Validate `req`; raises InvalidArgumentError naming the field (prefixed, e.g. 'request.')."""
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
    width, height = _image_sizes(req, n, prefix)
    pose_scores = None
    if req.HasField("scores"):
        scores = to_array(req.scores, f"{prefix}scores", rank=2, fixed={0: n, 1: k})
        if ((scores < 0) | (scores > 1)).any():
            raise InvalidArgumentError(f"{prefix}scores.data", "every score must be in [0, 1]")
        pose_scores = to_h36m(scores, matrix).mean(axis=1, dtype=np.float32)
    keypoints = normalize_screen(to_h36m(pixels, matrix), width, height)
    return LiftInput(model, keypoints, pose_scores, req.request_id)


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
    return resp
