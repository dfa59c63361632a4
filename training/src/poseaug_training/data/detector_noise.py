"""A 2D detector's error, fitted to real Stacked Hourglass detections and replayed on clean 2D.

Projected ground truth is cleaner than any detector: a lifter trained on it alone breaks on
real keypoints. This model is fitted to the Stacked Hourglass detections of Human3.6M's
training subjects against their projected ground truth and applied to ground-truth and
augmented 2D during training (and to the unseen-cameras test). Errors are measured in units of
the person's 2D size (the longer side of the joints' bounding box), since a top-down detector
sees every person at the same crop size. Per joint it has:
- a left/right swap rate per limb pair (the detector confuses sides);
- a gross-outlier rate and the log-normal size of those outliers (uniform direction);
- for the rest: a bias and a 2x2 covariance, with Student-t tails (heavier than a Gaussian).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from poseaug_training.data.camera import project_to_pixels
from poseaug_training.data.h36m import H36M
from poseaug_training.skeleton import LEFT_JOINTS, NUM_JOINTS, RIGHT_JOINTS

SWAP_PAIRS: tuple[tuple[int, int], ...] = tuple(zip(RIGHT_JOINTS, LEFT_JOINTS, strict=True))
# An error beyond this share of the person's size is a gross outlier, not detector spread.
OUTLIER_RADIUS = 0.15
# Student-t degrees of freedom of the inlier spread (4: clearly heavier tails than Gaussian,
# finite variance).
INLIER_DOF = 4


def person_size(points: torch.Tensor) -> torch.Tensor:
    """[N]: the longer side of the joints' 2D bounding box ([N, J, 2] in, same units out)."""
    return (points.amax(1) - points.amin(1)).amax(-1)


def _swapped(det: np.ndarray, gt: np.ndarray, size: np.ndarray) -> np.ndarray:
    """[N, P] bool: the detector put pair p's two joints on each other's side."""
    out = np.zeros((len(det), len(SWAP_PAIRS)), dtype=bool)
    for p, (a, b) in enumerate(SWAP_PAIRS):
        same = np.linalg.norm(det[:, a] - gt[:, a], axis=-1) + np.linalg.norm(
            det[:, b] - gt[:, b], axis=-1
        )
        cross = np.linalg.norm(det[:, a] - gt[:, b], axis=-1) + np.linalg.norm(
            det[:, b] - gt[:, a], axis=-1
        )
        out[:, p] = (cross < 0.5 * same) & (same > 0.1 * size)
    return out


