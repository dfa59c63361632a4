"""What the proto alone does not say, written once for the client and the service.

The service depends on this package (for the stubs) and imports these values instead of
keeping copies: the limits a request must stay within, the environment variable that carries
the token, the tensor codec, the keypoint layouts and the H36M-17 skeleton every 3D pose is
returned in, and what one output row costs in a response. Training keeps its own skeleton
tables (it does not depend on the client); tests/contract ties them to these.
"""

from __future__ import annotations

import numpy as np

from poseaug.v1 import poseaug_pb2

__all__ = [
    "AUGMENT_PARAM_FLOATS",
    "AUGMENT_ROW_FLOATS",
    "COCO_NAMES",
    "DEFAULT_HFOV_DEG",
    "DEFAULT_STREAM_CHUNK",
    "F32",
    "H36M_JOINT_NAMES",
    "H36M_PARENTS",
    "LIFT_ROW_BYTES",
    "MAX_AUGMENT_COUNT",
    "MAX_SEED",
    "MAX_STREAM_CHUNK",
    "MPII_NAMES",
    "NUM_BONES",
    "NUM_JOINTS",
    "TOKEN_ENV",
    "augment_row_bytes",
    "to_tensor",
]

# --- Limits of a request ---------------------------------------------------------------
#: Augmented variants per source pose (AugmentRequest.count), at most.
MAX_AUGMENT_COUNT = 1024
#: Seeds are in [0, MAX_SEED).
MAX_SEED = 2**63
#: Output rows per StreamAugment chunk (chunk_size), at most; 0 asks for the default.
MAX_STREAM_CHUNK = 65_536
DEFAULT_STREAM_CHUNK = 4096

#: The environment variable both sides read the bearer token from.
TOKEN_ENV = "POSEAUG_TOKEN"

#: Camera-aware lifters' camera of a request that sends none: this horizontal field of view
#: (degrees) across the image width, principal point at the image centre, square pixels, no
#: distortion.
DEFAULT_HFOV_DEG = 60.0

# --- Tensor codec ----------------------------------------------------------------------
#: Every tensor on the wire: packed row-major little-endian float32 bytes plus a shape.
F32 = np.dtype("<f4")


def to_tensor(array: np.ndarray) -> poseaug_pb2.Tensor:
    """Pack an array as a Tensor message (no copy when it already is contiguous `<f4`)."""
    packed = np.ascontiguousarray(array, dtype=F32)
    return poseaug_pb2.Tensor(shape=list(packed.shape), data=packed.tobytes())


# --- Skeleton and keypoint layouts -----------------------------------------------------
#: H36M-17 joint names, the order of every 3D pose the service returns.
H36M_JOINT_NAMES: tuple[str, ...] = (
    "hip",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "spine",
    "thorax",
    "neck_nose",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
)
#: Parent of each H36M-17 joint (-1 for the root).
H36M_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
NUM_JOINTS = 17
NUM_BONES = NUM_JOINTS - 1

#: COCO-17 keypoint order (KEYPOINT_FORMAT_COCO_17).
COCO_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
#: MPII-16 keypoint order (KEYPOINT_FORMAT_MPII_16, the Stacked Hourglass convention).
MPII_NAMES: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)

# --- What a response costs -------------------------------------------------------------
#: Bytes of one lifted pose in a LiftResponse (pose3d [17, 3] plus its score).
LIFT_ROW_BYTES = NUM_JOINTS * 3 * 4 + 4
#: float32 values of every augmented row: pose3d [17, 3], keypoints2d [17, 2], the
#: outside_joint_limits flag and the translation [3] (always sent: where the pose is).
AUGMENT_ROW_FLOATS = (NUM_JOINTS * 3, NUM_JOINTS * 2, 1, 3)
#: float32 parameters each op adds to a row, in op order: BA [16, 3], BL [16], RT rotation [3].
AUGMENT_PARAM_FLOATS = (NUM_BONES * 3, NUM_BONES, 3)


def augment_row_bytes(ops: tuple[bool, ...] | np.ndarray = (True, True, True)) -> int:
    """Bytes of one augmented row in a response when the ops flagged in `ops` (BA, BL, RT)
    are on; all of them by default (the most a row can cost)."""
    floats = sum(AUGMENT_ROW_FLOATS) + sum(
        f for f, on in zip(AUGMENT_PARAM_FLOATS, ops, strict=True) if on
    )
    return 4 * floats
