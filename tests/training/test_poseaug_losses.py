"""LSGAN, error-feedback and regularizer losses."""

from __future__ import annotations

import torch

from poseaug_training.poseaug.augmentor import Augmentor
from poseaug_training.poseaug.losses import (
    FEEDBACK_JOINT_GROUPS,
    FEEDBACK_JOINT_WEIGHTS,
    GeneratorLossWeights,
    bone_angle_range_loss,
    bone_length_limit_loss,
    feedback_loss,
    feedback_loss_exp,
    feedback_pose_error,
    feedback_terms,
    generator_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    range_loss,
    regularizer_terms,
)
from poseaug_training.poseaug.schedules import HardRatioSchedule
from poseaug_training.skeleton import NUM_BONES
from tests.training.poseaug_helpers import random_poses, random_roots


def test_lsgan_discriminator_loss_values_and_direction():
    ones, zeros = torch.ones(6, 5), torch.zeros(6, 5)
    assert float(lsgan_discriminator_loss(ones, zeros)) == 0.0
    assert float(lsgan_discriminator_loss(zeros, ones)) == 1.0
    real = torch.full((4, 1), 0.5, requires_grad=True)
    fake = torch.full((4, 1), 0.5, requires_grad=True)
    lsgan_discriminator_loss(real, fake).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()  # push real up, fake down


def test_lsgan_generator_loss_pushes_fakes_towards_real():
    assert float(lsgan_generator_loss(torch.ones(3, 1))) == 0.0
    fake = torch.zeros(3, 1, requires_grad=True)
    loss = lsgan_generator_loss(fake)
    assert abs(loss.item() - 0.5) < 1e-7
    loss.backward()
    assert (fake.grad < 0).all()
    with_real = lsgan_generator_loss(torch.zeros(3, 1), torch.ones(3, 1))
    assert abs(float(with_real) - 1.0) < 1e-7  # official logging value adds 0.5 * D(real)^2


def test_range_loss_zero_inside_band_squared_outside():
    v = torch.tensor([1.0, 2.5, 3.4, 5.0])
    assert float(range_loss(v[1:3], 3.0, 0.5)) == 0.0
    assert abs(float(range_loss(v, 3.0, 0.5)) - (4.0 + 4.0) / 4) < 1e-6


def test_feedback_loss_minimum_at_beta_times_source_error():
    err_src = torch.full((8, 3), 0.04)
    beta, tol = 4.0, 1.0
    grid = torch.linspace(0.0, 0.4, 401)
    losses = torch.stack(
        [feedback_loss(torch.full((8, 3), float(a)), err_src, beta, tol) for a in grid]
    )
    target = beta * 0.04
    at_target = feedback_loss(torch.full((8, 3), target), err_src, beta, tol)
    assert float(at_target) == 0.0
    zero = grid[losses == 0]
    assert abs(float(zero.min()) - (beta - tol) * 0.04) < 2e-3
    assert abs(float(zero.max()) - (beta + tol) * 0.04) < 2e-3
    # Farther outside the band, larger loss, on both sides.
    assert losses[0] > losses[50] > 0 and losses[-1] > losses[-50] > 0
    # Gradient pulls an over-hard sample back.
    err = torch.full((2, 3), 0.4, requires_grad=True)
    feedback_loss(err, torch.full((2, 3), 0.04), beta, tol).backward()
    assert (err.grad > 0).all()


def test_feedback_loss_exp_minimum_at_beta_times_source_error():
    err_src = torch.full((4, 3), 0.05)
    beta = 3.0
    grid = torch.linspace(0.0, 0.5, 501)
    losses = torch.stack(
        [feedback_loss_exp(torch.full((4, 3), float(a)), err_src, beta) for a in grid]
    )
    assert abs(float(grid[losses.argmin()]) - beta * 0.05) < 1.5e-3
    assert float(losses.min()) < 1e-3


def test_feedback_pose_error_groups_and_root_relativity():
    torch.manual_seed(0)
    target = random_poses(3) + random_roots(3)[:, None]
    pred = target - target[:, :1]
    assert float(feedback_pose_error(pred, target).abs().max()) < 1e-6
    off = pred.clone()
    off[:, 1, 0] += 0.1  # right hip, weight 5, first group of 4 joints
    err = feedback_pose_error(off, target)
    assert err.shape == (3, 3)
    expected = FEEDBACK_JOINT_WEIGHTS[1] * 0.1 / len(FEEDBACK_JOINT_GROUPS[0])
    torch.testing.assert_close(err[:, 0], torch.full((3,), expected))
    assert float(err[:, 1:].abs().max()) < 1e-6


def test_regularizers_on_bone_angle_and_length_changes():
    small = torch.zeros(4, NUM_BONES)  # no BA change is "too easy": penalized
    in_band = torch.full((4, NUM_BONES), 0.2)
    large = torch.full((4, NUM_BONES), 0.6)
    assert float(bone_angle_range_loss(in_band)) == 0.0
    assert float(bone_angle_range_loss(small)) > 0.0
    assert float(bone_angle_range_loss(large)) > 0.0
    assert float(bone_length_limit_loss(torch.full((4, NUM_BONES), 1.08))) == 0.0
    ratios = torch.full((4, NUM_BONES), 1.15)
    ratios[:, 7] = 1.0  # the spine->thorax group BL keeps fixed
    over = bone_length_limit_loss(ratios)
    assert abs(float(over) - 0.15**2 * 9 / 10) < 1e-5  # the fixed group stays at 0 change
    assert float(bone_length_limit_loss(torch.full((4, NUM_BONES), 1.15), limit=0.2)) == 0.0


def test_regularizer_terms_and_generator_loss_from_augmentor_output():
    torch.manual_seed(0)
    aug = Augmentor().train()
    pose, root = random_poses(8), random_roots(8)
    out = aug(pose, root, *aug.sample_noise(8))
    reg = regularizer_terms(pose, out)
    assert set(reg) == {"ba", "bl"} and all(torch.isfinite(v) for v in reg.values())
    adv2d, adv3d = torch.tensor(0.2), torch.tensor(0.3)
    w = GeneratorLossWeights()
    warmup = generator_loss(adv2d, adv3d, reg)
    expected = w.adv_2d * 0.2 + w.adv_3d * 0.3 + w.regularizer * (reg["ba"] + reg["bl"])
    torch.testing.assert_close(warmup, expected)
    fb = {"ba": torch.tensor(1.0), "rt": torch.tensor(2.0)}
    full = generator_loss(adv2d, adv3d, reg, fb)
    torch.testing.assert_close(full, expected + w.feedback_ba * 1.0 + w.feedback_rt * 2.0)
    full.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in aug.ba.parameters())


def test_feedback_terms_follow_the_schedule_ops():
    err_src = torch.full((4, 3), 0.05)
    err_aug = {
        op: torch.full((4, 3), 0.05 * k) for op, k in (("ba", 4.0), ("bl", 9.0), ("rt", 17.0))
    }
    terms = feedback_terms(err_src, err_aug, epoch_fraction=0.5)
    assert set(terms) == {"ba", "rt"}
    assert float(terms["ba"]) == 0.0 and float(terms["rt"]) == 0.0  # inside the official bands
    paper = feedback_terms(err_src, err_aug, 0.0, HardRatioSchedule.paper())
    assert set(paper) == {"ba", "bl", "rt"}
    assert float(paper["bl"]) > 0.0  # beta = 2 at the start; 9 is far off
