"""The temporal lifter and its clips: windows, per-clip cameras and PoseAug, the single-frame
start, and the recipe end to end on the synthetic dataset (train, resume, export a format 3
bundle, the sequence tests on checkpoint and bundle alike)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from poseaug_training.cli import main
from poseaug_training.data.detector_noise import SWAP_PAIRS, DetectorErrorModel
from poseaug_training.data.h36m import load_h36m
from poseaug_training.data.wild_clips import (
    ClipBatcher,
    build_clip_source,
    cut_future,
    window_rows,
)
from poseaug_training.evaluation.temporal_tests import SequenceTest, smoothness, track_bounds
from poseaug_training.evaluation.wild_tests import LiftTest
from poseaug_training.models.ray_lifter import RayLifter
from poseaug_training.models.temporal_ray_lifter import TemporalRayLifter
from poseaug_training.poseaug.augmentor import Augmentor
from poseaug_training.poseaug.bones import bone_lengths
from poseaug_training.poseaug.clip_augment import augment_clip
from poseaug_training.train.checkpoint import load_checkpoint, load_estimator
from tests.training.bundle_checks import assert_bundle_gives_back


def rays(n: int, frames: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    kp = torch.randn(n, frames, 17, 3, generator=gen) * 0.2
    kp[..., 2] = 1.0
    return kp


@pytest.mark.parametrize(
    ("widths", "anchor", "frame"),
    [((3, 3, 3), "centre", 13), ((3, 3, 3), "last", 26), ((3, 3, 3, 3), "centre", 40)],
)
def test_a_temporal_lifter_started_from_single_frame_weights_answers_like_them(
    widths: tuple[int, ...], anchor: str, frame: int
) -> None:
    torch.manual_seed(0)
    single = RayLifter(channels=32, blocks=len(widths)).eval()
    temporal = TemporalRayLifter(
        channels=32, blocks=len(widths), filter_widths=widths, anchor=anchor
    )
    temporal.from_smaller_window(single.state_dict())
    temporal.eval()
    assert temporal.receptive_field == int(np.prod(widths)) and temporal.anchor_frame == frame
    assert temporal.lookahead == temporal.receptive_field - 1 - frame
    kp = rays(4, temporal.receptive_field)
    with torch.no_grad():
        out = temporal(kp)
        np.testing.assert_allclose(out, single(kp[:, frame]), atol=1e-5)
        # The other frames carry no weight yet; once they do, they change the answer.
        for p in temporal.parameters():
            p.add_(0.01)
        assert (temporal(kp) - out).abs().max() > 1e-3
    assert torch.all(out[:, 0] == 0)


@pytest.mark.parametrize(("anchor", "newest"), [("centre", 53), ("last", 80)])
def test_a_wider_window_started_from_a_smaller_temporal_lifter_answers_like_it(
    anchor: str, newest: int
) -> None:
    torch.manual_seed(0)
    small = TemporalRayLifter(channels=32, filter_widths=(3, 3, 3), anchor=anchor)
    with torch.no_grad():
        for p in small.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # every tap carries weight
    small.eval()
    wide = TemporalRayLifter(channels=32, filter_widths=(3, 3, 3, 3), anchor=anchor)
    wide.from_smaller_window(small.state_dict())
    wide.eval()
    kp = rays(3, 81, seed=1)
    with torch.no_grad():
        # The 27 frames ending at `newest` are the small lifter's window on the same anchor.
        np.testing.assert_allclose(wide(kp), small(kp[:, newest - 26 : newest + 1]), atol=1e-5)
        far = kp.clone()
        far[:, : newest - 26] += 0.5  # frames outside that window carry no weight yet
        far[:, newest + 1 :] += 0.5
        np.testing.assert_allclose(wide(far), wide(kp), atol=1e-6)


@pytest.mark.parametrize(
    ("small", "wide"),
    [
        (dict(filter_widths=(3, 3, 3)), dict(filter_widths=(5, 3, 3))),  # a widened 3-tap layer
        (dict(filter_widths=(3, 3, 3)), dict(filter_widths=(3, 3, 3, 3), blocks=3)),  # unused
        (dict(filter_widths=(3, 3, 3)), dict(filter_widths=(3, 3, 3, 3), blocks=5)),  # missing
        (dict(filter_widths=(3, 3, 3), channels=16), dict(filter_widths=(3, 3, 3, 3))),
    ],
)
def test_a_lifter_that_does_not_fit_a_wider_window_is_refused(small: dict, wide: dict) -> None:
    source = TemporalRayLifter(**{"channels": 32, **small}).state_dict()
    with pytest.raises(ValueError, match=r"tap|no place|no weight"):
        TemporalRayLifter(**{"channels": 32, **wide}).from_smaller_window(source)


def test_a_temporal_lifter_refuses_a_window_of_the_wrong_length() -> None:
    net = TemporalRayLifter(channels=16)
    with pytest.raises(ValueError, match="27 frames"):
        net(rays(2, 9))
    with pytest.raises(ValueError, match="odd"):
        TemporalRayLifter(filter_widths=(2, 3))
    with pytest.raises(ValueError, match="anchor"):
        TemporalRayLifter(anchor="middle")


def test_windows_repeat_the_edge_frames_and_a_cut_future_repeats_the_newest() -> None:
    rows = torch.tensor([10, 11, 12, 19])
    first, last = torch.full((4,), 10), torch.full((4,), 19)
    win = window_rows(rows, first, last, 5, 2)
    assert win.tolist() == [
        [10, 10, 10, 11, 12],
        [10, 10, 11, 12, 13],
        [10, 11, 12, 13, 14],
        [17, 18, 19, 19, 19],
    ]
    frames = torch.arange(5.0)[None, :, None].repeat(3, 1, 2)
    cut = cut_future(frames, 2, torch.tensor([0, 1, 2]))
    assert cut[:, :, 0].tolist() == [[0, 1, 2, 2, 2], [0, 1, 2, 3, 3], [0, 1, 2, 3, 4]]


def test_track_bounds_and_smoothness_stay_inside_each_track() -> None:
    track = np.array([3, 3, 3, 7, 7, 1])
    first, last = track_bounds(track)
    assert first.tolist() == [0, 0, 0, 3, 3, 5] and last.tolist() == [2, 2, 2, 4, 4, 5]
    target = np.zeros((6, 17, 3), np.float32)
    test = LiftTest(
        np.zeros((6, 17, 2)),
        np.ones((6, 17), bool),
        np.zeros((6, 11)),
        target,
        np.zeros(6, int),
        ["a"],
    )
    pred = target.copy()
    pred[1, :, 0] = 0.002  # a 2 mm spike in the middle of the first track
    pred[3:5, :, 0] = 0.5  # an offset over a whole track: no velocity error inside it
    m = smoothness(pred, SequenceTest(test, track))
    # accel: one triple (frames 0, 1, 2): |0 - 2*2 + 0| = 4 mm; velocities 2, 2 and 0 mm.
    assert m["accel_mm"] == pytest.approx(4.0, abs=1e-3)
    assert m["mpjve_mm"] == pytest.approx(4.0 / 3, abs=1e-3)


def error_model() -> DetectorErrorModel:
    eye = [[1e-4, 0.0], [0.0, 1e-4]]
    return DetectorErrorModel(
        bias=[[0.0, 0.0]] * 17,
        cov=[eye] * 17,
        swap_rate=[0.0] * len(SWAP_PAIRS),
        outlier_rate=[0.0] * 17,
        outlier_log_mean=[-3.0] * 17,
        outlier_log_std=[0.1] * 17,
        frames=1,
    )


def test_a_clip_moves_through_one_fixed_camera_along_the_person_s_path(fake_h36m: Path) -> None:
    data = load_h36m(fake_h36m, subjects=["S1"], with_detections=True)
    src = build_clip_source(data, ["S1"], stride=7)
    assert len(src.frames) == len(src.first) and (src.first <= src.last).all()
    torch.manual_seed(0)
    batcher = ClipBatcher(error_model(), 9, 4, future_cut=0.0)
    batch = batcher(src.select(torch.arange(64)))
    assert batch.kp2d.shape == (64, 9, 17, 3) and batch.intrinsics.shape == (64, 11)
    np.testing.assert_allclose(batch.clip_pose[:, 4], batch.pose3d)
    assert torch.all(batch.pose3d[:, 0] == 0)
    # One rigid camera per clip: root displacements keep their world lengths.
    rows = window_rows(
        src.anchors[:64], src.first[src.anchors[:64]], src.last[src.anchors[:64]], 9, 4
    )
    world = src.world_root[rows]
    d_world = (world - world[:, 4:5]).norm(dim=-1)
    d_cam = (batch.clip_root - batch.clip_root[:, 4:5]).norm(dim=-1)
    np.testing.assert_allclose(d_cam, d_world, atol=1e-4)
    assert set(batch.kp2d[..., 2].unique().tolist()) <= {0.0, 1.0}
    # The same draws with every future cut: each window is the uncut one with the frames after
    # some lookahead repeating the newest, and some windows lose frames.
    torch.manual_seed(1)
    whole = ClipBatcher(error_model(), 9, 4, future_cut=0.0)(src.select(torch.arange(64)))
    torch.manual_seed(1)
    cut = ClipBatcher(error_model(), 9, 4, future_cut=1.0)(src.select(torch.arange(64)))
    assert not torch.equal(cut.kp2d, whole.kp2d)
    for i in range(64):
        assert any(
            torch.equal(
                cut.kp2d[i : i + 1], cut_future(whole.kp2d[i : i + 1], 4, torch.tensor([la]))
            )
            for la in range(5)
        )


def test_poseaug_moves_a_whole_clip_with_one_set_of_parameters() -> None:
    torch.manual_seed(0)
    aug = Augmentor().eval()
    b, r, a = 3, 5, 2
    base = torch.randn(b, 1, 17, 3) * 0.2
    clip_pose = base + torch.randn(b, r, 17, 3) * 0.02
    clip_pose = clip_pose - clip_pose[:, :, :1]
    clip_root = torch.tensor([0.0, 0.0, 4.0]) + torch.randn(b, r, 3) * 0.1
    with torch.no_grad():
        out = aug(clip_pose[:, a], clip_root[:, a], *aug.sample_noise(b))
        ba, rt = augment_clip(clip_pose, clip_root, a, out, torch.ones(3))
    np.testing.assert_allclose(ba[:, a] - clip_root[:, a, None], out.pose_ba, atol=1e-5)
    np.testing.assert_allclose(rt[:, a], out.pose_rt, atol=1e-5)
    # BL scales every frame's bones by the same ratios; RT moves the path rigidly.
    rel = rt - rt[:, :, :1]
    ratio = bone_lengths(rel.reshape(-1, 17, 3)) / bone_lengths(clip_pose.reshape(-1, 17, 3))
    ratio = ratio.reshape(b, r, -1)
    np.testing.assert_allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-4)
    path = (rt[:, :, 0] - rt[:, a : a + 1, 0]).norm(dim=-1)
    np.testing.assert_allclose(path, (clip_root - clip_root[:, a : a + 1]).norm(dim=-1), atol=1e-5)


TEMPORAL = [
    "--wild",
    "--channels",
    "32",
    "--blocks",
    "2",
    "--batch-size",
    "32",
    "--device",
    "cpu",
    "--subjects",
    "S1,S5",
]


def test_the_temporal_recipe_trains_resumes_exports_and_evaluates(
    fake_h36m: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data", str(fake_h36m)]
    single, tem = tmp_path / "single", tmp_path / "temporal"
    one = ["baseline", *data, *TEMPORAL, "--estimator", "vpose_rays", "--val-stride", "8"]
    assert main([*one, "--epochs", "1", "--stride", "4", "--out", str(single)]) == 0
    args = ["poseaug", *data, *TEMPORAL, "--estimator", "vpose_rays_temporal"]
    args += ["--filter-widths", "3,3", "--init", str(single / "checkpoint.pt"), "--stride", "6"]
    args += ["--epochs", "2", "--warmup-epochs", "0", "--precision", "bf16", "--out", str(tem)]
    assert main([*args, "--stop-after", "1"]) == 0  # killed after one epoch ...
    assert main(args) == 0  # ... and resumed
    state = load_checkpoint(tem / "checkpoint.pt")
    assert state["epoch"] == 2 and state["config"]["anchor"] == "centre"
    assert state["history"][-1]["loss_pose_aug"] > 0 and state["lineage"]

    ev = tmp_path / "eval"
    models = [
        "--model",
        f"single={single / 'checkpoint.pt'}",
        "--model",
        f"t={tem / 'checkpoint.pt'}",
    ]
    run = ["temporal-eval", *data, *models, "--out", str(ev), "--tests", "h36m_sh,unseen"]
    assert main([*run, "--lookaheads", "0"]) == 0
    results = json.loads((ev / "t" / "evaluation.json").read_text())["results"]
    assert {"sh", "unseen_camera", "occluded2_persistent"} <= set(results)
    assert results["sh"]["accel_mm"] > 0 and results["sh"]["mpjve_mm"] > 0
    causal_view = json.loads((ev / "t@lookahead0" / "evaluation.json").read_text())["results"]
    assert set(causal_view) == {"sh"}
    assert causal_view["sh"]["mpjpe_mm"] != pytest.approx(results["sh"]["mpjpe_mm"], abs=1e-6)
    assert "t@lookahead0" in (ev / "comparison.md").read_text()
    assert (ev / "sh_track_right_wrist.png").stat().st_size > 1000
    assert (ev / "detector_error_over_time.png").stat().st_size > 1000
    # The recipe's error model persists over time, fitted to the fake detections.
    fitted = json.loads((tem / "detector_error_model.json").read_text())
    assert fitted["ar"] > 0 and len(fitted["measured_corr"]) == 6

    bundle = tmp_path / "bundle"
    export = ["export", "--checkpoint", str(tem / "checkpoint.pt"), "--out", str(bundle)]
    # One model's tests split over two processes: the bundle's one prefix merges both files.
    ev_gt = tmp_path / "eval_gt"
    assert main([*run[:-1], "h36m_gt", "--out", str(ev_gt)]) == 0
    parts = [f"temporal={e / 't' / 'evaluation.json'}" for e in (ev, ev_gt)]
    assert main([*export, "--name", "tem", "--evaluation", parts[0], "--evaluation", parts[1]]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    gt = json.loads((ev_gt / "t" / "evaluation.json").read_text())["results"]["gt"]
    assert manifest["evaluation"]["results"]["temporal"] == {**results, "gt": gt}
    twice = ["--evaluation", parts[0], "--evaluation", parts[0]]  # the same tests twice
    assert main([*export[:-1], str(tmp_path / "refused"), "--name", "tem", *twice]) == 2
    assert "already under 'temporal'" in capsys.readouterr().err
    assert manifest["format_version"] == 3
    assert manifest["lifter"]["temporal"] == {"frames": 9, "anchor_frame": 4, "padding": "edge"}
    assert manifest["metrics"]["temporal.sh2d.accel_mm"] == pytest.approx(
        results["sh"]["accel_mm"], abs=1e-3
    )
    net, _ = load_estimator(tem / "checkpoint.pt")
    sess = ort.InferenceSession(str(bundle / "lifter.onnx"), providers=["CPUExecutionProvider"])
    kp = rays(5, 9).numpy()
    (out,) = sess.run(None, {"keypoints": kp})
    with torch.no_grad():
        np.testing.assert_allclose(out, net(torch.from_numpy(kp)).numpy(), atol=1e-4)
    # The bundle alone (its run's checkpoint gone) gives back the weights it shipped, and a
    # later stage with a wider window starts from it.
    restored = assert_bundle_gives_back(bundle, state)
    assert "augmentor" in restored["extra"] and "d3d" not in restored["extra"]
    assert restored["lineage"] == state["lineage"]
    wide = tmp_path / "wide"
    grow = [a for a in args if a != "--stop-after"]
    grow[grow.index("--filter-widths") + 1] = "3,3,3"
    grow[grow.index("--init") + 1] = str(bundle)
    grow[grow.index("--epochs") + 1] = "1"
    assert main([*grow[:-1], str(wide)]) == 0
    grown = load_checkpoint(wide / "checkpoint.pt")
    assert grown["config"]["filter_widths"] == [3, 3, 3]
    assert grown["lineage"][:-1] == state["lineage"] and grown["lineage"][-1]["epochs"] == 2
    ev2 = tmp_path / "eval_bundle"
    assert (
        main(
            [
                "temporal-eval",
                *data,
                "--model",
                f"b={bundle}",
                "--out",
                str(ev2),
                "--tests",
                "h36m_sh",
            ]
        )
        == 0
    )
    again = json.loads((ev2 / "b" / "evaluation.json").read_text())
    assert again["results"]["sh"]["mpjpe_mm"] == pytest.approx(results["sh"]["mpjpe_mm"], abs=0.05)
    # ... through its whole-track form; its window model gives the same numbers.
    assert again["meta"]["form"] == "whole_track"
    ev3 = tmp_path / "eval_windows"
    windows = ["temporal-eval", *data, "--model", f"b={bundle}", "--tests", "h36m_sh"]
    assert main([*windows, "--out", str(ev3), "--window-model"]) == 0
    by_windows = json.loads((ev3 / "b" / "evaluation.json").read_text())
    assert by_windows["meta"]["form"] == "window"
    for metric, value in by_windows["results"]["sh"].items():
        if isinstance(value, float):  # the scalar metrics (per-action tables beside them)
            assert again["results"]["sh"][metric] == pytest.approx(value, abs=1e-3), metric

    # A bundle exported before the forms existed gets them from `export --bundle` (made from
    # the weights in its lifter.onnx); its other files stay byte for byte, its records too.
    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    manifest = json.loads((old / "manifest.json").read_text())
    for form in ("step", "whole_track"):
        (old / manifest["lifter"].pop(form)["file"]).unlink()
    manifest["files"] = {k: v for k, v in manifest["files"].items() if (old / k).exists()}
    (old / "manifest.json").write_text(json.dumps(manifest))
    new = tmp_path / "new"
    assert main(["export", "--bundle", str(old), "--out", str(new)]) == 2
    assert "--version" in capsys.readouterr().err
    assert main(["export", "--bundle", str(old), "--out", str(new), "--version", "1.1.0"]) == 0
    again = json.loads((new / "manifest.json").read_text())
    assert again["version"] == "1.1.0" and again["evaluation"] == manifest["evaluation"]
    for name in ("lifter.onnx", "augmentor.onnx"):
        assert (new / name).read_bytes() == (old / name).read_bytes()
    assert set(again["files"]) == set(manifest["files"]) | {"lifter_step.onnx", "lifter_track.onnx"}
    assert again["lifter"]["step"]["state"][-1]["taps"] == [4]  # the rotation, 4 frames back
    added = again["training"]["reexports"][-1]
    assert added["from_version"] == "1.0.0" and added["added"] == sorted(added["added"])
    assert max(again["training"]["onnx_parity_max_abs_diff"].values()) <= 1e-4
    single_bundle = tmp_path / "single_bundle"
    assert main(["export", "--checkpoint", str(single / "checkpoint.pt"), "--out",
                 str(single_bundle), "--name", "s"]) == 0  # fmt: skip
    assert main(["export", "--bundle", str(single_bundle), "--version", "2.0.0"]) == 2
    assert "single-frame" in capsys.readouterr().err
