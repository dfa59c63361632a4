"""Is a 3D pose one a human body can take? Joint range of motion and upright-ness, in numpy.

Augmented training data is only worth having if the bodies in it are possible. This module
measures, on H36M-17 poses (metres, camera frame: x right, y down, z forward), the joint
angles that 17 joint centres determine, and checks them against published range-of-motion
limits; it also measures how far a body's torso is from upright. The service applies it to
every augmented pose (Augment's `outside_joint_limits`, and the re-draw of poses outside), and
callers can apply it to their own data. Training keeps a differentiable torch twin
(`poseaug_training.poseaug.joint_limits`); tests/contract ties the two.

Frames (built per pose from its joints, so they move with the body):
- pelvis: right = right hip - left hip; up = hip -> spine, made orthogonal to right;
  forward = up x right (the side the knees bend towards and the nose points to);
- thorax: right = right shoulder - left shoulder; up = spine -> thorax; forward likewise.
Angles (degrees; flexion positive):
- knee flexion: thigh to shank about the pelvis' right axis (negative = hyperextension);
- elbow flexion: upper arm to forearm (unsigned: 17 joints do not fix the elbow's axis);
- hip flexion: the thigh's forward angle from "down" in the pelvis' sagittal plane
  (negative = extension); hip abduction: the thigh's angle out of that plane (negative =
  adduction). The pelvis frame's up runs hip -> spine, so "hip" flexion here includes the
  lumbar spine's share (as when sitting);
- shoulder extension: the upper arm's angle behind the thorax' frontal plane;
- trunk flexion / lateral flexion / axial rotation: the thorax segment (spine -> thorax)
  against the pelvis frame, and the shoulder line against the hip line about the pelvis' up;
- neck flexion / lateral flexion: the head segment (neck/nose -> head top) against the thorax
  frame, flexion counted from the segment's upright direction (`HEAD_SEGMENT_BACK_DEG`).
Every angle is a function of bone directions only, so bone lengths (PoseAug's BL, other
bodies) never change it, and neither does a rotation of the whole body.

Limits: the American Academy of Orthopaedic Surgeons' normal ranges (AAOS, "Joint Motion:
Method of Measuring and Recording", 1965; also Soucie et al., Haemophilia 2011, for healthy
adults) widened where joint centres from motion capture, or segments that span two joints,
measure more than one anatomical joint; each entry says how. On Human3.6M (every 10th frame
of all 7 subjects) 0.5% of the poses have an angle outside (`tests/contract` measures it on
synthetic poses; the README gives the real-data figure and its command).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "JOINT_LIMITS",
    "JointLimit",
    "joint_angles",
    "limit_violations",
    "outside_joint_limits",
    "tilt_from_upright",
    "torso",
]

# H36M-17 joint indices (contract.H36M_JOINT_NAMES).
_HIP, _SPINE, _THORAX, _NOSE, _HEAD = 0, 7, 8, 9, 10
#: The head segment (neck/nose -> head top) of an upright head points this far behind the
#: thorax' up direction (the median over Human3.6M); neck flexion counts from there.
HEAD_SEGMENT_BACK_DEG = 28.0
_LEGS = {"right": (1, 2, 3), "left": (4, 5, 6)}  # hip, knee, ankle
_ARMS = {"right": (14, 15, 16), "left": (11, 12, 13)}  # shoulder, elbow, wrist
_EPS = 1e-9


@dataclass(frozen=True)
class JointLimit:
    """An angle's allowed range in degrees and where the numbers come from."""

    low: float
    high: float
    source: str


#: Angle name -> its limit. Left and right share one entry (checked per side).
JOINT_LIMITS: dict[str, JointLimit] = {
    "knee_flexion": JointLimit(
        -10.0, 160.0, "AAOS 0-135 active, 10 hyperextension; passive heel-to-buttock to 160"
    ),
    "elbow_flexion": JointLimit(0.0, 165.0, "AAOS 0-150, +15 for joint centres from markers"),
    "hip_flexion": JointLimit(
        -40.0, 160.0, "AAOS hip 0-120 flexion, 0-30 extension, plus the lumbar spine's share"
    ),
    "hip_abduction": JointLimit(-35.0, 50.0, "AAOS 0-45 abduction, 0-30 adduction, +5"),
    "shoulder_extension": JointLimit(-180.0, 70.0, "AAOS 0-60 extension, +10"),
    "trunk_flexion": JointLimit(-30.0, 80.0, "AAOS thoracolumbar 0-80 flexion, 0-25 extension"),
    "trunk_lateral_flexion": JointLimit(-45.0, 45.0, "AAOS thoracolumbar 0-35, +10"),
    "trunk_rotation": JointLimit(-50.0, 50.0, "AAOS thoracolumbar 0-45, +5"),
    "neck_flexion": JointLimit(
        -80.0, 70.0, "AAOS cervical 0-45 each way, plus the upper thoracic spine's share"
    ),
    "neck_lateral_flexion": JointLimit(-65.0, 65.0, "AAOS cervical 0-45, plus the thorax' share"),
}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", a, b)


