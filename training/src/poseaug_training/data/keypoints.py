"""2D keypoint layouts mapped to H36M-17 (here: the Stacked Hourglass MPII-16 detections)."""

from __future__ import annotations

import numpy as np

# H36M-17 joint <- MPII-16 joint (spine, index 7, is the mean of MPII pelvis 6 and thorax 7).
MPII_TO_H36M = (6, 2, 1, 0, 3, 4, 5, -1, 7, 8, 9, 13, 14, 15, 12, 11, 10)


def mpii16_to_h36m17(kp: np.ndarray) -> np.ndarray:
    """[..., 16, C] MPII-16 -> [..., 17, C] H36M-17 (pelvis->hip, upper neck->neck/nose,
    head top->head, spine = mean(pelvis, thorax), limbs by name)."""
    if kp.shape[-2] != 16:
        raise ValueError(f"expected 16 MPII joints, got {kp.shape[-2]}")
    idx = np.array([j if j >= 0 else 0 for j in MPII_TO_H36M])
    out = kp[..., idx, :].copy()
    out[..., 7, :] = 0.5 * (kp[..., 6, :] + kp[..., 7, :])
    return out
