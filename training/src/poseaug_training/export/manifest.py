"""manifest.json: what a bundle is, how it was trained and how well it does.

Format 1: the lifter takes normalized screen coordinates [N, 17, 2]. Format 2: the camera-aware
lifter takes camera rays and visibility [N, 17, 3]. Format 3: the temporal camera-aware lifter
takes windows [N, frames, 17, 3] of a track and answers for `lifter.temporal.anchor_frame`;
`lifter.step` and `lifter.whole_track` (optional) declare its other forms (models/README.md).
Servers that know only older formats refuse a newer bundle rather than feed it the wrong input;
servers that do not know the forms serve the window model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from poseaug_training.skeleton import JOINT_NAMES, PARENTS

FORMAT_VERSION = 1
RAYS_FORMAT_VERSION = 2
TEMPORAL_FORMAT_VERSION = 3  # camera rays in windows of a track's frames
# How each lifter generation wants its input; the server prepares what the manifest declares.
LIFTER_INPUTS: dict[str, dict[str, Any]] = {
    "videopose3d_screen": {
        "format_version": FORMAT_VERSION,
        "normalization_formula": "x = u / w * 2 - 1, y = v / w * 2 - h / w",
        "input_channels": ["x", "y"],
    },
    "camera_rays": {
        "format_version": RAYS_FORMAT_VERSION,
        "normalization_formula": "x = (u - cx) / fx, y = (v - cy) / fy of undistorted pixels; "
        "visible = 1 seen, 0 missing (x = y = 0)",
        "input_channels": ["x", "y", "visible"],
    },
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entries(bundle: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    return {
        n: {"sha256": sha256_file(bundle / n), "bytes": (bundle / n).stat().st_size} for n in names
    }


def flat_metrics(evaluations: dict[str, dict]) -> dict[str, float]:
    """{"h36m": {"gt": {...}}} -> {"h36m.gt2d.mpjpe_mm": x, ...} for GetModelInfo."""
    out: dict[str, float] = {}
    for prefix, results in evaluations.items():
        for source, r in results.items():
            name = f"{source}2d" if source in ("gt", "sh", "novel") else source
            for metric in ("mpjpe_mm", "pa_mpjpe_mm", "pck150", "p90_mm", "accel_mm", "mpjve_mm"):
                if metric in r:
                    out[f"{prefix}.{name}.{metric}"] = round(float(r[metric]), 3)
    return out


def build_manifest(
    *,
    name: str,
    version: str,
    default: bool,
    description: str,
    lifter_arch: dict[str, Any],
    augmentor: dict[str, Any] | None,
    files: dict[str, dict[str, Any]],
    evaluations: dict[str, dict],
    evaluation_meta: dict[str, Any],
    training: dict[str, Any],
    normalization: str = "videopose3d_screen",
    temporal: dict[str, Any] | None = None,
    weights_dtype: str = "float32",
    lifter_forms: dict[str, Any] | None = None,
) -> dict[str, Any]:
    lifter_input = LIFTER_INPUTS[normalization]
    lifter_extra: dict[str, Any] = {}
    if temporal is not None:
        lifter_extra["temporal"] = temporal
        lifter_extra.update(lifter_forms or {})
    if weights_dtype != "float32":
        lifter_extra["weights_dtype"] = weights_dtype
    return {
        "format_version": TEMPORAL_FORMAT_VERSION
        if temporal is not None
        else lifter_input["format_version"],
        "name": name,
        "version": version,
        "default": default,
        "description": description,
        "joints": {"format": "H36M_17", "names": list(JOINT_NAMES), "parents": list(PARENTS)},
        "lifter": {
            "file": "lifter.onnx",
            "input": "keypoints",
            "output": "pose3d",
            "normalization": normalization,
            "normalization_formula": lifter_input["normalization_formula"],
            "input_channels": lifter_input["input_channels"],
            "units": "m",
            "frame": "camera (x right, y down, z forward)",
            "root_relative": True,
            "architecture": lifter_arch,
            **lifter_extra,
        },
        "augmentor": augmentor,
        "files": files,
        "metrics": flat_metrics(evaluations),
        "evaluation": {"meta": evaluation_meta, "results": evaluations},
        "training": training,
    }


def write_manifest(bundle: Path, manifest: dict[str, Any]) -> Path:
    path = bundle / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return path
