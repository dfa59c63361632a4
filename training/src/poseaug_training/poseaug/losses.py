"""PoseAug losses: LSGAN, error feedback, and the regularizers of the augmentor.

Formulations follow the official code (jfzhang95/PoseAug), cited per function:
- adversarial: LSGAN with ``nn.MSELoss`` against 1 (real) / 0 (fake), halved
  (function_poseaug/model_gan_train.py ``get_adv_loss``, ``train_dis``);
- feedback: the ratio err_aug / err_src of the frozen estimator's per-sample, per-joint-group
  errors must lie within ``beta +- tolerance``; squared distance outside the band
  (model_gan_train.py ``get_feedback_loss`` / ``fix_hardratio`` with utils/loss.py
  ``diff_range_loss``). The paper's |1 - exp(err_aug - beta err_src)| exists in the official
  code as ``fix_hard_ratio_loss`` but is unused; it is here as ``feedback_loss_exp``;
- regularizers (model_gan_train.py ``get_diff_loss``): the mean per-bone 1 - cos of BA must
  stay within 0.205 +- 0.165 (``--ba_range_m``, ``--ba_range_w``: neither too small nor too
  large a change), and each BL group change must stay within +-0.1 (``--blr_limit``,
  utils/loss.py ``rectifiedL2loss``: the squared change where it exceeds the limit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from poseaug_training.poseaug.augmentor import AugmentorOutput
from poseaug_training.poseaug.bone_angle_op import bone_angle_change
from poseaug_training.poseaug.bone_length_op import group_changes
from poseaug_training.poseaug.schedules import DEFAULT_SCHEDULE, HardRatioSchedule

# Official feedback error (get_posenet_loss): per-joint L2 errors weighted (hips and
# shoulders 5, knees and elbows 2, others 1) and averaged in three groups. Mapped to H36M-17;
# neck/nose (absent from the official 16 joints) gets weight 1 and no group.
FEEDBACK_JOINT_WEIGHTS: tuple[float, ...] = (
    1, 5, 2, 1, 5, 2, 1, 1, 1, 1, 1, 5, 2, 1, 5, 2, 1,
)  # fmt: skip
FEEDBACK_JOINT_GROUPS: tuple[tuple[int, ...], ...] = (
    (1, 4, 11, 14),  # hips, shoulders
    (2, 5, 10, 12, 15),  # knees, head, elbows
    (3, 6, 13, 16),  # ankles, wrists
)
BA_RANGE_CENTER = 0.205  # --ba_range_m
BA_RANGE_WIDTH = 0.165  # --ba_range_w
BL_LIMIT = 0.1  # --blr_limit


@dataclass(frozen=True)
class GeneratorLossWeights:
    """Official weights of the augmentor loss (function_poseaug/config.py)."""

    adv_2d: float = 1.0  # --gloss_factord2d
    adv_3d: float = 6.0  # --gloss_factord3d
    regularizer: float = 3.0  # --gloss_factordiff (BA range + BL limit)
    feedback_ba: float = 0.1  # --gloss_factorfeedback_ba
    feedback_bl: float = 0.1  # no official BL feedback; used only if the schedule lists 'bl'
    feedback_rt: float = 0.01  # --gloss_factorfeedback_rt
    rom: float = 0.0  # joint range-of-motion penalty (joint_limits.py; not in the official code)

    def feedback(self, op: str) -> float:
        return float(getattr(self, f"feedback_{op}"))


def _mse_to(scores: Tensor, target: float) -> Tensor:
    return ((scores - target) ** 2).mean()


def lsgan_discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2); scores of any shape, e.g. [N,5]."""
    return 0.5 * (_mse_to(real_scores, 1.0) + _mse_to(fake_scores, 0.0))


def lsgan_generator_loss(fake_scores: Tensor, real_scores: Tensor | None = None) -> Tensor:
    """0.5 * mean (D(fake) - 1)^2, the augmentor's adversarial loss.

    The official ``get_adv_loss`` also adds 0.5 * mean D(real)^2, which has no gradient for
    the augmentor; pass ``real_scores`` to get the same value for logging.
    """
    loss = 0.5 * _mse_to(fake_scores, 1.0)
    if real_scores is not None:
        loss = loss + 0.5 * _mse_to(real_scores, 0.0)
    return loss


def range_loss(value: Tensor, target: Tensor | float, tolerance: float) -> Tensor:
    """Mean of (value - target)^2 over entries farther than ``tolerance`` from ``target``.

    Zero inside the band; official ``diff_range_loss`` (utils/loss.py).
    """
    sq = (value - target) ** 2
    return torch.where(sq > tolerance**2, sq, torch.zeros_like(sq)).mean()


