"""Per-pose errors of the field's two protocols, vectorized over a batch."""

from __future__ import annotations

import torch


def mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Protocol 1: mean Euclidean joint error per pose [N] (inputs [N, J, 3], root-relative)."""
    return (pred - target).norm(dim=-1).mean(dim=-1)


def per_joint_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Euclidean error of every joint [N, J]."""
    return (pred - target).norm(dim=-1)


def procrustes_align(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Align each predicted pose to its target by the best similarity (scale, rotation,
    translation), as protocol 2 prescribes. Reflections are excluded."""
    pred = pred.double()
    target = target.double()
    mu_p = pred.mean(dim=1, keepdim=True)
    mu_t = target.mean(dim=1, keepdim=True)
    p0 = pred - mu_p
    t0 = target - mu_t
    norm_p = p0.norm(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    norm_t = t0.norm(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    p0 = p0 / norm_p
    t0 = t0 / norm_t
    h = p0.transpose(1, 2) @ t0  # [N, 3, 3]
    u, s, vt = torch.linalg.svd(h)
    d = torch.sign(torch.linalg.det(vt.transpose(1, 2) @ u.transpose(1, 2)))
    fix = torch.ones_like(s)
    fix[:, -1] = d
    rot = vt.transpose(1, 2) @ torch.diag_embed(fix) @ u.transpose(1, 2)  # [N, 3, 3]
    scale = (s * fix).sum(dim=1)[:, None, None] * norm_t / norm_p
    aligned = scale * (pred - mu_p) @ rot.transpose(1, 2) + mu_t
    return aligned


def pa_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Protocol 2: MPJPE after per-pose similarity Procrustes alignment [N]."""
    return mpjpe(procrustes_align(pred, target), target.double()).float()