@dataclass
class DetectorErrorModel:
    bias: list[list[float]]  # [17][2] mean inlier error, share of person size
    cov: list[list[list[float]]]  # [17][2][2] inlier covariance
    outlier_rate: list[float]  # [17]
    outlier_log_mean: list[float]  # [17] log of the outlier distance (share of person size)
    outlier_log_std: list[float]  # [17]
    swap_rate: list[float]  # [len(SWAP_PAIRS)]
    frames: int  # poses fitted on

    @classmethod
    def fit(cls, gt: np.ndarray, det: np.ndarray) -> DetectorErrorModel:
        """Fit to ground-truth pixels and detections [N, 17, 2] of the same poses."""
        gt, det = gt.astype(np.float64), det.astype(np.float64).copy()
        size = person_size(torch.from_numpy(gt)).numpy()
        swaps = _swapped(det, gt, size)
        for p, (a, b) in enumerate(SWAP_PAIRS):  # un-swap before measuring the spread
            rows = swaps[:, p]
            det[rows, a], det[rows, b] = det[rows, b].copy(), det[rows, a].copy()
        err = (det - gt) / size[:, None, None]
        dist = np.linalg.norm(err - np.median(err, axis=0), axis=-1)
        outlier = dist > OUTLIER_RADIUS
        bias, cov, log_mean, log_std = [], [], [], []
        for j in range(NUM_JOINTS):
            inl = err[~outlier[:, j], j]
            bias.append(inl.mean(0).tolist())
            cov.append(np.cov(inl.T).tolist())
            far = np.log(np.maximum(np.linalg.norm(err[outlier[:, j], j], axis=-1), 1e-6))
            log_mean.append(float(far.mean()) if len(far) > 1 else float(np.log(0.3)))
            log_std.append(float(far.std()) if len(far) > 1 else 0.3)
        return cls(
            bias=bias,
            cov=cov,
            outlier_rate=outlier.mean(0).tolist(),
            outlier_log_mean=log_mean,
            outlier_log_std=log_std,
            swap_rate=swaps.mean(0).tolist(),
            frames=len(gt),
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DetectorErrorModel:
        return cls(**d)

    def apply(
        self,
        points: torch.Tensor,
        size: torch.Tensor | None = None,
        gen: torch.Generator | None = None,
        strength: torch.Tensor | float = 1.0,
    ) -> torch.Tensor:
        """Clean 2D [N, 17, 2] (any units; `size` [N] in the same units, default: the points'
        own bounding box) -> detector-like 2D. `strength` [N] or scalar scales the errors
        (0 leaves a pose clean)."""
        n, dev, dt = len(points), points.device, points.dtype
        size = person_size(points) if size is None else size
        out = points.clone()
        strength = torch.as_tensor(strength, dtype=dt, device=dev).expand(n)
        for p, (a, b) in enumerate(SWAP_PAIRS):
            rows = (torch.rand(n, generator=gen, device=dev) < self.swap_rate[p]) & (strength > 0)
            out[rows, a], out[rows, b] = points[rows, b], points[rows, a]
        chol = torch.linalg.cholesky(
            torch.tensor(self.cov, dtype=torch.float64) + 1e-9 * torch.eye(2, dtype=torch.float64)
        ).to(dev, dt)
        z = torch.randn(n, NUM_JOINTS, 2, generator=gen, device=dev, dtype=dt)
        dof = INLIER_DOF  # chi-square as a sum of squared normals, drawn from `gen`
        chi2 = torch.randn(n, NUM_JOINTS, dof, generator=gen, device=dev, dtype=dt).square().sum(-1)
        t = z * torch.sqrt((dof - 2) / chi2.clamp_min(1e-6))[..., None]  # unit-variance Student-t
        err = torch.einsum("jab,njb->nja", chol, t) + torch.tensor(self.bias, dtype=dt, device=dev)
        far = torch.rand(n, NUM_JOINTS, generator=gen, device=dev) < torch.tensor(
            self.outlier_rate, dtype=dt, device=dev
        )
        radius = torch.exp(
            torch.tensor(self.outlier_log_mean, dtype=dt, device=dev)
            + torch.tensor(self.outlier_log_std, dtype=dt, device=dev)
            * torch.randn(n, NUM_JOINTS, generator=gen, device=dev, dtype=dt)
        )
        angle = torch.rand(n, NUM_JOINTS, generator=gen, device=dev, dtype=dt) * 2 * torch.pi
        jump = torch.stack([torch.cos(angle), torch.sin(angle)], -1) * radius[..., None]
        err = torch.where(far[..., None], jump, err)
        return out + err * (size * strength)[:, None, None]


def fit_to_h36m(data: H36M, subjects: list[str], stride: int = 5) -> DetectorErrorModel:
    """Fit to the Stacked Hourglass detections of `subjects` (every `stride`-th frame, all
    cameras) against the ground truth projected through the same calibrated cameras."""
    gts, dets = [], []
    for subject, seq in data.sequences(subjects):
        world = data.poses_world[(subject, seq)]
        for cam in data.cameras[subject]:
            det = data.detections.get((subject, seq, cam.camera_id))
            if det is None:
                continue
            n = min(len(det), len(world))
            cam3d = torch.from_numpy(cam.world_to_camera(world[:n:stride])).double()
            intr = torch.from_numpy(cam.intrinsics()).double().expand(len(cam3d), -1)
            gts.append(project_to_pixels(cam3d, intr).numpy())
            dets.append(det[:n:stride])
    if not gts:
        raise ValueError(f"no detections for subjects {subjects} to fit the detector error to")
    return DetectorErrorModel.fit(np.concatenate(gts), np.concatenate(dets))
