"""The camera-aware generation's augmentor: RT only about gravity, the joint-limit penalty, and
the novelty stand-ins (other bodies, held-out actions) from training to a bundle and back."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from poseaug_training.cli import main
from poseaug_training.data.body_shapes import UNSEEN_BODIES, retarget, sample_bodies
from poseaug_training.evaluation.novelty import canonical_poses
from poseaug_training.export.augmentor_onnx import augmentor_parity, export_augmentor
from poseaug_training.poseaug.augmentor import Augmentor
from poseaug_training.poseaug.bones import bone_vectors
from poseaug_training.poseaug.joint_limits import joint_angles, range_of_motion_excess
from poseaug_training.poseaug.rotation_translation_op import axis_angle_to_matrix
from poseaug_training.train.checkpoint import load_checkpoint
from tests.support.poses import STANDING, bend_knees, standing_poses
from tests.training.bundle_checks import assert_bundle_gives_back
from tests.training.test_wild_runs import WILD

UP = torch.tensor([0.0, -1.0, 0.0])


def sources(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    poses = torch.from_numpy(standing_poses(n, seed=3))
    return poses, torch.tensor([0.3, -0.2, 4.0]).expand(n, 3).clone()


def test_gravity_rt_tilts_at_most_its_bound_and_keeps_the_root() -> None:
    torch.manual_seed(0)
    aug = Augmentor(rt_mode="gravity", max_tilt_deg=25.0).eval()
    poses, root = sources(256)
    noise = aug.sample_noise(256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for scale in (1.0, 30.0):  # large noise drives the tanh to its bound
            out = aug(poses, root, noise[0], noise[1], noise[2] * scale)
            turned = axis_angle_to_matrix(out.rotation) @ UP
            tilt = torch.rad2deg(torch.acos((turned @ UP).clamp(-1, 1)))
            assert tilt.max() <= 25.0 + 1e-3
            assert torch.equal(out.translation, root)
            assert torch.allclose(out.pose_rt[:, 0], root)
        assert tilt.max() > 20.0  # the bound is reached
        yaw_spread = out.rotation[:, 1].abs().max()
        assert yaw_spread > 0.5  # turns about the vertical are free
        off = aug(poses, root, *noise, torch.tensor([1.0, 1.0, 0.0]))
        assert torch.equal(off.rotation, torch.zeros_like(off.rotation))
        assert torch.allclose(off.pose_rt, off.pose_bl + root[:, None])


def test_gravity_augmentor_round_trips_through_state_and_onnx(tmp_path: Path) -> None:
    torch.manual_seed(1)
    aug = Augmentor(rt_mode="gravity", max_tilt_deg=40.0, bl_limit=0.3)
    assert not hasattr(aug.rt, "translation_net")
    back = Augmentor.from_state_dict(aug.state_dict())
    assert back.config["rt_mode"] == "gravity"
    assert back.config["max_tilt_deg"] == pytest.approx(40.0)
    assert Augmentor(**back.config).config == back.config
    path = export_augmentor(aug.eval(), tmp_path / "augmentor.onnx")
    assert augmentor_parity(aug, path) <= 1e-4
    assert Augmentor().config.get("rt_mode") is None  # the first bundles' config is unchanged


def test_joint_limit_penalty_is_zero_inside_and_pulls_back_outside() -> None:
    inside = torch.from_numpy(standing_poses(8))
    assert torch.equal(range_of_motion_excess(inside), torch.zeros(8))
    bent_back = torch.tensor(bend_knees(STANDING, -30.0), requires_grad=True)
    excess = range_of_motion_excess(bent_back[None])
    assert excess.item() == pytest.approx(2 * math.radians(20.0) ** 2, rel=1e-3)
    excess.sum().backward()
    assert bent_back.grad[[3, 6]].abs().sum() > 0  # the ankles are pulled


def test_other_bodies_keep_every_joint_angle() -> None:
    gen = torch.Generator().manual_seed(0)
    factors = sample_bodies(500, UNSEEN_BODIES, gen)
    poses = torch.from_numpy(standing_poses(500, seed=2)).double()
    poses = poses.clone()
    poses[:, [3, 6]] += 0.05  # bend things a little so angles are not all zero
    bodies = retarget(poses, factors)
    before, after = joint_angles(poses), joint_angles(bodies)
    for name in before:
        torch.testing.assert_close(after[name], before[name], atol=1e-6, rtol=0)
    lengths = bone_vectors(bodies).norm(dim=-1) / bone_vectors(poses).norm(dim=-1)
    torch.testing.assert_close(lengths, factors, atol=1e-9, rtol=1e-9)
    thigh = factors[:, 1]
    children = thigh < 1.50 / 1.70 * 0.99  # shorter than the shortest adult's thighs
    assert 0.3 < children.double().mean() < 0.5
    assert factors.min() > 1.00 / 1.70 * 0.9 * 0.92 - 1e-9
    head = factors[:, 9] / factors[:, 1]  # head segment against thigh
    assert head.max() > 1.3  # young children's bigger heads


def test_canonical_poses_ignore_heading_and_body_size() -> None:
    base = torch.from_numpy(standing_poses(1, seed=0)[0]).double()
    world = base[:, [0, 2, 1]] * torch.tensor([1.0, 1.0, -1.0])  # camera -> world (z up)
    world[3, 1] += 0.2  # lift one foot forward
    angle = torch.tensor(1.1)
    c, s = torch.cos(angle), torch.sin(angle)
    turned = world @ torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]).double().T
    bigger = retarget(turned[None], torch.full((1, 16), 1.2, dtype=torch.float64))[0]
    lengths = bone_vectors(world).norm(dim=-1)
    a = canonical_poses(world[None], lengths)
    b = canonical_poses(bigger[None], lengths)
    torch.testing.assert_close(a, b, atol=1e-7, rtol=0)


def test_gravity_poseaug_without_an_action_trains_exports_and_meets_the_stand_ins(
    fake_h36m: Path, tmp_path: Path
) -> None:
    data = ["--data", str(fake_h36m)]
    pre, pa = tmp_path / "pre", tmp_path / "pa"
    held = ["--exclude-actions", "Sitting"]
    assert main(["baseline", *data, *WILD, *held, "--out", str(pre), "--epochs", "1"]) == 0
    args = ["poseaug", *data, *WILD, *held, "--init", str(pre / "checkpoint.pt")]
    args += ["--epochs", "2", "--warmup-epochs", "1", "--out", str(pa), "--rt-mode", "gravity"]
    args += ["--max-tilt-deg", "45", "--w-rom", "10", "--ba-range", "0.1,0.08", "--bl-limit", "0.3"]
    assert main(args) == 0
    state = load_checkpoint(pa / "checkpoint.pt")
    cfg = state["config"]
    assert cfg["rt_mode"] == "gravity" and cfg["exclude_actions"] == ["Sitting"]
    assert cfg["w_rom"] == 10 and list(cfg["ba_range"]) == [0.1, 0.08]
    assert 0 <= state["history"][-1]["outside_rom_ba"] <= 1

    ev = tmp_path / "eval"
    tests = ["--tests", "unseen_actions,unseen_bodies", "--unseen-stride", "3"]
    assert (
        main(
            ["wild-eval", *data, "--model", f"pa={pa / 'checkpoint.pt'}", "--out", str(ev), *tests]
        )
        == 0
    )
    results = json.loads((ev / "pa" / "evaluation.json").read_text())["results"]
    assert set(results) == {"unseen_actions", "unseen_bodies"}
    assert results["unseen_actions"]["per_action"].keys() == {"Sitting"}
    assert results["unseen_bodies"]["poses"] > results["unseen_actions"]["poses"]

    bundle = tmp_path / "bundle"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(pa / "checkpoint.pt"),
                "--out",
                str(bundle),
                "--name",
                "g",
            ]
        )
        == 0
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["augmentor"]["config"]["rt_mode"] == "gravity"
    assert manifest["augmentor"]["config"]["max_tilt_deg"] == pytest.approx(45.0)
    restored = assert_bundle_gives_back(bundle, state)
    assert "rt.max_tilt" in restored["extra"]["augmentor"]


def test_unknown_held_out_actions_are_refused(fake_h36m: Path, tmp_path: Path) -> None:
    args = ["baseline", "--data", str(fake_h36m), *WILD, "--out", str(tmp_path / "x")]
    assert main([*args, "--exclude-actions", "Siting", "--epochs", "1"]) == 2
    assert not np.any([p.name == "checkpoint.pt" for p in tmp_path.rglob("*")])
