"""Plausible human poses the tests make themselves (no licensed data): a standing body.

H36M-17 joints in metres, camera frame (x right, y down, z forward), root at the origin, the
person facing the camera (their right on the image's left, the nose towards the camera), about
1.7 m tall. `bend_knees` bends both knees about the hip axis (negative: hyperextension), so a
test can put poses right next to a joint limit.
"""

from __future__ import annotations

import numpy as np

STANDING = np.array(
    [
        [0.0, 0.0, 0.0],  # hip
        [-0.12, 0.0, 0.0],  # right hip
        [-0.12, 0.45, 0.0],  # right knee
        [-0.12, 0.9, 0.0],  # right ankle
        [0.12, 0.0, 0.0],  # left hip
        [0.12, 0.45, 0.0],  # left knee
        [0.12, 0.9, 0.0],  # left ankle
        [0.0, -0.25, 0.0],  # spine
        [0.0, -0.5, 0.0],  # thorax
        [0.0, -0.6, -0.08],  # neck/nose
        [0.0, -0.72, 0.0],  # head
        [0.18, -0.48, 0.0],  # left shoulder
        [0.18, -0.2, 0.0],  # left elbow
        [0.18, 0.05, 0.0],  # left wrist
        [-0.18, -0.48, 0.0],  # right shoulder
        [-0.18, -0.2, 0.0],  # right elbow
        [-0.18, 0.05, 0.0],  # right wrist
    ],
    dtype=np.float64,
)


def bend_knees(pose: np.ndarray, degrees: float) -> np.ndarray:
    """Both shanks turned about the hip axis (x) by `degrees` of knee flexion."""
    out = pose.copy()
    a = np.radians(degrees)
    # Flexion takes the ankle backwards (+z, away from the camera the person faces).
    turn = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    for knee, ankle in ((2, 3), (5, 6)):
        out[ankle] = out[knee] + turn @ (pose[ankle] - pose[knee])
    return out


def standing_poses(n: int, seed: int = 0, spread_deg: float = 10.0) -> np.ndarray:
    """[n, 17, 3] float32: the standing body turned about the vertical by random angles, arms
    and knees bent a little, each limb by at most `spread_deg` degrees."""
    rng = np.random.default_rng(seed)
    poses = []
    for _ in range(n):
        pose = bend_knees(STANDING, rng.uniform(0.0, spread_deg))
        yaw = rng.uniform(-np.pi, np.pi)
        c, s = np.cos(yaw), np.sin(yaw)
        turn = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        poses.append(pose @ turn.T)
    return np.asarray(poses, np.float32)
