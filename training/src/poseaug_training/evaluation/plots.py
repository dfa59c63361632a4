"""Pictures a person would rather see than read: error per joint, source vs augmented poses,
tracks over time, how long a detector's mistakes last."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from poseaug_training.data.detector_noise import (
    FIT_LAGS,
    DetectorErrorModel,
    inlier_correlation,
    lag_sums,
    person_size,
)
from poseaug_training.skeleton import JOINT_NAMES, LEFT_JOINTS, PARENTS


def _save(fig, path: Path, dpi: int) -> None:
    """Write a finished figure to `path` (its folder made) and free it."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def plot_per_joint_error(per_joint: dict[str, list[float]], path: Path, title: str) -> None:
    """Grouped bars: mean error of each joint (mm) for each input source."""
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / max(1, len(per_joint))
    x = np.arange(len(JOINT_NAMES))
    for i, (label, errs) in enumerate(per_joint.items()):
        ax.bar(x + i * width, errs, width, label=label)
    ax.set_xticks(x + width * (len(per_joint) - 1) / 2, JOINT_NAMES, rotation=45, ha="right")
    ax.set_ylabel("mean joint error (mm)")
    ax.set_title(title)
    ax.legend()
    _save(fig, path, dpi=100)


def draw_skeleton(
    ax, pose: np.ndarray, color: str, alpha: float = 1.0, label: str | None = None
) -> None:
    """3D skeleton in camera axes (x right, y down, z forward) shown upright."""
    for j, p in enumerate(PARENTS):
        if p < 0:
            continue
        c = color if j not in LEFT_JOINTS else _darker(color)
        ax.plot(
            [pose[p, 0], pose[j, 0]],
            [pose[p, 2], pose[j, 2]],
            [-pose[p, 1], -pose[j, 1]],
            color=c,
            alpha=alpha,
            lw=2,
            label=label if j == 1 else None,
        )


def _darker(color: str) -> str:
    return {
        "tab:blue": "navy",
        "tab:red": "darkred",
        "tab:green": "darkgreen",
        "tab:orange": "saddlebrown",
    }.get(color, color)


def plot_augmented_pairs(
    source: np.ndarray, augmented: dict[str, np.ndarray], path: Path, title: str = ""
) -> None:
    """Rows: source poses; columns: the source next to its BA, BL, RT (or other) augmentations.

    Poses are root-relative [R, 17, 3] (augmented ones are re-centred on their root)."""
    rows = source.shape[0]
    cols = len(augmented)
    fig = plt.figure(figsize=(3.2 * cols, 3.2 * rows))
    for r in range(rows):
        for c, (name, poses) in enumerate(augmented.items()):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1, projection="3d")
            draw_skeleton(ax, source[r], "tab:blue", 0.5, "source")
            draw_skeleton(ax, poses[r] - poses[r, :1], "tab:red", 1.0, name)
            lim = 1.0
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_zlim(-lim, lim)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_zticks([])
            ax.view_init(elev=10, azim=-70)
            if r == 0:
                ax.set_title(name)
    if title:
        fig.suptitle(title)
    _save(fig, path, dpi=90)


def plot_error_by_fov(curves: dict[str, dict[str, float]], path: Path, title: str) -> None:
    """MPJPE per horizontal field-of-view bin, one line per model (and camera given or not)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, bins in curves.items():
        centres = [sum(float(v) for v in k.split("-")) / 2 for k in bins]
        ax.plot(
            centres,
            list(bins.values()),
            marker="o",
            label=label,
            linestyle="--" if "no camera" in label else "-",
        )
    ax.set_xlabel("horizontal field of view (degrees)")
    ax.set_ylabel("MPJPE (mm)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path, dpi=110)


def plot_track_over_time(
    target: np.ndarray, predictions: dict[str, np.ndarray], joint: int, path: Path, title: str
) -> None:
    """One joint of one track over time: ground truth and each model, x / y / z (root-relative,
    mm) in three rows, where a single-frame lifter's jitter and a temporal one's smoothness
    show at a glance."""
    frames = np.arange(len(target))
    fig, axes = plt.subplots(3, 1, figsize=(11, 7), sharex=True)
    for axis, ax in enumerate(axes):
        ax.plot(frames, target[:, joint, axis] * 1000, color="black", lw=2, label="ground truth")
        for k, (label, pred) in enumerate(predictions.items()):
            ax.plot(frames, pred[:, joint, axis] * 1000, color=f"C{k}", lw=1.1, label=label)
        ax.set_ylabel(f"{'xyz'[axis]} (mm)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=len(predictions) + 1, loc="upper right")
    axes[-1].set_xlabel("frame (50 fps)")
    fig.suptitle(f"{title}: {JOINT_NAMES[joint]}, root-relative, camera frame")
    _save(fig, path, dpi=100)


def plot_detector_error_over_time(model: DetectorErrorModel, path: Path, tracks: int = 300) -> None:
    """How long a detector's mistakes last: the real detections' inlier error correlation k
    frames apart (what the model was fitted to), the model, `apply_track`'s replay of it, and
    independent per-frame error (what a temporal lifter could average away)."""
    import torch

    lags = np.arange(0, 49)
    frames = int(lags[-1]) + 1
    # A person standing still, 17 joints spread over a 1 x 2 box (the error is in units of
    # the person's size, so the layout hardly matters).
    joints = np.stack([np.linspace(0, 1, 17) ** 2, np.linspace(0, 2, 17)], -1)
    gt = torch.from_numpy(np.broadcast_to(joints, (tracks, frames, 17, 2)).copy())
    det = model.apply_track(gt, gen=torch.Generator().manual_seed(0))
    size = float(person_size(gt[0, :1])[0])
    err = ((det - gt) / size).numpy() - np.asarray(model.bias)
    replayed = np.r_[1.0, inlier_correlation(*lag_sums(err, tuple(int(k) for k in lags[1:])))]
    fig, ax = plt.subplots(figsize=(7, 4))
    if model.measured_corr is not None:
        ax.plot(FIT_LAGS, model.measured_corr, "ko", label="real detections (fitted to)")
    ax.plot(lags, model.corr_over_time(lags), "C0-", label="model")
    ax.plot(lags, replayed, "C1--", label="replayed on tracks (apply_track)")
    ax.plot(lags, (lags == 0).astype(float), "C3:", label="independent per frame")
    ax.axvspan(0, 13, color="0.9", label="half a 27-frame window")
    ax.set_xlabel("frames apart (50 fps)")
    ax.set_ylabel("correlation of the 2D error")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(
        f"Detector error over time: outliers stay {model.outlier_stay or 0:.2f}, "
        f"swaps {model.swap_stay or 0:.2f} a frame"
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path, dpi=100)
