"""End-to-end training runs on the synthetic dataset: learning, resume, DDP, eval, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from poseaug_training.cli import main
from poseaug_training.export.manifest import sha256_file
from poseaug_training.train.checkpoint import load_checkpoint

TINY = [
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
]


def _train(fake: Path, out: Path, *extra: str) -> int:
    return main(
        ["baseline", "--data", str(fake), "--out", str(out), "--subjects", "S1,S5", *TINY, *extra]
    )


def test_baseline_learns_on_synthetic_data(fake_h36m: Path, tmp_path: Path) -> None:
    assert _train(fake_h36m, tmp_path / "run", "--epochs", "4") == 0
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    hist = state["history"]
    assert state["epoch"] == 4
    assert hist[-1]["loss_pose"] < hist[0]["loss_pose"]
    assert hist[-1]["val_mpjpe_mm"] < hist[0]["val_mpjpe_mm"]
    assert any((tmp_path / "run" / "tb").iterdir()), "TensorBoard events missing"


def test_kill_and_resume_gives_the_same_weights(fake_h36m: Path, tmp_path: Path) -> None:
    assert _train(fake_h36m, tmp_path / "straight", "--epochs", "3", "--seed", "7") == 0
    # Stop after one epoch (as a kill after the first checkpoint would), then resume.
    assert (
        _train(fake_h36m, tmp_path / "resumed", "--epochs", "3", "--seed", "7", "--stop-after", "1")
        == 0
    )
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["epoch"] == 1
    assert _train(fake_h36m, tmp_path / "resumed", "--epochs", "3", "--seed", "7") == 0
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")["estimator"]
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["estimator"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    # And a different seed really gives different weights (the comparison can fail).
    assert _train(fake_h36m, tmp_path / "other", "--epochs", "1", "--seed", "8") == 0
    c = load_checkpoint(tmp_path / "other" / "checkpoint.pt")["estimator"]
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_sigkill_mid_run_then_resume_finishes(fake_h36m: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "poseaug_training.cli",
        "baseline",
        "--data",
        str(fake_h36m),
        "--out",
        str(out),
        "--subjects",
        "S1,S5",
        "--epochs",
        "30",
        *TINY,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if '"epoch": 2' in line:
            proc.kill()
            break
    proc.wait(timeout=60)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] >= 2
    done = subprocess.run(
        [*cmd[: -len(TINY) - 2], "--epochs", "3", *TINY], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "resumed" in done.stdout
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 3


@pytest.mark.parametrize(
    "mode",
    [
        ["baseline"],
        # The official schedule: per-rank augmented pairs, equal pass lengths on every rank.
        ["poseaug", "--estimator-updates", "alternate", "--warmup-epochs", "1"],
    ],
    ids=["baseline", "poseaug-alternate"],
)
def test_torchrun_two_processes_on_cpu(fake_h36m: Path, tmp_path: Path, mode: list[str]) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "poseaug_training.cli",
        *mode,
        "--data",
        str(fake_h36m),
        "--out",
        str(out),
        "--subjects",
        "S1,S5",
        "--epochs",
        "2",
        *TINY,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 2
    assert state["hardware"]["processes"] == 2
    assert state["history"][-1]["val_mpjpe_mm"] < state["history"][0]["val_mpjpe_mm"] * 1.5


def test_eval_and_export_round_trip(fake_h36m: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _train(fake_h36m, run, "--epochs", "1") == 0
    ev = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(run / "checkpoint.pt"),
                "--data",
                str(fake_h36m),
                "--out",
                str(ev),
                "--subjects",
                "S9,S11",
            ]
        )
        == 0
    )
    doc = json.loads((ev / "evaluation.json").read_text())
    assert set(doc["results"]) == {"gt", "sh", "novel"}
    assert (ev / "per_joint_error.png").stat().st_size > 1000
    assert "average" in (ev / "evaluation.md").read_text()

    bundle = tmp_path / "bundle"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(run / "checkpoint.pt"),
                "--out",
                str(bundle),
                "--name",
                "tiny",
                "--evaluation",
                f"h36m={ev / 'evaluation.json'}",
                "--default",
            ]
        )
        == 0
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["default"] is True
    assert manifest["files"]["lifter.onnx"]["sha256"] == sha256_file(bundle / "lifter.onnx")
    assert manifest["metrics"]["h36m.gt2d.mpjpe_mm"] == pytest.approx(
        doc["results"]["gt"]["mpjpe_mm"], abs=1e-3
    )
    onnx.checker.check_model(str(bundle / "lifter.onnx"))

    # The exported lifter answers like the checkpoint, for any batch size.
    from poseaug_training.train.checkpoint import load_estimator

    model, _ = load_estimator(run / "checkpoint.pt")
    sess = ort.InferenceSession(str(bundle / "lifter.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        kp = np.random.default_rng(n).normal(0, 0.3, (n, 17, 2)).astype(np.float32)
        (out,) = sess.run(None, {"keypoints": kp})
        with torch.no_grad():
            ref = model(torch.from_numpy(kp)).numpy()
        assert out.shape == (n, 17, 3)
        assert np.abs(out - ref).max() <= 1e-4
        assert np.all(out[:, 0] == 0)


def test_poseaug_run_trains_every_part_and_exports_both_models(
    fake_h36m: Path, tmp_path: Path
) -> None:
    run = tmp_path / "pa"
    args = [
        "poseaug",
        "--data",
        str(fake_h36m),
        "--out",
        str(run),
        "--subjects",
        "S1,S5",
        "--epochs",
        "2",
        "--warmup-epochs",
        "1",
        *TINY,
    ]
    assert main(args) == 0
    state = load_checkpoint(run / "checkpoint.pt")
    warm, full = state["history"]
    assert "feedback_ba" not in warm and "loss_pose_aug" not in warm  # GAN-only warm-up
    for key in ("feedback_ba", "feedback_rt", "loss_pose_aug", "loss_d3d", "loss_d2d", "reg_ba"):
        assert np.isfinite(full[key]), key
    assert 0.0 < full["aug_kept"] <= 1.0
    for part in ("augmentor", "d3d", "d2d", "opt_g", "opt_d", "pool3d", "pool2d", "noise"):
        assert part in state["extra"], part

    bundle = tmp_path / "bundle"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(run / "checkpoint.pt"),
                "--out",
                str(bundle),
                "--name",
                "tiny-pa",
            ]
        )
        == 0
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["files"]["augmentor.onnx"]["sha256"] == sha256_file(bundle / "augmentor.onnx")
    dims = manifest["augmentor"]["noise_dims"]
    sess = ort.InferenceSession(str(bundle / "augmentor.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    n = 5
    feeds = {
        "pose3d": (rng.normal(0, 0.2, (n, 17, 3))).astype(np.float32),
        "root": np.tile(np.array([[0.0, 0.0, 5.0]], np.float32), (n, 1)),
        "noise_ba": rng.normal(size=(n, dims["ba"])).astype(np.float32),
        "noise_bl": rng.normal(size=(n, dims["bl"])).astype(np.float32),
        "noise_rt": rng.normal(size=(n, dims["rt"])).astype(np.float32),
        "ops": np.ones(3, np.float32),
    }
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds), strict=True))
    assert outs["pose3d_aug"].shape == (n, 17, 3)
    assert np.all(outs["pose3d_aug"][:, :, 2] > 0)


def test_alternate_updates_pass_over_augmented_then_source_pairs(
    fake_h36m: Path, tmp_path: Path
) -> None:
    """The official schedule: after the warm-up, P trains only at the epoch's end, one pass over
    the epoch's augmented pairs and one over the source pairs (Adam's step count tells)."""
    run = tmp_path / "alt"
    args = ["poseaug", "--data", str(fake_h36m), "--out", str(run), "--subjects", "S1,S5"]
    args += ["--epochs", "2", "--warmup-epochs", "1", "--estimator-updates", "alternate", *TINY]
    assert main(args) == 0
    state = load_checkpoint(run / "checkpoint.pt")
    warm, full = state["history"]
    assert "aug_pairs" not in warm
    steps_per_epoch = state["global_step"] // 2
    aug_steps = int(full["aug_pairs"]) // 64
    assert aug_steps >= 1 and np.isfinite(full["loss_pose_aug"])
    adam_steps = {int(v["step"]) for v in state["optimizer"]["state"].values()}
    assert adam_steps == {steps_per_epoch + aug_steps + steps_per_epoch}
    assert state["config"]["estimator_updates"] == "alternate"


@pytest.mark.parametrize("updates", ["mixed", "alternate"])
def test_resume_of_a_poseaug_run_is_exact(fake_h36m: Path, tmp_path: Path, updates: str) -> None:
    common = [
        "poseaug",
        "--estimator-updates",
        updates,
        "--data",
        str(fake_h36m),
        "--subjects",
        "S1,S5",
        "--epochs",
        "2",
        "--warmup-epochs",
        "1",
        "--seed",
        "3",
        "--train-2d",
        "gt,sh",  # detected 2D too: the augmented pairs inherit their detector error
        *TINY,
    ]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), "--stop-after", "1"]) == 0
    assert main([*common, "--out", str(tmp_path / "b")]) == 0
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    for k in a["estimator"]:
        torch.testing.assert_close(a["estimator"][k], b["estimator"][k], rtol=0, atol=0, msg=k)
    for k in a["extra"]["augmentor"]:
        torch.testing.assert_close(
            a["extra"]["augmentor"][k], b["extra"]["augmentor"][k], rtol=0, atol=0
        )


def test_train_2d_flag_takes_gt_sh_or_both() -> None:
    from poseaug_training.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["baseline", "--train-2d", "gt,sh"]).train_2d == ["gt", "sh"]
    assert parser.parse_args(["poseaug", "--train-2d", "sh"]).train_2d == ["sh"]
    for bad in ("hr", "gt,gt", ""):
        with pytest.raises(SystemExit):
            parser.parse_args(["baseline", "--train-2d", bad])
    assert parser.parse_args(["poseaug", "--ops", "ba,rt"]).ops == ["ba", "rt"]
    with pytest.raises(SystemExit):
        parser.parse_args(["poseaug", "--ops", "ba,xx"])
