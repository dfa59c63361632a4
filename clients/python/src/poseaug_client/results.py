"""What the client hands back: numpy arrays and small read-only records, no protobuf."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_client.formats import NUM_JOINTS, format_name
from poseaug_client.tensors import from_tensor

#: The AugmentParameters fields, in the order the ops run.
PARAMETER_NAMES = ("bone_angle_offsets", "bone_length_ratios", "rotation", "translation")
# The per-row plausibility flag of an AugmentResponse, kept beside the parameters.
PLAUSIBILITY_FLAG = "outside_joint_limits"


class LiftResult(NamedTuple):
    """A lift with what the server says about it (`lift_result`; `lift` returns poses3d).

    poses3d: [N, 17, 3] metres, root-relative. joint_inferred: [N, 17] float32, 1.0 where a
    camera-aware model inferred the joint because its score was under the server's threshold
    (0.3), None for screen-normalized (format 1) models. default_camera: no camera was sent
    and a camera-aware model used its default (60 degree horizontal field of view).
    pose_scores: [N] mean mapped score, None without scores. A single input pose gives
    [17, 3], [17] and a scalar array."""

    poses3d: np.ndarray
    joint_inferred: np.ndarray | None
    default_camera: bool
    pose_scores: np.ndarray | None
    model: str
    model_version: str


class AugmentResult(NamedTuple):
    """Augmented poses [M, 17, 3] (metres, absolute), their projections [M, 17, 2] (pixels)
    and the parameters of the applied ops (name -> array with M rows; "translation" always,
    and "outside_joint_limits", the server's plausibility flag per row). Row i * count + j is
    augmentation j of source pose i."""

    poses3d: np.ndarray
    keypoints2d: np.ndarray
    params: dict[str, np.ndarray]

    @property
    def outside_joint_limits(self) -> np.ndarray | None:
        """[M] bool: poses with a joint angle outside the range of motion (None from servers
        that do not check)."""
        flags = self.params.get(PLAUSIBILITY_FLAG)
        return None if flags is None else flags > 0.5


class AugmentChunk(NamedTuple):
    """One streamed piece of a bulk augmentation: rows [offset, offset + len(poses3d))."""

    offset: int
    poses3d: np.ndarray
    keypoints2d: np.ndarray
    params: dict[str, np.ndarray]


@dataclass(frozen=True)
class ModelInfo:
    """A model bundle as the server describes it (manifest parsed from JSON)."""

    name: str
    version: str
    is_default: bool
    joint_names: tuple[str, ...]
    joint_parents: tuple[int, ...]
    input_formats: tuple[str, ...]
    providers: tuple[str, ...]
    has_augmentor: bool
    metrics: dict[str, float] = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    # What the lifter is fed: "videopose3d_screen" (format 1) or "camera_rays" (camera-aware).
    lifter_input: str = ""
    # Frames in the lifter's window (1: single-frame) and the most lookahead a stream may ask.
    temporal_frames: int = 1
    temporal_lookahead: int = 0

    @property
    def temporal(self) -> bool:
        """Whether the lifter lifts tracks over windows of frames (send track_ids)."""
        return self.temporal_frames > 1

    @property
    def camera_aware(self) -> bool:
        """Whether the lifter uses cameras and detector scores (see LiftResult)."""
        return self.lifter_input == "camera_rays"

    @classmethod
    def from_proto(cls, info: poseaug_pb2.ModelInfo) -> ModelInfo:
        try:
            manifest = json.loads(info.manifest_json) if info.manifest_json else {}
        except json.JSONDecodeError:
            manifest = {}
        return cls(
            name=info.name,
            version=info.version,
            is_default=info.is_default,
            joint_names=tuple(info.joint_names),
            joint_parents=tuple(info.joint_parents),
            input_formats=tuple(format_name(f) for f in info.input_formats),
            providers=tuple(info.providers),
            has_augmentor=info.has_augmentor,
            metrics=dict(sorted(info.metrics.items())),
            manifest=manifest if isinstance(manifest, dict) else {},
            lifter_input=info.lifter_input,
            temporal_frames=info.temporal_frames or 1,
            temporal_lookahead=info.temporal_lookahead,
        )

    def to_dict(self) -> dict:
        """JSON-ready form (the CLI's `models --json`)."""
        return {
            "name": self.name,
            "version": self.version,
            "is_default": self.is_default,
            "has_augmentor": self.has_augmentor,
            "input_formats": list(self.input_formats),
            "providers": list(self.providers),
            "lifter_input": self.lifter_input,
            "temporal_frames": self.temporal_frames,
            "temporal_lookahead": self.temporal_lookahead,
            "joint_names": list(self.joint_names),
            "joint_parents": list(self.joint_parents),
            "metrics": self.metrics,
        }


def lift_poses(response: poseaug_pb2.Lift2Dto3DResponse) -> np.ndarray:
    """pose3d [n, 17, 3] of one response."""
    return from_tensor(response.pose3d, "pose3d")


def join_lift(
    poses: list[np.ndarray], responses: list[poseaug_pb2.Lift2Dto3DResponse], single: bool
) -> LiftResult:
    """One LiftResult from a lift's chunks in order: their checked poses and responses. A
    single input pose drops the batch axis."""

    def joined(parts: list[np.ndarray]) -> np.ndarray:
        value = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return value[0] if single else value

    def optional(name: str) -> np.ndarray | None:
        if not responses or not all(r.HasField(name) for r in responses):
            return None
        return joined([from_tensor(getattr(r, name), name) for r in responses])

    first = responses[0] if responses else poseaug_pb2.Lift2Dto3DResponse()
    return LiftResult(
        joined(poses) if poses else np.zeros((0, NUM_JOINTS, 3), np.float32),
        optional("joint_inferred"),
        any(r.default_camera for r in responses),
        optional("pose_scores"),
        first.model,
        first.model_version,
    )


def augment_result(response: poseaug_pb2.AugmentResponse) -> AugmentResult:
    """Arrays of one AugmentResponse; parameters of ops that were not applied are left out."""
    params = {
        name: from_tensor(getattr(response.parameters, name), f"parameters.{name}")
        for name in PARAMETER_NAMES
        if response.parameters.HasField(name)
    }
    if response.HasField(PLAUSIBILITY_FLAG):
        params[PLAUSIBILITY_FLAG] = from_tensor(response.outside_joint_limits, PLAUSIBILITY_FLAG)
    return AugmentResult(
        from_tensor(response.poses3d, "poses3d"),
        from_tensor(response.keypoints2d, "keypoints2d"),
        params,
    )


def concat_augment(parts: Sequence[AugmentResult | AugmentChunk]) -> AugmentResult:
    """Join chunk results (or streamed chunks) in order."""
    if len(parts) == 1 and isinstance(parts[0], AugmentResult):
        return parts[0]
    names = list(parts[0].params)
    return AugmentResult(
        np.concatenate([p.poses3d for p in parts]),
        np.concatenate([p.keypoints2d for p in parts]),
        {name: np.concatenate([p.params[name] for p in parts]) for name in names},
    )


def slice_chunk(chunk: AugmentChunk, skip: int) -> AugmentChunk:
    """Drop the first `skip` rows of a chunk (already delivered before a retry)."""
    return AugmentChunk(
        chunk.offset + skip,
        chunk.poses3d[skip:],
        chunk.keypoints2d[skip:],
        {name: value[skip:] for name, value in chunk.params.items()},
    )
