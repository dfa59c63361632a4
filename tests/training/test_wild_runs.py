"""The wild recipe end to end on the synthetic dataset: train, PoseAug on top, resume, export a
camera-aware (format 2) bundle, and the wild tests on checkpoint and bundle alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from poseaug_training.cli import main
from poseaug_training.train.checkpoint import load_checkpoint
from tests.training.bundle_checks import assert_bundle_gives_back

WILD = [
    "--wild",
    "--estimator",
    "vpose_rays",
    "--channels",
    "64",
    "--blocks",
    "1",
    "--batch-size",
    "64",
    "--device",
    "cpu",
    "--val-stride",
    "4",
    "--subjects",
    "S1,S5",
]


def test_wild_recipe_trains_resumes_exports_and_evaluates(fake_h36m: Path, tmp_path: Path) -> None:
    pre, pa = tmp_path / "pre", tmp_path / "pa"
    data = ["--data", str(fake_h36m)]
    assert main(["baseline", *data, "--out", str(pre), *WILD, "--epochs", "3"]) == 0
    state = load_checkpoint(pre / "checkpoint.pt")
    assert state["config"]["wild"] is True
    assert state["history"][-1]["val_mpjpe_mm"] < state["history"][0]["val_mpjpe_mm"]
    model = json.loads((pre / "detector_error_model.json").read_text())
    assert len(model["outlier_rate"]) == 17 and model["frames"] > 0

    args = ["poseaug", *data, *WILD, "--init", str(pre / "checkpoint.pt"), "--epochs", "2"]
    args += ["--warmup-epochs", "1", "--precision", "bf16", "--out", str(pa)]
    assert main([*args, "--stop-after", "1"]) == 0  # killed after one epoch ...
    assert main(args) == 0  # ... and resumed
    state = load_checkpoint(pa / "checkpoint.pt")
    assert state["epoch"] == 2 and state["config"]["precision"] == "bf16"
    last = state["history"][-1]
    assert last["loss_pose_aug"] > 0 and 0 < last["aug_kept"] <= 1 and "feedback_ba" in last

    ev = tmp_path / "eval"
    tests = ["--tests", "h36m_gt,unseen", "--unseen-stride", "3"]
    ckpt = f"pa={pa / 'checkpoint.pt'}"
    assert main(["wild-eval", *data, "--model", ckpt, "--out", str(ev), *tests]) == 0
    doc = json.loads((ev / "pa" / "evaluation.json").read_text())
    results = doc["results"]
    assert set(results) == {
        "gt",
        "unseen_camera",
        "unseen_no_camera",
        "occluded1",
        "occluded2",
        "occluded4",
    }
    assert 0 <= results["unseen_camera"]["pck150"] <= 1
    assert results["occluded4"]["poses"] == results["unseen_camera"]["poses"]
    assert (ev / "unseen_per_joint_error.png").stat().st_size > 1000
    assert (ev / "unseen_error_by_fov.png").stat().st_size > 1000
    assert len(results["unseen_camera"]["mpjpe_mm_by_hfov"]) >= 5

    bundle = tmp_path / "bundle"
    exported = ["export", "--checkpoint", str(pa / "checkpoint.pt"), "--out", str(bundle)]
    exported += ["--name", "wild", "--evaluation", f"wild={ev / 'pa' / 'evaluation.json'}"]
    assert main(exported) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    assert manifest["lifter"]["normalization"] == "camera_rays"
    assert manifest["lifter"]["input_channels"] == ["x", "y", "visible"]
    assert manifest["metrics"]["wild.unseen_camera.mpjpe_mm"] == pytest.approx(
        results["unseen_camera"]["mpjpe_mm"], abs=1e-3
    )
    assert (bundle / "augmentor.onnx").is_file()

    # The bundle answers like the checkpoint, missing joints included ...
    from poseaug_training.train.checkpoint import load_estimator

    net, _ = load_estimator(pa / "checkpoint.pt")
    sess = ort.InferenceSession(str(bundle / "lifter.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.normal(0, 0.3, (9, 17, 2)), np.ones((9, 17, 1))], -1)
    kp[:3, [2, 13]] = 0.0
    kp = kp.astype(np.float32)
    (out,) = sess.run(None, {"keypoints": kp})
    with torch.no_grad():
        ref = net(torch.from_numpy(kp)).numpy()
    assert np.abs(out - ref).max() <= 1e-4 and np.all(out[:, 0] == 0)
    # ... gives back the run's weights without the checkpoint (a later run's --init) ...
    restored = assert_bundle_gives_back(bundle, load_checkpoint(pa / "checkpoint.pt"))
    assert "augmentor" in restored["extra"]
    # ... so the wild tests give the same numbers through ONNX Runtime.
    ev2 = tmp_path / "eval_bundle"
    assert main(["wild-eval", *data, "--model", f"b={bundle}", "--out", str(ev2), *tests]) == 0
    again = json.loads((ev2 / "b" / "evaluation.json").read_text())["results"]
    for name, r in results.items():
        assert again[name]["mpjpe_mm"] == pytest.approx(r["mpjpe_mm"], abs=0.05), name


def test_wild_recipe_needs_the_camera_aware_estimator(fake_h36m: Path, tmp_path: Path) -> None:
    args = ["baseline", "--data", str(fake_h36m), "--out", str(tmp_path / "x"), "--wild"]
    assert main([*args, "--subjects", "S1", "--epochs", "1"]) == 2
