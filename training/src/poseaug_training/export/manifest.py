"""manifest.json: what a bundle is, how it was trained and how well it does (format_version 1)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from poseaug_training.skeleton import JOINT_NAMES, PARENTS

FORMAT_VERSION = 1


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
            for metric in ("mpjpe_mm", "pa_mpjpe_mm"):
                out[f"{prefix}.{source}2d.{metric}"] = round(float(r[metric]), 3)
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
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "default": default,
        "description": description,
        "joints": {"format": "H36M_17", "names": list(JOINT_NAMES), "parents": list(PARENTS)},
        "lifter": {
            "file": "lifter.onnx",
            "input": "keypoints",
            "output": "pose3d",
            "normalization": "videopose3d_screen",
            "normalization_formula": "x = u / w * 2 - 1, y = v / w * 2 - h / w",
            "units": "m",
            "frame": "camera (x right, y down, z forward)",
            "root_relative": True,
            "architecture": lifter_arch,
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
