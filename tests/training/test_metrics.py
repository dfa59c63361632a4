"""Protocol 1 and 2 metrics and the per-action averaging of the evaluation."""

from __future__ import annotations

import math

import torch
from torch import nn

from poseaug_training.data.pairs import PoseSet
from poseaug_training.evaluation.metrics import mpjpe, pa_mpjpe, procrustes_align
from poseaug_training.evaluation.protocols import evaluate


def _rot_z(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_mpjpe_is_mean_euclidean_distance() -> None:
    target = torch.zeros(2, 17, 3)
    pred = target.clone()
    pred[0, :, 0] = 0.03  # every joint 3 cm off
    pred[1, 5] = torch.tensor([0.0, 0.17, 0.0])  # one joint 17 cm off
    torch.testing.assert_close(mpjpe(pred, target), torch.tensor([0.03, 0.01]))


def test_pa_mpjpe_removes_similarity_transforms_only() -> None:
    torch.manual_seed(0)
    target = torch.randn(8, 17, 3) * 0.3
    moved = 1.7 * target @ _rot_z(1.1).T + torch.tensor([0.2, -0.4, 3.0])
    assert pa_mpjpe(moved, target).max() < 1e-5
    assert mpjpe(moved, target).min() > 0.1
    noisy = target + torch.randn_like(target) * 0.02
    assert pa_mpjpe(noisy, target).mean() > 0.005
    # A mirror image is not a similarity transform: protocol 2 must not undo it.
    mirrored = target * torch.tensor([-1.0, 1.0, 1.0])
    assert pa_mpjpe(mirrored, target).mean() > 0.05


def test_procrustes_aligned_pose_is_closest() -> None:
    torch.manual_seed(1)
    target = torch.randn(4, 17, 3)
    pred = target + torch.randn_like(target) * 0.1
    aligned = procrustes_align(pred, target)
    assert torch.all(mpjpe(aligned.float(), target) <= mpjpe(pred, target) + 1e-6)


class _Constant(nn.Module):
    """Predicts a fixed pose: errors are then known exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, kp2d: torch.Tensor) -> torch.Tensor:
        return torch.zeros(kp2d.shape[0], 17, 3) + self.w


def test_evaluation_averages_per_action_then_over_actions() -> None:
    # Action 0 has 3 poses with error 10 mm, action 1 one pose with error 50 mm:
    # the per-action average is 30 mm, the per-pose one would be 20 mm.
    pose3d = torch.zeros(4, 17, 3)
    pose3d[:3, :, 0] = 0.010
    pose3d[3, :, 0] = 0.050
    data = PoseSet(
        pose3d=pose3d,
        root=torch.zeros(4, 3),
        kp2d=torch.zeros(4, 17, 2),
        intrinsics=torch.zeros(4, 11),
        action=torch.tensor([0, 0, 0, 1]),
        subject=torch.zeros(4, dtype=torch.long),
        actions=["A", "B"],
        subjects=["S9"],
    )
    result = evaluate(_Constant(), data, batch_size=3)
    assert abs(result.mpjpe_mm - 30.0) < 1e-3
    assert abs(result.per_action["A"]["mpjpe"] - 10.0) < 1e-3
    assert result.poses == 4
    assert len(result.per_joint_mm) == 17
