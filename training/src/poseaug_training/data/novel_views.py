"""Unseen-camera test pairs: a stand-in for cross-dataset generalization.

No MPI-INF-3DHP or 3DPW data is available to this project, so generalization is measured on
what those datasets mostly change: the viewpoint. The test subjects' poses are seen from
virtual cameras the training set never had (other elevations, azimuths and distances),
projected with a Human3.6M-like camera. Seeded: the same pairs on every machine.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from poseaug_training.data.camera import normalize_screen, project_to_pixels
from poseaug_training.data.h36m import H36M, action_of
from poseaug_training.data.pairs import PoseSet

# A Human3.6M-like pinhole camera without distortion: f, c, k, p, width, height.
VIRTUAL_INTRINSICS = np.array(
    [1145.0, 1144.0, 512.5, 515.5, 0, 0, 0, 0, 0, 1000, 1002], dtype=np.float32
)


def _rotation(yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """[N, 3, 3]: yaw about the camera's vertical (y) axis, then pitch about its x axis."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    one, zero = np.ones_like(yaw), np.zeros_like(yaw)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rx = np.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(-1, 3, 3)
    return rx @ ry


def build_novel_view_pairs(
    data: H36M,
    subjects: list[str],
    stride: int = 1,
    seed: int = 0,
    pitch_deg: tuple[float, float] = (20.0, 50.0),
    distance_m: tuple[float, float] = (3.0, 8.0),
) -> PoseSet:
    """Every `stride`-th frame of `subjects`, each seen from one random virtual camera.

    Each pose is first put in the first camera's frame, then rotated about its root by a random
    yaw (any direction) and a steep downward or upward look (|pitch| in `pitch_deg`, which the
    four Human3.6M cameras at chest height never see), and placed at a random distance with a
    random offset that keeps it in the image.
    """
    rng = np.random.default_rng(seed)
    sequences = data.sequences(subjects)
    actions = sorted({action_of(seq) for _, seq in sequences})
    subj_names = sorted({s for s, _ in sequences})
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("pose3d", "root", "act", "subj")}
    for subject, seq in sequences:
        cam = data.cameras[subject][0]
        local = cam.world_to_camera(data.poses_world[(subject, seq)][::stride])
        rel = local - local[:, :1]
        n = len(rel)
        yaw = rng.uniform(-math.pi, math.pi, n)
        pitch = np.deg2rad(rng.uniform(*pitch_deg, n)) * rng.choice([-1.0, 1.0], n)
        rot = _rotation(yaw, pitch).astype(np.float32)
        rel = np.einsum("nij,nkj->nki", rot, rel)
        depth = rng.uniform(*distance_m, n)
        lateral = rng.uniform(-0.12, 0.12, (n, 2)) * depth[:, None]
        root = np.concatenate([lateral, depth[:, None]], axis=1).astype(np.float32)
        out["pose3d"].append(rel.astype(np.float32))
        out["root"].append(root)
        out["act"].append(np.full(n, actions.index(action_of(seq))))
        out["subj"].append(np.full(n, subj_names.index(subject)))
    pose3d = torch.from_numpy(np.concatenate(out["pose3d"]))
    root = torch.from_numpy(np.concatenate(out["root"]))
    intr = torch.from_numpy(np.broadcast_to(VIRTUAL_INTRINSICS, (len(pose3d), 11)).copy())
    pix = project_to_pixels((pose3d + root[:, None]).double(), intr.double())
    kp2d = normalize_screen(pix, intr.double()).float()
    return PoseSet(
        pose3d=pose3d,
        root=root,
        kp2d=kp2d,
        intrinsics=intr,
        action=torch.from_numpy(np.concatenate(out["act"]).astype(np.int64)),
        subject=torch.from_numpy(np.concatenate(out["subj"]).astype(np.int64)),
        actions=actions,
        subjects=subj_names,
    )
