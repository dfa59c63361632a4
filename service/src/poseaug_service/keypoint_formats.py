"""Keypoint layouts the server accepts, mapped to Human3.6M-17 by one matrix per format.

Each format is a [17, K] matrix W with out = W @ keypoints, so a whole batch (and its scores)
maps in one vectorized matmul. COCO follows MMPose's coco->h36m conversion, MPII the
3d-pose-baseline Stacked Hourglass convention (see the proto's KeypointFormat comments).
Scores map through the same matrices: averaged for pose_scores, and as the lowest score of a
joint's sources (the non-zero entries of its row) where a missing source makes it missing.
"""

from __future__ import annotations

import numpy as np

from poseaug.v1 import poseaug_pb2

# The output joint order and the input layouts are part of the contract the client package
# carries with the stubs.
from poseaug_client.contract import (  # noqa: F401
    COCO_NAMES,
    H36M_JOINT_NAMES,
    H36M_PARENTS,
    MPII_NAMES,
    NUM_JOINTS,
)


def _matrix(
    source: tuple[str, ...],
    recipe: dict[str, dict[str, float]],
    target: tuple[str, ...] = H36M_JOINT_NAMES,
) -> np.ndarray:
    """Build W[len(target), K] from {target joint: {source joint: weight}}; every joint the
    recipe does not build (the limbs) maps from the source joint of the same name."""
    w = np.zeros((len(target), len(source)), dtype=np.float32)
    for j, joint in enumerate(target):
        for name, weight in recipe.get(joint, {joint: 1.0}).items():
            w[j, source.index(name)] += weight
    return w


COCO_TO_H36M = _matrix(
    COCO_NAMES,
    {
        "hip": {"left_hip": 0.5, "right_hip": 0.5},
        "thorax": {"left_shoulder": 0.5, "right_shoulder": 0.5},
        # spine = mean(pelvis, thorax)
        "spine": {
            "left_hip": 0.25,
            "right_hip": 0.25,
            "left_shoulder": 0.25,
            "right_shoulder": 0.25,
        },
        "head": {"left_eye": 0.5, "right_eye": 0.5},
        "neck_nose": {"nose": 1.0},
    },
)
_MPII_TO_H36M = _matrix(
    MPII_NAMES,
    {
        "hip": {"pelvis": 1.0},
        "spine": {"pelvis": 0.5, "thorax": 0.5},
        "thorax": {"thorax": 1.0},
        "neck_nose": {"upper_neck": 1.0},
        "head": {"head_top": 1.0},
    },
)

# Augment's COCO-17 output: the inverse of the COCO input mapping where it has one (limbs,
# nose = neck/nose); H36M-17 has no eyes or ears, so they are the head joint, which the COCO
# input mapping (head = mean of the eyes) takes back to the same pose.
H36M_TO_COCO = _matrix(
    H36M_JOINT_NAMES,
    {
        "nose": {"neck_nose": 1.0},
        **{face: {"head": 1.0} for face in ("left_eye", "right_eye", "left_ear", "right_ear")},
    },
    target=COCO_NAMES,
)

# format enum -> (K, matrix or None for identity, printable name)
FORMATS: dict[int, tuple[int, np.ndarray | None, str]] = {
    poseaug_pb2.KEYPOINT_FORMAT_UNSPECIFIED: (17, None, "H36M_17"),
    poseaug_pb2.KEYPOINT_FORMAT_H36M_17: (17, None, "H36M_17"),
    poseaug_pb2.KEYPOINT_FORMAT_COCO_17: (17, COCO_TO_H36M, "COCO_17"),
    poseaug_pb2.KEYPOINT_FORMAT_MPII_16: (16, _MPII_TO_H36M, "MPII_16"),
}
INPUT_FORMATS = (
    poseaug_pb2.KEYPOINT_FORMAT_H36M_17,
    poseaug_pb2.KEYPOINT_FORMAT_COCO_17,
    poseaug_pb2.KEYPOINT_FORMAT_MPII_16,
)


def score_sources(matrix: np.ndarray) -> np.ndarray:
    """[17, S] source keypoints of each H36M joint (the non-zero weights of its row in the
    mapping matrix), padded by repeating the first: the minimum over a row's scores is the
    lowest score among that joint's sources."""
    rows = [np.flatnonzero(row) for row in matrix]
    width = max(len(r) for r in rows)
    return np.array([np.resize(r, width) for r in rows], dtype=np.intp)


# format enum -> score_sources of its matrix (None: identity)
SCORE_SOURCES: dict[int, np.ndarray | None] = {
    fmt: None if matrix is None else score_sources(matrix)
    for fmt, (_, matrix, _) in FORMATS.items()
}


def to_h36m(values: np.ndarray, matrix: np.ndarray | None) -> np.ndarray:
    """Map [N, K, C] keypoints (or [N, K] scores) of a format to H36M-17 order, float32."""
    if matrix is None:
        return values
    if values.ndim == 2:
        return values @ matrix.T
    return np.matmul(matrix, values)


def lowest_source_scores(scores: np.ndarray, sources: np.ndarray | None) -> np.ndarray:
    """[N, K] scores -> [N, 17]: each H36M joint takes the lowest score of its sources, so a
    joint built from several keypoints counts as missing when any of them is."""
    if sources is None:
        return scores
    out = scores[:, sources[:, 0]]
    for column in sources.T[1:]:  # one [N, 17] temporary at a time, not [N, 17, S]
        np.minimum(out, scores[:, column], out=out)
    return out
