"""Read the Human3.6M arrays by path (their licence forbids copying them anywhere).

Two layouts are understood: this project's `h36m_3d_17j.npz` + `h36m_cameras.json` (+ the
Stacked Hourglass detections `h36m_2d_sh.npz`), and VideoPose3D's `data_3d_h36m.npz`
(`positions_3d[subject][action]`, 32 or 17 joints), which many users already have.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from poseaug_training.data.camera import Camera
from poseaug_training.data.keypoints import mpii16_to_h36m17

TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
# The 17 joints VideoPose3D keeps from the 32 of the raw recordings.
H36M32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
# Dropped by every lifting paper: corrupted in the original release.
EXCLUDED_SEQUENCES = {("S11", "Directions")}


def action_of(sequence: str) -> str:
    """'Walking 1' -> 'Walking': the action a sequence belongs to (results are per action)."""
    return re.sub(r"\s+\d+$", "", sequence)


@dataclass
class H36M:
    """World-frame 3D poses per (subject, sequence), cameras per subject, optional detections."""

    poses_world: dict[tuple[str, str], np.ndarray]
    cameras: dict[str, list[Camera]]
    detections: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)

    def without_actions(self, actions: tuple[str, ...] | list[str]) -> H36M:
        """The same data without any sequence of `actions` (a held-out split); unknown action
        names are refused, so a typo cannot silently hold nothing out."""
        known = {action_of(seq) for _, seq in self.poses_world}
        unknown = sorted(set(actions) - known)
        if unknown:
            raise ValueError(f"unknown actions {unknown}; known: {sorted(known)}")
        drop = set(actions)
        return H36M(
            poses_world={k: v for k, v in self.poses_world.items() if action_of(k[1]) not in drop},
            cameras=self.cameras,
            detections={k: v for k, v in self.detections.items() if action_of(k[1]) not in drop},
        )

    def sequences(self, subjects: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
        keep = set(subjects)
        return sorted(k for k in self.poses_world if k[0] in keep and k not in EXCLUDED_SEQUENCES)


def load_cameras(path: Path) -> dict[str, list[Camera]]:
    raw = json.loads(Path(path).read_text())
    return {
        subject: [Camera.from_json(cid, cams[cid]) for cid in sorted(cams)]
        for subject, cams in raw.items()
    }


def load_h36m(
    root: Path | str,
    subjects: tuple[str, ...] | list[str] | None = None,
    with_detections: bool = False,
) -> H36M:
    """Load `h36m_3d_17j.npz` + cameras (+ SH detections mapped to H36M-17) from `root`."""
    root = Path(root)
    path3d = root / "h36m_3d_17j.npz"
    if not path3d.is_file():
        raise FileNotFoundError(f"Human3.6M 3D arrays not found: {path3d} (pass --data)")
    wanted = None if subjects is None else set(subjects)
    poses: dict[tuple[str, str], np.ndarray] = {}
    with np.load(path3d) as npz:
        for key in npz.files:
            subject, sequence = key.split("/", 1)
            if wanted is None or subject in wanted:
                poses[(subject, sequence)] = npz[key].astype(np.float32)
    data = H36M(poses_world=poses, cameras=load_cameras(root / "h36m_cameras.json"))
    if with_detections:
        with np.load(root / "h36m_2d_sh.npz") as npz:
            for key in npz.files:
                subject, sequence, cam = key.split("/")
                if (subject, sequence) in poses:
                    data.detections[(subject, sequence, cam)] = mpii16_to_h36m17(npz[key])
    return data


def load_videopose3d(path: Path | str, cameras_json: Path | str) -> H36M:
    """Load VideoPose3D's `data_3d_h36m.npz` (32 or 17 joints, metres, world frame)."""
    with np.load(path, allow_pickle=True) as npz:
        positions = npz["positions_3d"].item()
    poses: dict[tuple[str, str], np.ndarray] = {}
    for subject, actions in positions.items():
        for sequence, arr in actions.items():
            arr = np.asarray(arr, dtype=np.float32)
            if arr.shape[1] == 32:
                arr = arr[:, H36M32_TO_17]
            elif arr.shape[1] != 17:
                raise ValueError(f"{subject}/{sequence}: expected 32 or 17 joints, got {arr.shape}")
            poses[(subject, sequence)] = arr
    return H36M(poses_world=poses, cameras=load_cameras(Path(cameras_json)))
