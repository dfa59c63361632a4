"""Evaluation as the field reports it: errors averaged per action, then over actions."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from poseaug_training.data.pairs import PoseSet
from poseaug_training.evaluation.metrics import mpjpe, pa_mpjpe, per_joint_error


@dataclass
class EvalResult:
    """Millimetres. `per_action` maps action -> {"mpjpe": x, "pa_mpjpe": y}."""

    mpjpe_mm: float
    pa_mpjpe_mm: float
    per_action: dict[str, dict[str, float]]
    per_joint_mm: list[float]
    poses: int

    def to_dict(self) -> dict:
        return {
            "mpjpe_mm": self.mpjpe_mm,
            "pa_mpjpe_mm": self.pa_mpjpe_mm,
            "per_action": self.per_action,
            "per_joint_mm": self.per_joint_mm,
            "poses": self.poses,
        }


@torch.no_grad()
def evaluate(
    model: nn.Module, data: PoseSet, batch_size: int = 8192, progress: bool = False
) -> EvalResult:
    """Protocols 1 and 2 on every pair of `data`, averaged per action then over actions."""
    p1 = torch.empty(len(data))
    p2 = torch.empty(len(data))
    joints = torch.zeros(data.pose3d.shape[1], dtype=torch.float64)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    starts = range(0, len(data), batch_size)
    for i in tqdm(starts, desc="evaluate", disable=not progress, leave=False):
        pred = model(data.kp2d[i : i + batch_size].to(device)).cpu()
        gt = data.pose3d[i : i + batch_size].cpu()
        p1[i : i + batch_size] = mpjpe(pred, gt)
        p2[i : i + batch_size] = pa_mpjpe(pred, gt)
        joints += per_joint_error(pred, gt).double().sum(dim=0)
    model.train(was_training)
    per_action = {}
    action = data.action.cpu()
    for a, name in enumerate(data.actions):
        mask = action == a
        if mask.any():
            per_action[name] = {
                "mpjpe": float(p1[mask].mean() * 1000),
                "pa_mpjpe": float(p2[mask].mean() * 1000),
            }
    return EvalResult(
        mpjpe_mm=sum(v["mpjpe"] for v in per_action.values()) / len(per_action),
        pa_mpjpe_mm=sum(v["pa_mpjpe"] for v in per_action.values()) / len(per_action),
        per_action=per_action,
        per_joint_mm=(joints / len(data) * 1000).tolist(),
        poses=len(data),
    )
