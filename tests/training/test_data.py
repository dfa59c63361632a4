"""Data pipeline: loading, projection with distortion, normalization, pairs, MPII mapping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from poseaug_training.data.camera import inside_image, normalize_screen, project_to_pixels
from poseaug_training.data.h36m import action_of, load_h36m, load_videopose3d
from poseaug_training.data.keypoints import mpii16_to_h36m17
from poseaug_training.data.novel_views import build_novel_view_pairs
from poseaug_training.data.pairs import build_pairs
from tests.training.synthetic_h36m import H36M_TO_MPII, project


def test_projection_matches_the_readme_formula(fake_h36m: Path) -> None:
    data = load_h36m(fake_h36m, subjects=["S1"])
    cams = json.loads((fake_h36m / "h36m_cameras.json").read_text())
    world = data.poses_world[("S1", "Walking")]
    cam = data.cameras["S1"][2]
    expected = project(world.astype(np.float64), cams["S1"][cam.camera_id])
    cam3d = torch.from_numpy(cam.world_to_camera(world)).double()
    intr = torch.from_numpy(np.broadcast_to(cam.intrinsics(), (len(world), 11)).copy()).double()
    got = project_to_pixels(cam3d, intr).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-2)


def test_projection_is_differentiable() -> None:
    pts = (torch.randn(4, 17, 3) * 0.3 + torch.tensor([0, 0, 5.0])).requires_grad_()
    intr = torch.tensor(
        [[1145.0, 1144, 512, 515, -0.2, 0.24, 0, -0.001, -0.001, 1000, 1002]]
    ).repeat(4, 1)
    project_to_pixels(pts, intr).sum().backward()
    assert pts.grad is not None and torch.isfinite(pts.grad).all() and pts.grad.abs().sum() > 0


def test_screen_normalization_videopose3d_convention() -> None:
    intr = torch.zeros(1, 11)
    intr[0, 9], intr[0, 10] = 1000, 1002
    pix = torch.tensor([[[0.0, 0.0], [1000.0, 1002.0], [500.0, 501.0]]])
    norm = normalize_screen(pix, intr)
    expected = torch.tensor([[[-1.0, -1.002], [1.0, 1.002], [0.0, 0.0]]])
    torch.testing.assert_close(norm, expected)


def test_inside_image_filter() -> None:
    intr = torch.zeros(2, 11)
    intr[:, 9], intr[:, 10] = 100, 100
    pix = torch.full((2, 17, 2), 50.0)
    pix[1, 3, 0] = 120.0
    assert inside_image(pix, intr).tolist() == [True, False]


def test_pairs_are_root_relative_and_cover_all_cameras(fake_h36m: Path) -> None:
    data = load_h36m(fake_h36m, subjects=["S1", "S5"])
    pairs = build_pairs(data, ["S1", "S5"], stride=1)
    frames = sum(len(v) for v in data.poses_world.values())
    assert len(pairs) == frames * 4
    assert torch.all(pairs.pose3d[:, 0] == 0)
    assert torch.all(pairs.root[:, 2] > 0)
    assert pairs.actions == ["Sitting", "Walking"]
    strided = build_pairs(data, ["S1", "S5"], stride=10)
    assert len(strided) == sum(len(v[::10]) for v in data.poses_world.values()) * 4
    # The normalized 2D of each pair is the projection of its own 3D pose.
    pix = project_to_pixels(pairs.pose3d + pairs.root[:, None], pairs.intrinsics)
    torch.testing.assert_close(
        normalize_screen(pix, pairs.intrinsics), pairs.kp2d, atol=1e-4, rtol=0
    )


def test_detections_are_mapped_from_mpii(fake_h36m: Path) -> None:
    data = load_h36m(fake_h36m, subjects=["S9"], with_detections=True)
    gt = build_pairs(data, ["S9"], source="gt")
    sh = build_pairs(data, ["S9"], source="sh")
    assert len(gt) == len(sh)
    pixel_err = (gt.kp2d - sh.kp2d).norm(dim=-1).mean() * 500
    assert 1.0 < float(pixel_err) < 10.0  # the fake detector's noise is 3 px per axis


def test_mpii_mapping_by_name() -> None:
    h36m = np.arange(17 * 2, dtype=np.float32).reshape(17, 2)
    mpii = h36m[list(H36M_TO_MPII)]
    back = mpii16_to_h36m17(mpii)
    for j in (0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16):
        np.testing.assert_array_equal(back[j], h36m[j])
    np.testing.assert_array_equal(back[7], 0.5 * (h36m[0] + h36m[8]))
    with pytest.raises(ValueError):
        mpii16_to_h36m17(np.zeros((17, 2)))


def test_action_names() -> None:
    assert action_of("Walking 1") == "Walking"
    assert action_of("WalkDog") == "WalkDog"


def test_videopose3d_layout_with_32_joints(tmp_path: Path, fake_h36m: Path) -> None:
    from poseaug_training.data.h36m import H36M32_TO_17

    data = load_h36m(fake_h36m, subjects=["S1"])
    poses32 = {}
    for (s, seq), arr in data.poses_world.items():
        full = np.zeros((len(arr), 32, 3), np.float32)
        full[:, list(H36M32_TO_17)] = arr
        poses32.setdefault(s, {})[seq] = full
    path = tmp_path / "data_3d_h36m.npz"
    np.savez(path, positions_3d=np.array(poses32, dtype=object))
    loaded = load_videopose3d(path, fake_h36m / "h36m_cameras.json")
    for key, arr in data.poses_world.items():
        np.testing.assert_array_equal(loaded.poses_world[key], arr)


def test_novel_views_are_seeded_and_in_front_of_the_camera(fake_h36m: Path) -> None:
    data = load_h36m(fake_h36m, subjects=["S9"])
    a = build_novel_view_pairs(data, ["S9"], stride=3, seed=1)
    b = build_novel_view_pairs(data, ["S9"], stride=3, seed=1)
    torch.testing.assert_close(a.kp2d, b.kp2d)
    assert torch.all(a.root[:, 2] >= 3.0)
    # Viewpoint changes rotate the pose but keep its bone lengths.
    src = build_pairs(data, ["S9"], stride=3)
    bones = [j for j in range(1, 17)]
    parents = [0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]

    def lengths(p: torch.Tensor) -> torch.Tensor:
        return (p[:, bones] - p[:, parents]).norm(dim=-1).mean(0)

    torch.testing.assert_close(lengths(a.pose3d), lengths(src.pose3d), atol=1e-4, rtol=0)


@pytest.mark.data
def test_real_detections_land_near_the_projected_ground_truth(h36m: Path) -> None:
    data = load_h36m(h36m, subjects=["S9"], with_detections=True)
    gt = build_pairs(data, ["S9"], stride=20, source="gt")
    sh = build_pairs(data, ["S9"], stride=20, source="sh")
    err_px = ((gt.kp2d - sh.kp2d).norm(dim=-1) * 500).mean()
    assert 5.0 < float(err_px) < 25.0  # the data README: 10-20 px mean on S9/Walking


def test_gt_and_detected_pairs_concatenate_with_the_same_targets(fake_h36m: Path) -> None:
    from poseaug_training.data.pairs import PoseSet

    data = load_h36m(fake_h36m, subjects=["S9"], with_detections=True)
    gt = build_pairs(data, ["S9"], stride=2, source="gt")
    sh = build_pairs(data, ["S9"], stride=2, source="sh")
    both = PoseSet.concat([gt, sh])
    assert len(both) == len(gt) + len(sh)
    torch.testing.assert_close(both.pose3d, torch.cat([gt.pose3d, sh.pose3d]))
    torch.testing.assert_close(both.kp2d[len(gt) :], sh.kp2d)
    other = build_pairs(load_h36m(fake_h36m, subjects=["S1"]), ["S1"])
    with pytest.raises(ValueError, match="share actions and subjects"):
        PoseSet.concat([gt, other])


def test_detector_error_is_zero_for_projections_and_the_residual_for_detections(
    fake_h36m: Path,
) -> None:
    from poseaug_training.train.poseaug_step import detector_error

    data = load_h36m(fake_h36m, subjects=["S9"], with_detections=True)
    gt = build_pairs(data, ["S9"], stride=2, source="gt")
    sh = build_pairs(data, ["S9"], stride=2, source="sh")
    assert float(detector_error(gt).abs().max()) < 1e-4
    torch.testing.assert_close(detector_error(sh), sh.kp2d - gt.kp2d, atol=1e-4, rtol=0)
