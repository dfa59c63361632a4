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

A detector's error is not drawn afresh each frame: it sees nearly the same image in the next
frame and makes nearly the same mistake (on the training subjects' Stacked Hourglass
detections the inlier error of frames 16 apart still correlates about 0.75, and an outlier is
still there a frame later about 9 times in 10). A temporal lifter trained or tested on
independent per-frame error learns to average away noise that real footage does not let it
average away, so `apply_track` replays tracks with the fitted correlation over time:
a steady part per track plus an AR(1) part for the inlier error, and outliers and side swaps
as episodes that last (two-state Markov chains with the fitted rate and persistence).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

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
# Frame lags (50 fps) the inlier error's correlation over time is fitted on.
FIT_LAGS = (1, 2, 4, 8, 16, 32)


def person_size(points: torch.Tensor) -> torch.Tensor:
    """[N]: the longer side of the joints' 2D bounding box ([N, J, 2] in, same units out)."""
    return (points.amax(1) - points.amin(1)).amax(-1)


def _errors(gt: np.ndarray, det: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Detections [N, 17, 2] against ground-truth pixels: the error [N, 17, 2] in units of the
    person's size with swapped sides put back, and which pairs were swapped [N, P]."""
    gt, det = gt.astype(np.float64), det.astype(np.float64).copy()
    size = person_size(torch.from_numpy(gt)).numpy()
    swaps = _swapped(det, gt, size)
    for p, (a, b) in enumerate(SWAP_PAIRS):  # un-swap before measuring the spread
        rows = swaps[:, p]
        det[rows, a], det[rows, b] = det[rows, b].copy(), det[rows, a].copy()
    return (det - gt) / size[:, None, None], swaps


def correlation_over_time(steady, ar, lags):
    """The inlier error's correlation between frames `lags` apart: steady + (1 - steady) *
    ar**lags (broadcast over arrays of parameters and lags; 1 at lag 0)."""
    return steady + (1 - steady) * ar**lags


def inlier_correlation(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Pooled correlation from summed products of errors k frames apart (`num`) and their
    mean squares (`den`)."""
    return num / np.maximum(den, 1e-12)


def lag_sums(err: np.ndarray, lags: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Sums for `inlier_correlation` of tracks' centred error [..., T, 17, 2] (person-size
    units) at `lags`, over the joints that are inliers in both frames."""
    inlier = np.linalg.norm(err, axis=-1) <= OUTLIER_RADIUS
    num, den = np.zeros(len(lags)), np.zeros(len(lags))
    for i, lag in enumerate(lags):
        pair = inlier[..., :-lag, :] & inlier[..., lag:, :]
        a, b = err[..., :-lag, :, :][pair], err[..., lag:, :, :][pair]
        num[i] = (a * b).sum()
        den[i] = 0.5 * ((a * a).sum() + (b * b).sum())
    return num, den


def _stay(flags: list[np.ndarray]) -> float | None:
    """P(flag at t + 1 | flag at t), pooled over tracks [T, K] and columns."""
    both = sum(int((f[1:] & f[:-1]).sum()) for f in flags)
    on = sum(int(f[:-1].sum()) for f in flags)
    return both / on if on else None


def _episodes(
    n: int,
    t: int,
    rate: torch.Tensor,
    stay: float | None,
    gen: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """[n, t, K] bool: a two-state Markov chain per column with stationary `rate` [K] that
    stays on from one frame to the next with probability `stay` (None: independent frames)."""
    keep = rate if stay is None else torch.full_like(rate, stay)
    enter = rate * (1 - keep) / (1 - rate).clamp_min(1e-6)
    state = torch.rand(n, len(rate), generator=gen, device=device) < rate
    states = [state]
    for _ in range(t - 1):
        u = torch.rand(n, len(rate), generator=gen, device=device)
        state = torch.where(state, u < keep, u < enter)
        states.append(state)
    return torch.stack(states, 1)


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
    # Over time (50 fps; see module docstring). The inlier error of frames k apart correlates
    # steady + (1 - steady) * ar**k; an outlier (swap) is still there a frame later with
    # probability outlier_stay (swap_stay). The defaults are independent frames (models
    # fitted before these fields existed).
    steady: float = 0.0
    ar: float = 0.0
    outlier_stay: float | None = None
    swap_stay: float | None = None
    measured_corr: list[float] | None = None  # the real inlier correlation at FIT_LAGS

    def corr_over_time(self, lags: np.ndarray) -> np.ndarray:
        """The modelled inlier error correlation between frames `lags` apart."""
        return correlation_over_time(self.steady, self.ar, np.asarray(lags, dtype=np.float64))

    @classmethod
    def fit(cls, gt: np.ndarray, det: np.ndarray) -> DetectorErrorModel:
        """Fit to ground-truth pixels and detections [N, 17, 2] of the same poses (each frame
        on its own; `fit_over_time` adds the correlation between frames)."""
        err, swaps = _errors(gt, det)
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
        chol = self._inlier_chol(dev, dt)
        z = torch.randn(n, NUM_JOINTS, 2, generator=gen, device=dev, dtype=dt)
        dof = INLIER_DOF  # chi-square as a sum of squared normals, drawn from `gen`
        chi2 = torch.randn(n, NUM_JOINTS, dof, generator=gen, device=dev, dtype=dt).square().sum(-1)
        t = z * torch.sqrt((dof - 2) / chi2.clamp_min(1e-6))[..., None]  # unit-variance Student-t
        err = torch.einsum("jab,njb->nja", chol, t) + torch.tensor(self.bias, dtype=dt, device=dev)
        far = torch.rand(n, NUM_JOINTS, generator=gen, device=dev) < torch.tensor(
            self.outlier_rate, dtype=dt, device=dev
        )
        jump = self._outlier_jumps((n, NUM_JOINTS), gen, dev, dt)
        err = torch.where(far[..., None], jump, err)
        return out + err * (size * strength)[:, None, None]

    def _inlier_chol(self, dev: torch.device, dt: torch.dtype) -> torch.Tensor:
        """[17, 2, 2] Cholesky factors of the inlier covariances."""
        return torch.linalg.cholesky(
            torch.tensor(self.cov, dtype=torch.float64) + 1e-9 * torch.eye(2, dtype=torch.float64)
        ).to(dev, dt)

    def _outlier_jumps(
        self, shape: tuple[int, ...], gen: torch.Generator | None, dev: torch.device, dt
    ) -> torch.Tensor:
        """[*shape, 2] outlier errors (share of person size; `shape` ends with the joints):
        log-normal distance, uniform direction."""
        radius = torch.exp(
            torch.tensor(self.outlier_log_mean, dtype=dt, device=dev)
            + torch.tensor(self.outlier_log_std, dtype=dt, device=dev)
            * torch.randn(shape, generator=gen, device=dev, dtype=dt)
        )
        angle = torch.rand(shape, generator=gen, device=dev, dtype=dt) * 2 * torch.pi
        return torch.stack([torch.cos(angle), torch.sin(angle)], -1) * radius[..., None]

    def apply_track(
        self,
        points: torch.Tensor,
        size: torch.Tensor | None = None,
        gen: torch.Generator | None = None,
        strength: torch.Tensor | float = 1.0,
    ) -> torch.Tensor:
        """Clean 2D tracks [N, T, 17, 2] (consecutive frames; `size` [N, T], default each
        frame's bounding box) -> detector-like 2D whose error persists over time as fitted
        (module docstring). Each frame's error has `apply`'s distribution; `strength` [N] or
        scalar scales a track's errors. A track keeps one tail scale per joint and each
        outlier stays where it went."""
        n, t = points.shape[:2]
        dev, dt = points.device, points.dtype
        flat = points.reshape(n * t, NUM_JOINTS, 2)
        size = person_size(flat).reshape(n, t) if size is None else size
        strength = torch.as_tensor(strength, dtype=dt, device=dev).expand(n)
        out = points.clone()
        swap_rate = torch.tensor(self.swap_rate, dtype=dt, device=dev)
        swapped = _episodes(n, t, swap_rate, self.swap_stay, gen, dev)
        swapped &= (strength > 0)[:, None, None]
        for p, (a, b) in enumerate(SWAP_PAIRS):
            rows = swapped[..., p, None]
            out[..., a, :] = torch.where(rows, points[..., b, :], points[..., a, :])
            out[..., b, :] = torch.where(rows, points[..., a, :], points[..., b, :])
        # Unit Gaussians correlated steady + (1 - steady) * ar**k over k frames.
        shape = (n, NUM_JOINTS, 2)
        x = torch.randn(shape, generator=gen, device=dev, dtype=dt)
        xs = [x]
        for _ in range(t - 1):
            fresh = torch.randn(shape, generator=gen, device=dev, dtype=dt)
            x = self.ar * x + (1 - self.ar**2) ** 0.5 * fresh
            xs.append(x)
        steady = torch.randn(n, 1, NUM_JOINTS, 2, generator=gen, device=dev, dtype=dt)
        z = self.steady**0.5 * steady + (1 - self.steady) ** 0.5 * torch.stack(xs, 1)
        dof = INLIER_DOF
        chi2 = torch.randn(n, 1, NUM_JOINTS, dof, generator=gen, device=dev, dtype=dt)
        tails = torch.sqrt((dof - 2) / chi2.square().sum(-1).clamp_min(1e-6))
        chol = self._inlier_chol(dev, dt)
        err = torch.einsum("jab,ntjb->ntja", chol, z * tails[..., None])
        err = err + torch.tensor(self.bias, dtype=dt, device=dev)
        outlier_rate = torch.tensor(self.outlier_rate, dtype=dt, device=dev)
        far = _episodes(n, t, outlier_rate, self.outlier_stay, gen, dev)
        jump = self._outlier_jumps((n, 1, NUM_JOINTS), gen, dev, dt)
        err = torch.where(far[..., None], jump, err)
        return out + err * (size * strength[:, None])[..., None, None]

    def fit_over_time(self, tracks: list[tuple[np.ndarray, np.ndarray]]) -> DetectorErrorModel:
        """This model with its correlation over time fitted to whole tracks: (ground-truth
        pixels, detections) [T, 17, 2] pairs of consecutive 50 fps frames."""
        bias = np.asarray(self.bias)
        num = np.zeros(len(FIT_LAGS))
        den = np.zeros(len(FIT_LAGS))
        outliers, swaps = [], []
        for gt, det in tracks:
            err, swapped = _errors(gt, det)
            centred = err - bias
            n, d = lag_sums(centred, FIT_LAGS)
            num += n
            den += d
            outliers.append(np.linalg.norm(centred, axis=-1) > OUTLIER_RADIUS)
            swaps.append(swapped)
        corr = inlier_correlation(num, den)
        lags = np.asarray(FIT_LAGS, dtype=np.float64)
        grid_steady = np.linspace(0.0, 0.99, 100)
        grid_ar = np.linspace(0.0, 0.995, 200)
        model = correlation_over_time(grid_steady[:, None, None], grid_ar[None, :, None], lags)
        loss = ((model - corr) ** 2).sum(-1)
        i, k = np.unravel_index(int(loss.argmin()), loss.shape)
        return replace(
            self,
            steady=float(grid_steady[i]),
            ar=float(grid_ar[k]),
            outlier_stay=_stay(outliers),
            swap_stay=_stay(swaps),
            measured_corr=corr.tolist(),
        )


def fit_to_h36m(data: H36M, subjects: list[str], stride: int = 5) -> DetectorErrorModel:
    """Fit to the Stacked Hourglass detections of `subjects` against the ground truth projected
    through the same calibrated cameras: each frame's error on every `stride`-th frame, its
    correlation over time on every frame of every sequence and camera."""
    gts, dets, tracks = [], [], []
    for subject, seq in data.sequences(subjects):
        world = data.poses_world[(subject, seq)]
        for cam in data.cameras[subject]:
            det = data.detections.get((subject, seq, cam.camera_id))
            if det is None:
                continue
            n = min(len(det), len(world))
            cam3d = torch.from_numpy(cam.world_to_camera(world[:n])).double()
            intr = torch.from_numpy(cam.intrinsics()).double().expand(len(cam3d), -1)
            gt = project_to_pixels(cam3d, intr).numpy()
            gts.append(gt[::stride])
            dets.append(det[:n:stride])
            tracks.append((gt.astype(np.float32), det[:n]))
    if not gts:
        raise ValueError(f"no detections for subjects {subjects} to fit the detector error to")
    return DetectorErrorModel.fit(np.concatenate(gts), np.concatenate(dets)).fit_over_time(tracks)
