"""Made-up H36M-17 people for the viewer's tests: root-relative, camera frame (y down)."""

from __future__ import annotations

import numpy as np

from poseaug_client.contract import H36M_JOINT_NAMES

#: (x, y) metres of each joint of a person standing upright facing away from the camera.
_STANDING = {
    "right_hip": (0.13, 0.0), "right_knee": (0.15, 0.45), "right_ankle": (0.15, 0.9),
    "left_hip": (-0.13, 0.0), "left_knee": (-0.15, 0.45), "left_ankle": (-0.15, 0.9),
    "spine": (0, -0.25), "thorax": (0, -0.5), "neck_nose": (0, -0.6), "head": (0, -0.72),
    "left_shoulder": (-0.2, -0.48), "left_elbow": (-0.25, -0.2), "left_wrist": (-0.27, 0.05),
    "right_shoulder": (0.2, -0.48), "right_elbow": (0.25, -0.2), "right_wrist": (0.27, 0.05),
}  # fmt: skip
_SWINGING = {"left_wrist": 1, "right_wrist": -1, "left_ankle": -1, "right_ankle": 1}


def people(n: int, seed: int = 0, swing: float = 0.0, jitter: float = 0.02) -> np.ndarray:
    """[n, 17, 3] upright people, the hip at the origin; with `swing` (metres) wrists and
    ankles swing forward and back from one pose to the next, as in walking."""
    pose = np.zeros((17, 3))
    for name, (x, y) in _STANDING.items():
        pose[H36M_JOINT_NAMES.index(name), :2] = (x, y)
    poses = np.repeat(pose[None], n, axis=0)
    phase = swing * np.sin(np.arange(n) / 3 + seed)
    for name, sign in _SWINGING.items():
        poses[:, H36M_JOINT_NAMES.index(name), 2] += sign * phase
    noise = np.random.default_rng(seed).normal(0, jitter, poses.shape)
    return poses + noise * (np.arange(17) > 0)[:, None]