def _frame(right: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = _unit(right)
    u = _unit(up - _dot(up, r)[..., None] * r)
    return r, u, np.cross(u, r)


def _asin(x: np.ndarray) -> np.ndarray:
    return np.degrees(np.arcsin(np.clip(x, -1.0, 1.0)))


def _atan2(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan2(y, x))


def joint_angles(poses: np.ndarray) -> dict[str, np.ndarray]:
    """Angles in degrees of poses [..., 17, 3]: name -> [...]; per-side angles are named
    "<side>_<angle>" for the angles of JOINT_LIMITS that exist on both sides."""
    p = np.asarray(poses, dtype=np.float64)
    r, u, f = _frame(p[..., 1, :] - p[..., 4, :], p[..., _SPINE, :] - p[..., _HIP, :])
    rt, ut, ft = _frame(p[..., 14, :] - p[..., 11, :], p[..., _THORAX, :] - p[..., _SPINE, :])
    out: dict[str, np.ndarray] = {}
    for side, (hip, knee, ankle) in _LEGS.items():
        thigh = _unit(p[..., knee, :] - p[..., hip, :])
        shank = _unit(p[..., ankle, :] - p[..., knee, :])
        out[f"{side}_knee_flexion"] = -_atan2(_dot(np.cross(thigh, shank), r), _dot(thigh, shank))
        outward = r if side == "right" else -r
        out[f"{side}_hip_flexion"] = _atan2(_dot(thigh, f), -_dot(thigh, u))
        out[f"{side}_hip_abduction"] = _asin(_dot(thigh, outward))
    for side, (shoulder, elbow, wrist) in _ARMS.items():
        upper = _unit(p[..., elbow, :] - p[..., shoulder, :])
        fore = _unit(p[..., wrist, :] - p[..., elbow, :])
        out[f"{side}_elbow_flexion"] = np.degrees(np.arccos(np.clip(_dot(upper, fore), -1, 1)))
        out[f"{side}_shoulder_extension"] = _asin(-_dot(upper, ft))
    chest = _unit(p[..., _THORAX, :] - p[..., _SPINE, :])
    out["trunk_flexion"] = _atan2(_dot(chest, f), _dot(chest, u))
    out["trunk_lateral_flexion"] = _asin(_dot(chest, r))
    shoulders = p[..., 14, :] - p[..., 11, :]
    across = _unit(shoulders - _dot(shoulders, u)[..., None] * u)
    out["trunk_rotation"] = _atan2(_dot(np.cross(r, across), u), _dot(r, across))
    head = _unit(p[..., _HEAD, :] - p[..., _NOSE, :])
    out["neck_flexion"] = _atan2(_dot(head, ft), _dot(head, ut)) + HEAD_SEGMENT_BACK_DEG
    out["neck_lateral_flexion"] = _asin(_dot(head, rt))
    return out


def _limit_of(name: str) -> JointLimit:
    return JOINT_LIMITS[name.removeprefix("left_").removeprefix("right_")]


def limit_violations(poses: np.ndarray) -> dict[str, np.ndarray]:
    """Angle name -> [...] bool, True where that angle of the pose is outside its limit."""
    return {
        name: (angle < _limit_of(name).low) | (angle > _limit_of(name).high)
        for name, angle in joint_angles(poses).items()
    }


def outside_joint_limits(poses: np.ndarray) -> np.ndarray:
    """[...] bool: True for poses [..., 17, 3] with any angle outside JOINT_LIMITS."""
    flags = limit_violations(poses).values()
    return np.logical_or.reduce(list(flags))


def tilt_from_upright(poses: np.ndarray, up: np.ndarray | tuple = (0.0, -1.0, 0.0)) -> np.ndarray:
    """Degrees between each pose's torso (hip -> thorax) and `up` (default: the camera's up,
    -y). 0 is upright, 90 lying, 180 upside down."""
    up = _unit(np.asarray(up, np.float64))
    return np.degrees(np.arccos(np.clip(_dot(_unit(torso(poses)), up), -1, 1)))


def torso(poses: np.ndarray) -> np.ndarray:
    """[..., 3]: each pose's torso vector, hip -> thorax (float64): what "upright" refers to."""
    p = np.asarray(poses, dtype=np.float64)
    return p[..., _THORAX, :] - p[..., _HIP, :]
