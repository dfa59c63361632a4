"""The wild recipe's pieces: rays, virtual cameras, detector error, missing joints, batches,
and the camera-aware lifter's in-graph normalization. Small arrays made here; no dataset."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from poseaug_training.data.camera import project_to_pixels, undistort_to_rays
from poseaug_training.data.detector_noise import SWAP_PAIRS, DetectorErrorModel, person_size
from poseaug_training.data.occlusion import (
    LIMBS,
    MAX_RANDOM_MISSING,
    SIDES,
    drop_joints,
    inside_frame,
    random_visibility,
)
from poseaug_training.data.virtual_cameras import (
    LEVEL_FROM_WORLD,
    MIN_DEPTH_M,
    TRAIN_VIEWS,
    UNSEEN_VIEWS,
    ViewRanges,
    place_in_view,
)
from poseaug_training.data.wild_pairs import WildBatcher, WildMix, WildSource, encode_rays
from poseaug_training.models.ray_lifter import RayLifter, look_at_rotation, perspective_normalize
from tests.training.synthetic_h36m import PARENTS, REST

H36M_LIKE = [1145.0, 1144.0, 512.5, 515.5, -0.207, 0.248, -0.003, -0.0014, -0.001, 1000, 1002]


def rest_pose() -> np.ndarray:
    """[17, 3] the synthetic rest skeleton, world metres, z up, root at the origin."""
    pose = np.zeros((17, 3))
    for j, p in enumerate(PARENTS):
        if p >= 0:
            pose[j] = pose[p] + REST[j]
    return pose - pose[:1]


def poses(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    out = rest_pose()[None] + rng.normal(0, 0.03, (n, 17, 3))
    return torch.from_numpy(out - out[:, :1]).float()


def test_undistort_inverts_the_projection_with_distortion() -> None:
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(-1.5, 1.5, (64, 17, 2)), rng.uniform(3, 6, (64, 17, 1))], -1)
    intr = np.tile(np.array(H36M_LIKE), (64, 1))
    pix = project_to_pixels(torch.from_numpy(pts), torch.from_numpy(intr)).numpy()
    rays = undistort_to_rays(pix, intr)
    np.testing.assert_allclose(rays, pts[..., :2] / pts[..., 2:], atol=2e-6)
    # Without the iterations the distortion shows: the test can fail.
    assert np.abs(undistort_to_rays(pix, intr, iterations=0) - rays).max() > 1e-3


@pytest.mark.parametrize("ranges", [TRAIN_VIEWS, UNSEEN_VIEWS], ids=["train", "unseen"])
def test_virtual_cameras_stay_in_their_ranges(ranges: ViewRanges) -> None:
    n = 4000
    world = poses(n)
    gen = torch.Generator().manual_seed(1)
    views = place_in_view(world, ranges, gen)
    intr = views.intrinsics.double()
    hfov = 2 * torch.rad2deg(torch.atan(intr[:, 9] / 2 / intr[:, 0]))
    assert hfov.min() >= ranges.hfov_deg[0] - 1e-3 and hfov.max() <= ranges.hfov_deg[1] + 1e-3
    assert hfov.max() - hfov.min() > 0.8 * (ranges.hfov_deg[1] - ranges.hfov_deg[0])
    aspects = torch.unique((intr[:, 9] / intr[:, 10] * 1000).round() / 1000)
    assert len(aspects) == 4
    points = views.pose3d + views.root[:, None]
    assert (views.root[:, 2] >= MIN_DEPTH_M - 1e-4).all() and (points[..., 2] > 0.5).all()
    # Root-relative poses keep their bone lengths (a rotation, no scaling).
    bone = (world[:, 10] - world[:, 0]).norm(dim=-1)
    torch.testing.assert_close((views.pose3d[:, 10] - views.pose3d[:, 0]).norm(dim=-1), bone)
    # Elevation: the camera's pitch, read from where world "up" points in the camera frame.
    up = torch.einsum("nij,j->ni", _rotations(world, views.pose3d), torch.tensor([0.0, 0, 1]))
    pitch = torch.rad2deg(torch.asin((-up[:, 2]).clamp(-1, 1)))
    lo, hi = ranges.pitch_deg
    assert pitch.min() >= lo - 0.5 and pitch.max() <= hi + 0.5
    assert pitch.max() - pitch.min() > 0.8 * (hi - lo)
    pix = project_to_pixels(points, views.intrinsics)
    inside = inside_frame(pix, views.intrinsics)
    if ranges.keep_inside:  # everyone who fits in the frame is moved into it
        fits = ((pix.amax(1) - pix.amin(1)) < 0.95 * views.intrinsics[:, 9:11]).all(-1)
        assert fits.float().mean() > 0.9
        assert inside[fits].all(1).float().mean() > 0.99
    else:  # people cut by the frame are part of the training views
        assert 0.02 < (~inside.all(1)).float().mean() < 0.5
    again = place_in_view(world, ranges, torch.Generator().manual_seed(1))
    assert torch.equal(again.intrinsics, views.intrinsics)


def _rotations(world: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """World -> camera rotation of each pose, solved from its joints (Kabsch)."""
    h = torch.einsum("nki,nkj->nij", world.double(), cam.double())
    u, _, vt = torch.linalg.svd(h)
    d = torch.sign(torch.linalg.det(vt.transpose(1, 2) @ u.transpose(1, 2)))
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return (vt.transpose(1, 2) @ fix @ u.transpose(1, 2)).float()


def test_detector_error_model_recovers_known_error() -> None:
    """Errors made with known swaps, outliers and spread are measured back by the fit."""
    rng = np.random.default_rng(3)
    n = 20000
    gt = rest_pose()[None, :, [0, 2]] * np.array([400.0, -400.0]) + rng.uniform(300, 700, (n, 1, 2))
    size = person_size(torch.from_numpy(gt)).numpy()
    # Student-t spread (4 degrees of freedom, std 0.02 of the person's size), the model's family.
    t = rng.normal(0, 1, gt.shape) * np.sqrt(2 / rng.chisquare(4, gt.shape[:2]))[..., None]
    det = gt + 0.02 * t * size[:, None, None]
    det[:, 13] += 0.01 * size[:, None]  # a bias on the left wrist
    a, b = SWAP_PAIRS[2]
    swap = rng.random(n) < 0.1
    det[swap, a], det[swap, b] = gt[swap, b].copy(), gt[swap, a].copy()
    far = rng.random(n) < 0.05
    det[far, 16] += 0.5 * size[far, None]
    model = DetectorErrorModel.fit(gt, det)
    assert model.swap_rate[2] == pytest.approx(0.1, abs=0.01)
    assert max(model.swap_rate[:2] + model.swap_rate[3:]) < 0.005
    assert model.outlier_rate[16] == pytest.approx(0.05, abs=0.01)
    assert model.bias[13][0] == pytest.approx(0.01, abs=0.002)
    assert math.sqrt(model.cov[5][0][0]) == pytest.approx(0.02, rel=0.1)
    # Applied, it reproduces the error it was fitted to (median and far tail).
    made = model.apply(torch.from_numpy(gt), gen=torch.Generator().manual_seed(0)).numpy()
    err = np.linalg.norm((made - gt) / size[:, None, None], axis=-1)
    real = np.linalg.norm((det - gt) / size[:, None, None], axis=-1)
    assert np.median(err) == pytest.approx(np.median(real), rel=0.15)
    assert np.percentile(err, 99) == pytest.approx(np.percentile(real, 99), rel=0.3)
    clean = model.apply(torch.from_numpy(gt), strength=0.0).numpy()
    np.testing.assert_array_equal(clean, gt)


def test_missing_joints_follow_the_occlusion_kinds() -> None:
    gen = torch.Generator().manual_seed(0)
    vis = random_visibility(20000, gen, p_occluded=0.5)
    lost = (~vis).sum(1)
    assert (lost > 0).float().mean() == pytest.approx(0.5, abs=0.02)
    assert lost.max() <= max(MAX_RANDOM_MISSING, max(len(s) for s in SIDES))
    # Extremities go missing more often than the trunk.
    share = (~vis).float().mean(0)
    assert share[13] > 2 * share[8] and share[3] > 2 * share[7]
    limbs = {tuple(torch.nonzero(~v).flatten().tolist()) for v in vis if (~v).sum() == 3}
    assert any(limb in limbs for limb in LIMBS)
    exact = drop_joints(100, 4, gen)
    assert ((~exact).sum(1) == 4).all()


def test_perspective_normalization_centres_scales_and_hides_missing_joints() -> None:
    d = torch.nn.functional.normalize(torch.tensor([[0.6, -0.3, 1.0], [0.0, 0.0, 1.0]]), dim=-1)
    rot = look_at_rotation(d)
    torch.testing.assert_close(torch.einsum("nij,nj->ni", rot, d), torch.tensor([[0.0, 0, 1]] * 2))
    torch.testing.assert_close(rot @ rot.transpose(1, 2), torch.eye(3).expand(2, 3, 3))
    pts = poses(8) + torch.tensor([1.5, -0.5, 4.0])  # off-centre, in front of the camera
    rays = pts[..., :2] / pts[..., 2:]
    vis = torch.ones(8, 17, dtype=torch.bool)
    vis[:4, [3, 13]] = False
    x, _ = perspective_normalize(encode_rays(rays, vis))
    seen = x[..., 2:] > 0
    mean = (x[..., :2] * seen).sum(1) / seen.sum(1)
    torch.testing.assert_close(mean, torch.zeros(8, 2), atol=1e-5, rtol=0)
    rms = ((x[..., :2].square().sum(-1, keepdim=True) * seen).sum(1) / seen.sum(1)).sqrt()
    torch.testing.assert_close(rms, torch.ones(8, 1), atol=1e-5, rtol=0)
    assert (x[:4, [3, 13], :] == 0).all()
    # A missing joint's coordinates do not matter; a visible one's do.
    moved = encode_rays(rays, vis)
    moved[:4, 3, :2] = 5.0
    torch.testing.assert_close(perspective_normalize(moved)[0], x)
    nothing = perspective_normalize(torch.zeros(2, 17, 3))[0]
    assert torch.isfinite(nothing).all() and (nothing == 0).all()


def test_ray_lifter_answers_in_the_camera_frame() -> None:
    """The same person seen off-centre: the virtual camera's answer is rotated back, so the
    pose comes out in the real camera frame (root-relative)."""
    torch.manual_seed(0)
    model = RayLifter(channels=32, blocks=1).eval()
    pts = poses(4) + torch.tensor([0.8, 0.2, 3.0])
    kp = encode_rays(pts[..., :2] / pts[..., 2:], torch.ones(4, 17, dtype=torch.bool))
    with torch.no_grad():
        out = model(kp)
        x, rot = perspective_normalize(kp)
        virtual = super(RayLifter, model).forward(x)
    assert (out[:, 0] == 0).all()
    torch.testing.assert_close(out, virtual @ rot)
    torch.testing.assert_close(torch.einsum("nij,nkj->nki", rot, out), virtual, atol=1e-6, rtol=0)


def _source(n: int) -> WildSource:
    world = poses(n)
    cam = world[..., [0, 2, 1]] * torch.tensor([1.0, -1.0, 1.0])  # a level camera, facing +y
    root = torch.tensor([0.0, 0.0, 4.0]).expand(n, 3)
    intr = torch.tensor([1145.0, 1144.0, 512.5, 515.5, 0, 0, 0, 0, 0, 1000, 1002]).expand(n, 11)
    rays = (cam + root[:, None])[..., :2] / (cam + root[:, None])[..., 2:] + 0.01
    return WildSource(
        world=world,
        cam_pose=cam,
        cam_root=root.clone(),
        cam_intrinsics=intr.clone(),
        cam_rotation=LEVEL_FROM_WORLD.float().expand(n, 3, 3).clone(),
        det_rays=rays,
        has_det=torch.arange(n) % 2 == 0,
        action=torch.zeros(n, dtype=torch.long),
        subject=torch.zeros(n, dtype=torch.long),
        actions=["Walking"],
        subjects=["S1"],
    )


def _model() -> DetectorErrorModel:
    return DetectorErrorModel(
        bias=[[0.0, 0.0]] * 17,
        cov=[[[4e-4, 0.0], [0.0, 4e-4]]] * 17,
        outlier_rate=[0.01] * 17,
        outlier_log_mean=[math.log(0.3)] * 17,
        outlier_log_std=[0.3] * 17,
        swap_rate=[0.01] * len(SWAP_PAIRS),
        frames=1,
    )


def test_wild_batches_mix_real_detections_h36m_and_virtual_cameras() -> None:
    torch.manual_seed(0)
    src = _source(4000)
    mix = WildMix(real_detections=0.3, h36m_cameras=0.2, occluded=0.5)
    batch = WildBatcher(_model(), mix)(src)
    kp = batch.kp2d
    assert kp.shape == (4000, 17, 3)
    vis = kp[..., 2]
    assert set(vis.unique().tolist()) <= {0.0, 1.0}
    assert (kp[..., :2][vis == 0] == 0).all()
    assert 0.6 < vis.mean() < 0.95
    # Rows that kept their real detections carry them exactly where seen.
    kept = (kp[..., :2] == src.det_rays * vis[..., None]).all(-1).all(-1) & src.has_det
    assert kept.float().mean() == pytest.approx(0.3 * 0.5, abs=0.03)
    # Rows in a virtual camera moved away from the level 4 m camera.
    virtual = (batch.root - src.cam_root).norm(dim=-1) > 1e-6
    assert virtual.float().mean() == pytest.approx(1 - 0.3 * 0.5 - 0.2, abs=0.04)
    # Targets are the root-relative poses in the camera that saw them.
    points = batch.pose3d + batch.root[:, None]
    seen = points[..., :2] / points[..., 2:]
    err = ((kp[..., :2] - seen) * vis[..., None]).norm(dim=-1).sum() / vis.sum()
    assert err < 0.05
    assert (batch.pose3d[:, 0] == 0).all()
