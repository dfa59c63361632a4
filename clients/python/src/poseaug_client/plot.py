"""Pictures of lifted and augmented poses for `--plot` (matplotlib: the [plot] extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from poseaug_client.files import CLIError
from poseaug_client.formats import KEYPOINT_EDGES

H36M_EDGES = KEYPOINT_EDGES["h36m17"]
MAX_POSES = 3


def require_matplotlib() -> Any:
    """pyplot with a file-only backend, or a one-line hint on how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install 'poseaug-client[plot]'") from None
    return plt


def _draw_3d(
    ax: Any, pose: np.ndarray, color: str, label: str | None = None, style: str = "-"
) -> None:
    """Camera frame (x right, y down, z forward) drawn upright: axes (x, z, -y)."""
    x, y, z = pose[:, 0], pose[:, 2], -pose[:, 1]
    for j, p in H36M_EDGES:
        ax.plot([x[j], x[p]], [y[j], y[p]], [z[j], z[p]], color=color, lw=2, ls=style)
    ax.scatter(x, y, z, color=color, s=6, label=label)


def _square_3d(ax: Any, poses: list[np.ndarray]) -> None:
    points = np.concatenate(poses)[:, [0, 2, 1]] * np.array([1, 1, -1])
    centre = (points.max(0) + points.min(0)) / 2
    radius = max(float((points.max(0) - points.min(0)).max()) / 2, 0.1)
    for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre, strict=True):
        setter(c - radius, c + radius)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("z (m)")
    ax.set_zlabel("-y (m)")


def _draw_2d(ax: Any, points: np.ndarray, edges: list[tuple[int, int]], color: str) -> None:
    for a, b in edges:
        ax.plot(points[[a, b], 0], points[[a, b], 1], color=color, lw=2)
    ax.scatter(points[:, 0], points[:, 1], color=color, s=6)
    ax.set_aspect("equal")
    if not ax.yaxis_inverted():
        ax.invert_yaxis()


def plot_lift(path: Path, keypoints: np.ndarray, fmt: str, poses3d: np.ndarray) -> None:
    """Input 2D keypoints (top) and lifted 3D poses (bottom) of the first few poses."""
    plt = require_matplotlib()
    n = min(MAX_POSES, len(poses3d))
    fig = plt.figure(figsize=(4 * n, 8))
    for i in range(n):
        ax2 = fig.add_subplot(2, n, i + 1)
        _draw_2d(ax2, keypoints[i], KEYPOINT_EDGES.get(fmt, []), "tab:blue")
        ax2.set_title(f"pose {i}: input 2D ({fmt}, px)")
        ax3 = fig.add_subplot(2, n, n + i + 1, projection="3d")
        _draw_3d(ax3, poses3d[i], "tab:red")
        _square_3d(ax3, [poses3d[i]])
        ax3.set_title(f"pose {i}: lifted 3D")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


STRIP_FRAMES = 8
# Joints whose motion the track plot draws over time (H36M-17 indices).
TRACKED_JOINTS = {"right wrist": 16, "left wrist": 13, "right ankle": 3, "left ankle": 6}


def plot_track(path: Path, poses3d: np.ndarray, track: object) -> None:
    """One track's lifted 3D over time: a strip of skeletons at evenly spaced frames (top) and
    the root-relative depth and height of wrists and ankles frame by frame (bottom), where
    jitter and a missed limb show at a glance."""
    plt = require_matplotlib()
    frames = len(poses3d)
    picks = np.unique(np.linspace(0, frames - 1, min(STRIP_FRAMES, frames)).round().astype(int))
    fig = plt.figure(figsize=(2.6 * len(picks), 7.5))
    grid = fig.add_gridspec(2, len(picks), height_ratios=[1.3, 1])
    for col, f in enumerate(picks):
        ax = fig.add_subplot(grid[0, col], projection="3d")
        _draw_3d(ax, poses3d[f], "tab:red")
        _square_3d(ax, [poses3d[f]])
        ax.set_title(f"frame {f}", fontsize=9)
        ax.set_xticklabels([])
        ax.set_yticklabels([])
        ax.set_zticklabels([])
    t = np.arange(frames)
    for col, (axis, label) in enumerate(((2, "depth z (m)"), (1, "height -y (m)"))):
        ax = fig.add_subplot(grid[1, col * len(picks) // 2 : (col + 1) * len(picks) // 2])
        sign = -1.0 if axis == 1 else 1.0
        for k, (name, j) in enumerate(TRACKED_JOINTS.items()):
            ax.plot(t, sign * poses3d[:, j, axis], color=f"C{k}", lw=1.2, label=name)
        ax.set_xlabel("frame")
        ax.set_ylabel(f"{label}, root-relative")
        ax.grid(alpha=0.3)
        if col == 0:
            ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"track {track}: {frames} frames lifted", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_augment(
    path: Path, source: np.ndarray, augmented: np.ndarray, keypoints: np.ndarray, count: int
) -> None:
    """Per source pose (columns): source vs augmented skeletons, root-aligned, in 3D (top),
    and the augmented poses' 2D projections (bottom)."""
    plt = require_matplotlib()
    n = min(MAX_POSES, len(source))
    fig = plt.figure(figsize=(4 * n, 8))
    for i in range(n):
        ax3 = fig.add_subplot(2, n, i + 1, projection="3d")
        src = source[i] - source[i, :1]
        rows = augmented[i * count : (i + 1) * count]
        aligned = [pose - pose[:1] for pose in rows]
        _draw_3d(ax3, src, "black", "source", style="--")
        for k, pose in enumerate(aligned):
            _draw_3d(ax3, pose, f"C{k % 10}", "augmented" if k == 0 else None)
        _square_3d(ax3, [src, *aligned])
        ax3.set_title(f"source {i} vs {count} augmented")
        ax3.legend(loc="upper left", fontsize=7)
        ax2 = fig.add_subplot(2, n, n + i + 1)
        for k, points in enumerate(keypoints[i * count : (i + 1) * count]):
            _draw_2d(ax2, points, H36M_EDGES, f"C{k % 10}")
        ax2.set_title(f"source {i}: augmented 2D (px)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
