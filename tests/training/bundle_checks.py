"""What the training tests check of a bundle read back as a checkpoint (train/bundle_init.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from poseaug_training.train.bundle_init import checkpoint_from_bundle


def assert_bundle_gives_back(bundle: Path, state: dict[str, Any]) -> dict[str, Any]:
    """The bundle's weights equal the run's: the lifter's to float16 rounding (its large
    matrices are stored so), the augmentor's exactly. Returns the restored checkpoint."""
    restored = checkpoint_from_bundle(bundle)
    parts = [(state["estimator"], restored["estimator"], 1e-3, 1e-4)]
    if "augmentor" in state["extra"]:
        parts.append((state["extra"]["augmentor"], restored["extra"]["augmentor"], 0, 0))
    for want, got, rtol, atol in parts:
        assert set(got) == set(want)
        for key, value in want.items():
            if not key.endswith("num_batches_tracked"):  # a count no bundle keeps
                np.testing.assert_allclose(got[key], value, rtol=rtol, atol=atol, err_msg=key)
    return restored
