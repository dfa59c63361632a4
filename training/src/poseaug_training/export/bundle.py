"""`poseaug-train export`: checkpoint + evaluation results -> a model bundle folder; or a shipped
bundle re-exported with the files this exporter writes now (`reexport_bundle`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from poseaug_training.export.lifter_onnx import (
    export_lifter,
    onnx_parity,
    parity_poses,
    round_weights_to_fp16,
    store_weights_fp16,
)
from poseaug_training.export.manifest import build_manifest, file_entries, write_manifest
from poseaug_training.export.temporal_forms_onnx import export_temporal_forms
from poseaug_training.train.checkpoint import load_estimator

MAX_ONNX_BYTES = 40 * 1024 * 1024
WILD_INPUTS = (
    "the wild recipe (data/wild_pairs.py): every step each pose seen through a fresh virtual "
    "camera (field of view 30-100 deg, 16:9 / 4:3 / 1:1 / 9:16, off-centre principal point, "
    "pitch -25..75 deg, roll, people filling 20-90% of the image height, some cut by the "
    "frame) or its Human3.6M camera; Stacked Hourglass detections where they exist; a "
    "detector error model fitted to those detections; random missing joints; some rays "
    "encoded with a wrong focal length"
)


# ONNX Runtime must reproduce the torch lifter this closely on `lifter_parity_inputs`.
PARITY_TOLERANCE = 1e-4


def lifter_parity_inputs(model: Any) -> np.ndarray:
    """The parity check's inputs for `model`: 256 poses, or for a temporal lifter 256 windows
    of its receptive field (consecutive "frames" of one pose)."""
    frames = getattr(model, "receptive_field", None)
    kp = parity_poses(channels=getattr(model, "input_channels", 2), n=256 * (frames or 1))
    return kp if frames is None else kp.reshape(256, frames, *kp.shape[1:])


def export_bundle(
    checkpoint: Path,
    out_dir: Path,
    name: str,
    version: str = "1.0.0",
    default: bool = False,
    evaluation_files: list[Path] | None = None,
    description: str = "",
    parity_keypoints: np.ndarray | None = None,
) -> Path:
    """Write lifter.onnx (+ augmentor.onnx when the checkpoint has one, + a temporal lifter's
    step and whole-track forms) and manifest.json.

    `evaluation_files` are evaluation.json files; a path may be given as PREFIX=PATH to set
    the metric prefix (default "h36m"); files under one prefix merge their tests (the first
    file's meta is kept).
    """
    model, state = load_estimator(checkpoint)
    cfg = state["config"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = getattr(model, "receptive_field", None)
    weights_fp16 = sum(p.numel() for p in model.parameters()) * 4 > MAX_ONNX_BYTES * 0.95
    if weights_fp16:
        round_weights_to_fp16(model)
    export_lifter(model, out_dir / "lifter.onnx")
    if weights_fp16:
        store_weights_fp16(out_dir / "lifter.onnx")
    kp = lifter_parity_inputs(model) if parity_keypoints is None else parity_keypoints
    lifter_diff = onnx_parity(model, out_dir / "lifter.onnx", kp)
    if lifter_diff > PARITY_TOLERANCE:
        raise RuntimeError(
            f"lifter.onnx differs from torch by {lifter_diff:g} (> {PARITY_TOLERANCE:g})"
        )
    files = ["lifter.onnx"]
    forms, forms_diff = (
        (None, {}) if frames is None else export_temporal_forms(model, out_dir, weights_fp16)
    )
    files += [entry["file"] for entry in (forms or {}).values()]
    augmentor_entry: dict[str, Any] | None = None
    if "augmentor" in state.get("extra", {}):
        from poseaug_training.export.augmentor_onnx import export_augmentor_from_state

        augmentor_entry = export_augmentor_from_state(state, out_dir / "augmentor.onnx")
        files.append("augmentor.onnx")
    for f in files:
        size = (out_dir / f).stat().st_size
        if size > MAX_ONNX_BYTES:
            raise RuntimeError(f"{f} is {size} bytes, over the 40 MB limit")

    evaluations: dict[str, dict] = {}
    eval_meta: dict[str, Any] = {}
    for spec in evaluation_files or []:
        prefix, _, path = str(spec).rpartition("=")
        prefix = prefix or "h36m"
        doc = json.loads(Path(path).read_text())
        # A prefix given twice merges its files' tests (one model's tests split over processes):
        # different tests of one model, seen through the same window and lookahead.
        if prefix in evaluations:
            same = ("bundle", "checkpoint", "window", "lookahead")
            first = eval_meta[prefix]
            if overlap := set(evaluations[prefix]) & set(doc["results"]):
                raise ValueError(f"{path}: tests {sorted(overlap)} are already under {prefix!r}")
            if any(first.get(k) != doc["meta"].get(k) for k in same):
                raise ValueError(f"{path}: another model or window than the first {prefix!r} file")
        evaluations.setdefault(prefix, {}).update(doc["results"])
        if prefix not in eval_meta:
            eval_meta[prefix] = {k: v for k, v in doc["meta"].items() if k != "train_config"}
            eval_meta[prefix]["train_config"] = doc["meta"].get("train_config")
    training = {
        "config": cfg,
        "data": {
            "dataset": "Human3.6M",
            "train_subjects": cfg["subjects"],
            "frame_stride": cfg["stride"],
            "cameras": "all 4",
            "inputs": WILD_INPUTS
            if cfg.get("wild")
            else training_inputs(cfg.get("train_2d", ["gt"])),
        },
        "epochs": state["epoch"],
        "steps": state["global_step"],
        "wall_time_s": round(state["wall_time_s"], 1),
        "hardware": state.get("hardware", {}),
        "history": state["history"],
        "lineage": state.get("lineage", []),
        "onnx_parity_max_abs_diff": {
            "lifter": lifter_diff,
            **forms_diff,
            **(augmentor_entry or {}).get("parity", {}),
        },
    }
    if augmentor_entry is not None:
        augmentor_entry = {k: v for k, v in augmentor_entry.items() if k != "parity"}
    manifest = build_manifest(
        name=name,
        version=version,
        default=default,
        description=description,
        lifter_arch={
            **model.config,
            "joints": 17,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        augmentor=augmentor_entry,
        files=file_entries(out_dir, files),
        evaluations=evaluations,
        evaluation_meta=eval_meta,
        training=training,
        normalization="camera_rays" if cfg.get("wild") else "videopose3d_screen",
        temporal=None
        if frames is None
        else {"frames": frames, "anchor_frame": model.anchor_frame, "padding": "edge"},
        weights_dtype="float16" if weights_fp16 else "float32",
        lifter_forms=forms,
    )
    return write_manifest(out_dir, manifest)


def reexport_bundle(bundle: Path, version: str, out_dir: Path | None = None) -> Path:
    """A bundle re-exported with what this exporter writes now that it lacks: a temporal
    lifter's step and whole-track forms, made from the weights read back out of its
    lifter.onnx (train/bundle_init.py). lifter.onnx and augmentor.onnx stay byte for byte, so
    do the evaluation and training record; the version becomes `version` and
    `training.reexports` says what was added. Writes into `out_dir` (default: in place)."""
    import shutil

    from poseaug_training.train.bundle_init import lifter_from_bundle

    bundle = Path(bundle)
    out_dir = bundle if out_dir is None else Path(out_dir)
    model, manifest = lifter_from_bundle(bundle)
    if getattr(model, "receptive_field", None) is None:
        raise ValueError(f"{bundle}: a single-frame lifter; there is nothing to add")
    out_dir.mkdir(parents=True, exist_ok=True)
    kept = list(manifest["files"])
    if out_dir.resolve() != bundle.resolve():
        for name in kept:
            shutil.copy2(bundle / name, out_dir / name)
    weights_fp16 = manifest["lifter"].get("weights_dtype") == "float16"
    forms, parity = export_temporal_forms(model, out_dir, weights_fp16)
    added = [entry["file"] for entry in forms.values()]
    for name in added:
        size = (out_dir / name).stat().st_size
        if size > MAX_ONNX_BYTES:
            raise RuntimeError(f"{name} is {size} bytes, over the 40 MB limit")
    previous = manifest["version"]
    manifest["version"] = version
    manifest["lifter"].update(forms)
    manifest["files"] = file_entries(out_dir, list(dict.fromkeys([*kept, *added])))
    training = manifest["training"]
    training["onnx_parity_max_abs_diff"].update(parity)
    training.setdefault("reexports", []).append(
        {
            "from_version": previous,
            "version": version,
            "added": added,
            "note": "the same weights (read back out of lifter.onnx) in the step and "
            "whole-track forms; lifter.onnx, augmentor.onnx and the evaluation unchanged",
        }
    )
    return write_manifest(out_dir, manifest)


def training_inputs(sources: list[str]) -> str:
    """The manifest's words for where the training pairs' 2D came from."""
    words = {
        "gt": "ground-truth 3D projected through the calibrated cameras (with distortion)",
        "sh": "Stacked Hourglass detections (MPII-16 mapped to H36M-17)",
    }
    return "; ".join(words[s] for s in sources)
