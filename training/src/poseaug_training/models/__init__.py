"""2D-to-3D lifting estimators (17 joints in, 17 joints out with the root fixed at the origin)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from poseaug_training.models.ray_lifter import RayLifter
from poseaug_training.models.simple_baseline import SimpleBaseline
from poseaug_training.models.temporal_ray_lifter import TemporalRayLifter
from poseaug_training.models.vpose import VPose1f

ESTIMATORS = {
    "vpose": VPose1f,
    "mlp": SimpleBaseline,
    "vpose_rays": RayLifter,
    "vpose_rays_temporal": TemporalRayLifter,
}
TEMPORAL = ("vpose_rays_temporal",)


def estimator_options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor options a training config (TrainConfig.to_dict()) gives its estimator."""
    options = {k: cfg[k] for k in ("channels", "blocks", "dropout")}
    if cfg["estimator"] in TEMPORAL:
        options.update(filter_widths=tuple(cfg["filter_widths"]), anchor=cfg["anchor"])
    return options


def build_estimator(name: str, **kwargs: object) -> nn.Module:
    """Estimator by name (see ESTIMATORS) with its keyword options."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; choose from {sorted(ESTIMATORS)}")
    return ESTIMATORS[name](**kwargs)
