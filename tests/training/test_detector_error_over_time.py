"""A detector's error persists over consecutive frames: the fitted correlation over time, tracks
replayed with it, and clips that carry it. Small arrays made here; no dataset."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from poseaug_training.data.detector_noise import SWAP_PAIRS, DetectorErrorModel
from poseaug_training.data.wild_clips import ClipBatcher
from poseaug_training.data.wild_pairs import WildMix
from tests.training.test_wild_data import rest_pose

TRACKS, FRAMES = 300, 48


def _model(**over_time: float) -> DetectorErrorModel:
    model = DetectorErrorModel(
        bias=[[0.0, 0.0]] * 17,
        cov=[[[4e-4, 0.0], [0.0, 4e-4]]] * 17,
        outlier_rate=[0.04] * 17,
        outlier_log_mean=[math.log(0.4)] * 17,
        outlier_log_std=[0.2] * 17,
        swap_rate=[0.05] * len(SWAP_PAIRS),
        frames=1,
    )
    return replace(model, **over_time)


def _tracks() -> torch.Tensor:
    """[TRACKS, FRAMES, 17, 2] pixels of a person walking slowly across the image."""
    pose = torch.from_numpy(rest_pose()[:, [0, 2]] * np.array([400.0, -400.0]))
    start = torch.rand(TRACKS, 1, 1, 2, generator=torch.Generator().manual_seed(1)) * 400 + 300
    walk = torch.arange(FRAMES, dtype=torch.float64)[None, :, None, None] * torch.tensor([2.0, 0])
    return pose + start + walk


def _lag_correlation(err: torch.Tensor, lag: int) -> float:
    """Correlation of the inlier error [N, T, 17, 2] (person-size units) `lag` frames apart."""
    inlier = err.norm(dim=-1) < 0.15
    pair = inlier[:, :-lag] & inlier[:, lag:]
    a, b = err[:, :-lag][pair], err[:, lag:][pair]
    return float((a * b).sum() / (0.5 * (a * a + b * b).sum()))


def test_a_replayed_track_keeps_each_frame_s_error_and_the_fitted_persistence() -> None:
    made = _model(steady=0.4, ar=0.8, outlier_stay=0.9, swap_stay=0.85)
    gt = _tracks()
    gen = torch.Generator().manual_seed(0)
    det = made.apply_track(gt, gen=gen)
    size = 400.0 * float(np.ptp(rest_pose()[:, [0, 2]], axis=0).max())
    err = (det - gt) / size
    # Frame by frame, the same error as `apply` draws (median and far tail).
    single = (made.apply(gt[:, 0].repeat(8, 1, 1), gen=gen) - gt[:, 0].repeat(8, 1, 1)) / size
    for q in (0.5, 0.99):
        assert float(err.norm(dim=-1).quantile(q)) == pytest.approx(
            float(single.norm(dim=-1).quantile(q)), rel=0.2
        )
    # Fitted back from the tracks, frame by frame and over time.
    gt_np, det_np = gt.numpy(), det.numpy()
    fitted = DetectorErrorModel.fit(gt_np.reshape(-1, 17, 2), det_np.reshape(-1, 17, 2))
    fitted = fitted.fit_over_time(list(zip(gt_np, det_np, strict=True)))
    for lag in (1, 4, 16):
        want = made.steady + (1 - made.steady) * made.ar**lag
        got = fitted.steady + (1 - fitted.steady) * fitted.ar**lag
        assert got == pytest.approx(want, abs=0.1), lag
        assert _lag_correlation(err, lag) == pytest.approx(want, abs=0.1), lag
    assert fitted.outlier_stay == pytest.approx(0.9, abs=0.05)
    assert fitted.swap_stay == pytest.approx(0.85, abs=0.05)
    assert np.mean(fitted.outlier_rate) == pytest.approx(0.04, abs=0.01)
    assert np.mean(fitted.swap_rate) == pytest.approx(0.05, abs=0.01)
    # A model fitted before these fields existed replays independent frames.
    over_time = ("steady", "ar", "outlier_stay", "swap_stay")
    old = DetectorErrorModel.from_dict(
        {k: v for k, v in made.to_dict().items() if k not in over_time}
    )
    iid = (old.apply_track(gt, gen=gen) - gt) / size
    assert abs(_lag_correlation(iid, 1)) < 0.05
    clean = made.apply_track(gt, strength=0.0)
    torch.testing.assert_close(clean, gt, rtol=0, atol=0)


@pytest.mark.parametrize("detector_error", ["track", "independent"])
def test_a_clip_s_detector_error_persists_over_its_frames_unless_asked_not_to(
    detector_error: str,
) -> None:
    model = _model(steady=0.5, ar=0.9, outlier_stay=0.9, swap_stay=0.9)
    mix = WildMix(detector_error=1.0, occluded=0.0)
    batcher = ClipBatcher(model, 9, 4, future_cut=0.0, mix=mix, detector_error=detector_error)
    torch.manual_seed(0)
    pose = torch.from_numpy(rest_pose()).float()[None, None]
    points = (pose + torch.tensor([0.0, 0.0, 5.0])).expand(256, 9, 17, 3).clone()
    intrinsics = torch.tensor([1000.0, 1000, 500, 500, 0, 0, 0, 0, 0, 1000, 1000]).expand(256, 11)
    seen = batcher.observe(points, intrinsics)
    assert seen.shape == (256, 9, 17, 3)
    rays = points[..., :2] / points[..., 2:]
    size = float((rays.amax(2) - rays.amin(2)).amax(-1).mean())
    err = (seen[..., :2] - rays) / size
    err[seen[..., 2] == 0] = 1.0  # joints a dropout hid are left out as outliers
    corr = _lag_correlation(err, 1)
    if detector_error == "track":
        assert corr > 0.8
    else:
        assert abs(corr) < 0.1
    with pytest.raises(ValueError, match="detector_error"):
        ClipBatcher(model, 9, 4, detector_error="sometimes")
