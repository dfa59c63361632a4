"""ModelInfo messages (ListModels, GetModelInfo) from loaded models."""

from __future__ import annotations

import json

from poseaug.v1 import poseaug_pb2
from poseaug_service.keypoint_formats import H36M_JOINT_NAMES, H36M_PARENTS, INPUT_FORMATS
from poseaug_service.sessions import LoadedModel


def model_info(model: LoadedModel, default_name: str) -> poseaug_pb2.ModelInfo:
    """ModelInfo from a manifest that manifest_schema.py has checked (types and sizes)."""
    manifest = model.bundle.manifest
    joints = manifest.get("joints") or {}
    return poseaug_pb2.ModelInfo(
        name=model.name,
        version=model.version,
        is_default=model.name == default_name,
        joint_names=joints.get("names") or H36M_JOINT_NAMES,
        joint_parents=joints.get("parents") or H36M_PARENTS,
        input_formats=INPUT_FORMATS,
        providers=model.providers,
        has_augmentor=model.augmentor is not None,
        metrics={k: float(v) for k, v in (manifest.get("metrics") or {}).items()},
        manifest_json=model.bundle.manifest_text or json.dumps(manifest),
        lifter_input=model.lifter_input,
        temporal_frames=model.temporal_frames,
        temporal_lookahead=model.temporal_lookahead,
    )
