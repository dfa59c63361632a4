"""Pixel -> normalized screen coordinates (VideoPose3D), the lifter's input convention.

x = u / w * 2 - 1, y = v / w * 2 - h / w: both axes are scaled by the width so the aspect
ratio is kept; w and h are per batch or per pose.
"""

from __future__ import annotations

import numpy as np


def normalize_screen(pixels: np.ndarray, width, height) -> np.ndarray:
    """pixels [N, J, 2]; width, height scalars or [N] arrays (per pose). float32 out."""
    if np.ndim(width) == 0:
        scale = np.float32(2.0 / width)
        offset = np.array([1.0, height / width], dtype=np.float32)
        return pixels * scale - offset
    w = np.asarray(width, dtype=np.float64).reshape(-1, 1, 1)
    h = np.asarray(height, dtype=np.float64).reshape(-1, 1, 1)
    scale = (2.0 / w).astype(np.float32)
    offset = np.concatenate([np.ones_like(w), h / w], axis=2).astype(np.float32)
    return pixels * scale - offset
