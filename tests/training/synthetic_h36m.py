"""A tiny stand-in for the Human3.6M arrays, made by the tests (the real ones are licensed).

Same files, keys and conventions as ../shared/data/h36m: world-frame 17-joint poses in metres
(z up), four calibrated cameras per subject looking at the capture volume, and noisy
MPII-16 "detections" aligned frame by frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
# Rest pose offsets from each joint's parent (world metres, z up, facing +y).
REST = np.array(
    [
        [0, 0, 0],
        [-0.13, 0, 0],
        [0, 0, -0.45],
        [0, 0, -0.44],
        [0.13, 0, 0],
        [0, 0, -0.45],
        [0, 0, -0.44],
        [0, 0, 0.23],
        [0, 0, 0.25],
        [0, -0.02, 0.11],
        [0, 0, 0.12],
        [0.15, 0, 0],
        [0, 0, -0.28],
        [0, 0, -0.25],
        [-0.15, 0, 0],
        [0, 0, -0.28],
        [0, 0, -0.25],
    ],
    dtype=np.float64,
)
H36M_TO_MPII = (3, 2, 1, 4, 5, 6, 0, 8, 9, 10, 16, 15, 14, 11, 12, 13)
ACTIONS = ("Walking", "Sitting")


def _pose_sequence(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Random smooth motion: per-joint angle jitter applied along the chain, moving root."""
    out = np.zeros((frames, 17, 3))
    phase = rng.uniform(0, 2 * np.pi, 17)
    for t in range(frames):
        for j, p in enumerate(PARENTS):
            if p < 0:
                out[t, j] = [0.3 * np.sin(t / 20), 0.3 * np.cos(t / 25), 0.95]
                continue
            a = 0.4 * np.sin(t / 7 + phase[j])
            ca, sa = np.cos(a), np.sin(a)
            off = REST[j] @ np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]]).T
            out[t, j] = out[t, p] + off
    return out.astype(np.float32)


def _camera(angle: float, rng: np.random.Generator) -> dict:
    centre = np.array([5 * np.cos(angle), 5 * np.sin(angle), 1.5])
    forward = np.array([0, 0, 1.0]) - centre
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0, 0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return {
        "R": np.stack([right, down, forward]).tolist(),
        "T": centre.tolist(),
        "f": [1145.0 + rng.normal(0, 2), 1144.0 + rng.normal(0, 2)],
        "c": [512.0, 515.0],
        "k": [-0.2, 0.24, -0.003],
        "p": [-0.0014, -0.001],
        "res_w": 1000,
        "res_h": 1002,
    }


def project(points: np.ndarray, cam: dict) -> np.ndarray:
    """The data README's projection, written independently of the package under test."""
    xc = (points - np.asarray(cam["T"])) @ np.asarray(cam["R"]).T
    x, y = xc[..., 0] / xc[..., 2], xc[..., 1] / xc[..., 2]
    k, p = cam["k"], cam["p"]
    r2 = x * x + y * y
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tan = p[1] * x + p[0] * y
    xd = x * (radial + tan) + p[1] * r2
    yd = y * (radial + tan) + p[0] * r2
    return np.stack([cam["f"][0] * xd + cam["c"][0], cam["f"][1] * yd + cam["c"][1]], -1)


def make_fake_h36m(
    root: Path, subjects: tuple[str, ...] = ("S1", "S9"), frames: int = 120, seed: int = 0
) -> Path:
    """Write h36m_3d_17j.npz, h36m_cameras.json and h36m_2d_sh.npz under `root`."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    poses, dets, cams = {}, {}, {}
    ids = ("54138969", "55011271", "58860488", "60457274")
    for s in subjects:
        cams[s] = {cid: _camera(i * np.pi / 2 + 0.3, rng) for i, cid in enumerate(ids)}
        for action in ACTIONS:
            for seq in (action, f"{action} 1"):
                seq_poses = _pose_sequence(rng, frames)
                poses[f"{s}/{seq}"] = seq_poses
                for cid, cam in cams[s].items():
                    pix = project(seq_poses.astype(np.float64), cam)
                    noisy = pix[:, H36M_TO_MPII] + rng.normal(0, 3, (frames, 16, 2))
                    dets[f"{s}/{seq}/{cid}"] = noisy.astype(np.float32)
    np.savez(root / "h36m_3d_17j.npz", **poses)
    np.savez(root / "h36m_2d_sh.npz", **dets)
    (root / "h36m_cameras.json").write_text(json.dumps(cams))
    return root