def feedback_pose_error(predicted: Tensor, target: Tensor) -> Tensor:
    """Per-sample grouped weighted errors [N,3] of root-relative predictions [N,17,3].

    ``target`` is made root-relative here (the augmented targets are absolute).
    """
    target = target - target[:, :1, :]
    weights = torch.tensor(FEEDBACK_JOINT_WEIGHTS, dtype=predicted.dtype, device=predicted.device)
    err = torch.linalg.vector_norm(predicted - target, dim=-1) * weights
    return torch.stack([err[:, list(g)].mean(-1) for g in FEEDBACK_JOINT_GROUPS], dim=-1)


def feedback_loss(
    err_aug: Tensor, err_src: Tensor, beta: float, tolerance: float, eps: float = 1e-8
) -> Tensor:
    """Official feedback: ``range_loss(err_aug / err_src, beta, tolerance)``.

    Zero while the augmented pair is between beta - tolerance and beta + tolerance times as
    hard as the source pair; pushes the ratio back into that band otherwise.
    """
    return range_loss(err_aug / err_src.clamp_min(eps), beta, tolerance)


def feedback_loss_exp(err_aug: Tensor, err_src: Tensor, beta: float) -> Tensor:
    """Paper form: mean |1 - exp(err_aug - beta * err_src)|, zero at err_aug = beta * err_src.

    Official ``fix_hard_ratio_loss`` (defined, not used, in model_gan_train.py).
    """
    return (1.0 - torch.exp(err_aug - beta * err_src)).abs().mean()


def feedback_terms(
    err_src: Tensor,
    err_aug: Mapping[str, Tensor],
    epoch_fraction: float,
    schedule: HardRatioSchedule = DEFAULT_SCHEDULE,
) -> dict[str, Tensor]:
    """Unweighted feedback loss per op in ``schedule.feedback_ops``.

    ``err_aug[op]`` is :func:`feedback_pose_error` of the estimator on that op's augmented
    pair (official: 'ba' = pose_ba projected, 'rt' = pose_rt projected); ``err_src`` on the
    source pair. Both come from the estimator with frozen parameters.
    """
    terms = {}
    for op in schedule.feedback_ops:
        ratio = schedule.ratio(op)
        terms[op] = feedback_loss(err_aug[op], err_src, ratio.at(epoch_fraction), ratio.tolerance)
    return terms


def bone_angle_range_loss(
    change: Tensor, center: float = BA_RANGE_CENTER, width: float = BA_RANGE_WIDTH
) -> Tensor:
    """Per-sample mean of per-bone 1 - cos [N,16] kept within ``center +- width``."""
    return range_loss(change.mean(-1), center, width)


def bone_length_limit_loss(ratios: Tensor, limit: float = BL_LIMIT) -> Tensor:
    """Group changes of per-bone ratios [N,16]: squared change where |change| > limit."""
    return range_loss(group_changes(ratios), 0.0, limit)


def regularizer_terms(
    source: Tensor,
    out: AugmentorOutput,
    ba_center: float = BA_RANGE_CENTER,
    ba_width: float = BA_RANGE_WIDTH,
    bl_limit: float = BL_LIMIT,
) -> dict[str, Tensor]:
    """Unweighted regularizers {'ba', 'bl'} of one augmentor pass on ``source`` [N,17,3]."""
    return {
        "ba": bone_angle_range_loss(bone_angle_change(source, out.pose_ba), ba_center, ba_width),
        "bl": bone_length_limit_loss(out.bone_length_ratios, bl_limit),
    }


def generator_loss(
    adv_2d: Tensor,
    adv_3d: Tensor,
    regularizers: Mapping[str, Tensor],
    feedback: Mapping[str, Tensor] | None = None,
    weights: GeneratorLossWeights | None = None,
) -> Tensor:
    """Weighted augmentor loss; pass ``feedback=None`` during the GAN-only warm-up epochs.

    ``regularizers`` holds 'ba' and 'bl' (weighted by ``regularizer``) and optionally 'rom'
    (weighted by ``rom``)."""
    w = weights or GeneratorLossWeights()
    regs = sum(v for k, v in regularizers.items() if k != "rom")
    total = w.adv_2d * adv_2d + w.adv_3d * adv_3d + w.regularizer * regs
    if "rom" in regularizers:
        total = total + w.rom * regularizers["rom"]
    for op, term in (feedback or {}).items():
        total = total + w.feedback(op) * term
    return total
