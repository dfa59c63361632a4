"""2D-3D training pairs for every subject x camera, kept resident as tensors.

Everything the training loop needs lives in a few big tensors (on the GPU when there is one),
so a batch is one index operation: no per-sample Python in the hot loop.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal, Self

import numpy as np
import torch

from poseaug_training.data.camera import normalize_screen, project_to_pixels
from poseaug_training.data.h36m import H36M, action_of


class TensorRows:
    """Rows held as equal-length tensors (every dataclass field but the name lists), so a batch
    is one index operation and a move to the GPU one call."""

    _NAME_LISTS = frozenset({"actions", "subjects"})

    def __len__(self) -> int:
        return len(next(iter(self._tensors().values())))

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if f.name not in self._NAME_LISTS
        }

    def to(self, device: torch.device | str) -> Self:
        return replace(self, **{k: v.to(device) for k, v in self._tensors().items()})

    def select(self, index: torch.Tensor) -> Self:
        return replace(self, **{k: v[index] for k, v in self._tensors().items()})


@dataclass
class PoseSet(TensorRows):
    """N pairs: root-relative camera-frame 3D, its root, normalized 2D and per-sample camera."""

    pose3d: torch.Tensor  # [N, 17, 3] metres, root-relative, camera frame
    root: torch.Tensor  # [N, 3] root position, camera frame
    kp2d: torch.Tensor  # [N, 17, 2] normalized screen coordinates
    intrinsics: torch.Tensor  # [N, 11] see camera.INTRINSICS_DIM
    action: torch.Tensor  # [N] index into `actions`
    subject: torch.Tensor  # [N] index into `subjects`
    actions: list[str]
    subjects: list[str]

    @staticmethod
    def concat(sets: list[PoseSet]) -> PoseSet:
        """One set from several built over the same subjects (e.g. GT and detected 2D)."""
        first = sets[0]
        for other in sets[1:]:
            if other.actions != first.actions or other.subjects != first.subjects:
                raise ValueError("pose sets to concatenate must share actions and subjects")
        return PoseSet(
            **{k: torch.cat([s._tensors()[k] for s in sets]) for k in first._tensors()},
            actions=first.actions,
            subjects=first.subjects,
        )


def build_pairs(
    data: H36M,
    subjects: tuple[str, ...] | list[str],
    stride: int = 1,
    source: Literal["gt", "sh"] = "gt",
) -> PoseSet:
    """Pairs for `subjects` x all cameras, every `stride`-th frame.

    `source="gt"` projects the ground truth through each camera (with distortion);
    `source="sh"` uses the Stacked Hourglass detections (frames aligned, truncated to the
    shorter of the two where the archive's lengths differ).
    """
    sequences = data.sequences(subjects)
    if not sequences:
        raise ValueError(f"no sequences for subjects {list(subjects)}")
    actions = sorted({action_of(seq) for _, seq in sequences})
    subj_names = sorted({s for s, _ in sequences})
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("pose3d", "root", "kp2d", "intr", "act", "subj")
    }
    for subject, seq in sequences:
        world = data.poses_world[(subject, seq)]
        for cam in data.cameras[subject]:
            frames = world
            det = None
            if source == "sh":
                det = data.detections.get((subject, seq, cam.camera_id))
                if det is None:
                    continue
                n = min(len(det), len(world))
                frames, det = world[:n], det[:n]
            frames = frames[::stride]
            cam3d = cam.world_to_camera(frames)
            intr = np.broadcast_to(cam.intrinsics(), (len(frames), 11))
            if source == "gt":
                pix = project_to_pixels(
                    torch.from_numpy(cam3d).double(),
                    torch.from_numpy(np.ascontiguousarray(intr)).double(),
                )
                kp = normalize_screen(pix, torch.from_numpy(np.ascontiguousarray(intr)).double())
                kp = kp.float().numpy()
            else:
                pix = torch.from_numpy(np.ascontiguousarray(det[::stride])).double()
                kp = normalize_screen(pix, torch.from_numpy(np.ascontiguousarray(intr)).double())
                kp = kp.float().numpy()
            parts["pose3d"].append(cam3d - cam3d[:, :1])
            parts["root"].append(cam3d[:, 0])
            parts["kp2d"].append(kp)
            parts["intr"].append(intr)
            parts["act"].append(np.full(len(frames), actions.index(action_of(seq))))
            parts["subj"].append(np.full(len(frames), subj_names.index(subject)))
    if not parts["pose3d"]:
        raise ValueError(f"no {source} pairs for subjects {list(subjects)}")

    def cat(name: str, dtype: torch.dtype) -> torch.Tensor:
        return torch.from_numpy(
            np.concatenate(parts[name]).astype(np.float32 if dtype == torch.float32 else np.int64)
        )

    return PoseSet(
        pose3d=cat("pose3d", torch.float32),
        root=cat("root", torch.float32),
        kp2d=cat("kp2d", torch.float32),
        intrinsics=cat("intr", torch.float32),
        action=cat("act", torch.int64),
        subject=cat("subj", torch.int64),
        actions=actions,
        subjects=subj_names,
    )
