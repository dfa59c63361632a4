"""2D-to-3D lifting estimators (17 joints in, 17 joints out with the root fixed at the origin)."""

from __future__ import annotations

from torch import nn

from poseaug_training.models.ray_lifter import RayLifter
from poseaug_training.models.simple_baseline import SimpleBaseline
from poseaug_training.models.vpose import VPose1f

ESTIMATORS = {"vpose": VPose1f, "mlp": SimpleBaseline, "vpose_rays": RayLifter}


def build_estimator(name: str, **kwargs: object) -> nn.Module:
    """Estimator by name ('vpose' or 'mlp') with its keyword options."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; choose from {sorted(ESTIMATORS)}")
    return ESTIMATORS[name](**kwargs)
