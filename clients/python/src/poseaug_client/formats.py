"""Names users type (formats, ops, cameras) mapped to the contract's enums and messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from poseaug.v1 import poseaug_pb2
from poseaug_client.contract import (  # noqa: F401
    COCO_NAMES,
    H36M_JOINT_NAMES,
    H36M_PARENTS,
    MPII_NAMES,
    NUM_JOINTS,
)
from poseaug_client.errors import invalid_argument

#: User-facing format name -> (enum value, joints per pose).
KEYPOINT_FORMATS: dict[str, tuple[int, int]] = {
    "h36m17": (poseaug_pb2.KEYPOINT_FORMAT_H36M_17, 17),
    "coco17": (poseaug_pb2.KEYPOINT_FORMAT_COCO_17, 17),
    "mpii16": (poseaug_pb2.KEYPOINT_FORMAT_MPII_16, 16),
}
_FORMAT_NAMES = {value: name for name, (value, _) in KEYPOINT_FORMATS.items()}
#: User-facing format name -> its joint names, in order.
KEYPOINT_NAMES: dict[str, tuple[str, ...]] = {
    "h36m17": H36M_JOINT_NAMES,
    "coco17": COCO_NAMES,
    "mpii16": MPII_NAMES,
}
#: User-facing format name -> the (joint, joint) pairs drawn as bones of its 2D skeleton.
# fmt: off
KEYPOINT_EDGES: dict[str, list[tuple[int, int]]] = {
    "h36m17": [(j, p) for j, p in enumerate(H36M_PARENTS) if p >= 0],
    "coco17": [
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
        (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ],
    "mpii16": [
        (0, 1), (1, 2), (2, 6), (3, 6), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (10, 11),
        (11, 12), (12, 7), (13, 7), (13, 14), (14, 15),
    ],
}
# fmt: on

#: User-facing op name -> enum value, in the fixed order the augmentor applies them.
AUGMENT_OPS: dict[str, int] = {
    "ba": poseaug_pb2.AUGMENT_OP_BA,
    "bl": poseaug_pb2.AUGMENT_OP_BL,
    "rt": poseaug_pb2.AUGMENT_OP_RT,
}

_CAMERA_FIELDS = ("fx", "fy", "cx", "cy", "width", "height", "radial", "tangential")


def _squash(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def keypoint_format(name: str | int) -> tuple[int, int]:
    """(enum value, joints per pose) of a format given as "h36m17", "COCO_17", an enum, ..."""
    if isinstance(name, int):
        if name in _FORMAT_NAMES:
            return KEYPOINT_FORMATS[_FORMAT_NAMES[name]]
        raise invalid_argument(f"format: unknown keypoint format {name}")
    key = _squash(name).removeprefix("keypointformat")
    if key not in KEYPOINT_FORMATS:
        raise invalid_argument(
            f"format: unknown keypoint format {name!r}; use one of {', '.join(KEYPOINT_FORMATS)}"
        )
    return KEYPOINT_FORMATS[key]


def format_name(value: int) -> str:
    """The user-facing name of a KeypointFormat enum value ("h36m17", ...)."""
    return _FORMAT_NAMES.get(value, poseaug_pb2.KeypointFormat.Name(value))


def augment_ops(ops: str | Iterable[str]) -> list[int]:
    """Op enums from "ba,bl,rt" or ("ba", "rt"); order and duplicates do not matter."""
    names = ops.split(",") if isinstance(ops, str) else list(ops)
    chosen = set()
    for op in names:
        key = _squash(str(op)).removeprefix("augmentop")
        if not key:
            continue
        if key not in AUGMENT_OPS:
            raise invalid_argument(f"ops: unknown op {op!r}; use ba, bl and/or rt")
        chosen.add(key)
    if not chosen:
        raise invalid_argument("ops: choose at least one of ba, bl, rt")
    return [value for key, value in AUGMENT_OPS.items() if key in chosen]


def camera_message(
    camera: poseaug_pb2.CameraIntrinsics | Mapping[str, object] | None,
) -> poseaug_pb2.CameraIntrinsics | None:
    """A CameraIntrinsics from a mapping (fx, fy, cx, cy, width, height[, radial, tangential])."""
    if camera is None or isinstance(camera, poseaug_pb2.CameraIntrinsics):
        return camera
    if not isinstance(camera, Mapping):
        raise invalid_argument("camera: expected a mapping of fx, fy, cx, cy, width, height")
    unknown = sorted(set(camera) - set(_CAMERA_FIELDS))
    if unknown:
        raise invalid_argument(f"camera: unknown field(s) {', '.join(unknown)}")
    try:
        return poseaug_pb2.CameraIntrinsics(**camera)
    except (TypeError, ValueError) as exc:
        raise invalid_argument(f"camera: {exc}") from None
