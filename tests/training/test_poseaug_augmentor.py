"""The augmentor: BA -> BL -> RT with explicit noise, op masks and gradients."""

from __future__ import annotations

import pytest
import torch

from poseaug_training.poseaug.augmentor import DEFAULT_NOISE_DIMS, Augmentor, AugmentorOutput
from poseaug_training.poseaug.bones import bone_lengths, unit_bone_vectors
from poseaug_training.skeleton import BA_FIXED_BONES, BONE_LENGTH_GROUPS, NUM_BONES, NUM_JOINTS
from tests.training.poseaug_helpers import random_poses, random_roots

N = 12


def _run(aug: Augmentor, ops: list[float] | None = None, seed: int = 0) -> tuple:
    pose, root = random_poses(N, seed), random_roots(N, seed)
    noise = aug.sample_noise(N, generator=torch.Generator().manual_seed(seed))
    ops_t = None if ops is None else torch.tensor(ops)
    return pose, root, aug(pose, root, *noise, ops_t)


@pytest.fixture
def aug() -> Augmentor:
    torch.manual_seed(0)
    return Augmentor().eval()


def test_output_fields_and_shapes(aug):
    _, _, out = _run(aug)
    assert isinstance(out, AugmentorOutput)
    assert out._fields == (
        "pose_ba",
        "pose_bl",
        "pose_rt",
        "bone_angle_offsets",
        "bone_length_ratios",
        "rotation",
        "translation",
        "learned_length_ratios",
    )
    for name in ("pose_ba", "pose_bl", "pose_rt"):
        assert getattr(out, name).shape == (N, NUM_JOINTS, 3)
        assert getattr(out, name).dtype == torch.float32
    assert out.bone_angle_offsets.shape == (N, NUM_BONES, 3)
    assert out.bone_length_ratios.shape == (N, NUM_BONES)
    # Without a body prior the learned ratios are the whole of BL's change.
    torch.testing.assert_close(out.learned_length_ratios, out.bone_length_ratios)
    assert out.rotation.shape == out.translation.shape == (N, 3)


def test_all_ops_change_the_pose_within_their_constraints(aug):
    pose, _, out = _run(aug)
    # BA: lengths kept, fixed bones kept, other angles changed.
    torch.testing.assert_close(bone_lengths(out.pose_ba), bone_lengths(pose), atol=1e-5, rtol=0)
    fixed = list(BA_FIXED_BONES)
    torch.testing.assert_close(
        unit_bone_vectors(out.pose_ba)[:, fixed], unit_bone_vectors(pose)[:, fixed]
    )
    assert (out.pose_ba - pose).abs().max() > 1e-2
    # BL: symmetric ratios within +-20%, directions kept.
    r = out.bone_length_ratios
    assert ((r - 1).abs() <= 0.2 + 1e-6).all() and (r - 1).abs().max() > 1e-3
    for group in BONE_LENGTH_GROUPS:
        for b in group[1:]:
            torch.testing.assert_close(r[:, b], r[:, group[0]], atol=0, rtol=0)
    torch.testing.assert_close(
        unit_bone_vectors(out.pose_bl), unit_bone_vectors(out.pose_ba), atol=1e-5, rtol=0
    )
    # RT: rigid, root at translation, in front of the camera.
    torch.testing.assert_close(
        torch.cdist(out.pose_rt, out.pose_rt),
        torch.cdist(out.pose_bl, out.pose_bl),
        atol=1e-5,
        rtol=0,
    )
    torch.testing.assert_close(out.pose_rt[:, 0], out.translation)
    assert (out.translation[:, 2] > aug.min_depth).all()
    assert torch.count_nonzero(out.pose_ba[:, 0]) == torch.count_nonzero(out.pose_bl[:, 0]) == 0


def test_ops_all_off_is_identity(aug):
    pose, root, out = _run(aug, [0.0, 0.0, 0.0])
    torch.testing.assert_close(out.pose_ba, pose, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.pose_bl, pose, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.pose_rt, pose + root[:, None], atol=1e-6, rtol=0)
    assert torch.count_nonzero(out.bone_angle_offsets) == 0
    assert torch.equal(out.bone_length_ratios, torch.ones(N, NUM_BONES))
    assert torch.count_nonzero(out.rotation) == 0
    assert torch.equal(out.translation, root)


@pytest.mark.parametrize("ops", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
def test_single_op_masks(aug, ops):
    pose, root, out = _run(aug, ops)
    full = _run(aug)[2]
    ba, bl, rt = ops
    if ba:
        torch.testing.assert_close(out.pose_ba, full.pose_ba)
    else:
        torch.testing.assert_close(out.pose_ba, pose, atol=1e-6, rtol=0)
    if not bl:
        torch.testing.assert_close(out.pose_bl, out.pose_ba, atol=1e-6, rtol=0)
    else:
        torch.testing.assert_close(out.bone_length_ratios, full.bone_length_ratios)
    if not rt:
        torch.testing.assert_close(out.pose_rt, out.pose_bl + root[:, None], atol=1e-6, rtol=0)
    else:
        torch.testing.assert_close(out.rotation, full.rotation)
        torch.testing.assert_close(out.translation, full.translation)


def test_gradients_flow_from_pose_rt_to_every_op_network():
    torch.manual_seed(1)
    aug = Augmentor().train()
    _, _, out = _run(aug)
    out.pose_rt.square().sum().backward()
    for name in ("ba", "bl", "rt"):
        sub = getattr(aug, name)
        first = next(m for m in sub.modules() if isinstance(m, torch.nn.Linear))
        assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0, name
    assert all(p.grad is not None for p in aug.parameters())


def test_same_noise_same_output_other_noise_differs(aug):
    a = _run(aug, seed=3)[2]
    b = _run(aug, seed=3)[2]
    assert torch.equal(a.pose_rt, b.pose_rt)
    pose, root = random_poses(N, 3), random_roots(N, 3)
    other = aug(pose, root, *aug.sample_noise(N, generator=torch.Generator().manual_seed(99)))
    assert (other.pose_rt - a.pose_rt).abs().max() > 1e-3


def test_input_with_offset_root_joint_is_made_root_relative(aug):
    pose, root, out = _run(aug, seed=4)
    noise = aug.sample_noise(N, generator=torch.Generator().manual_seed(4))
    shifted = aug(pose + torch.tensor([0.3, -0.2, 1.0]), root, *noise)
    torch.testing.assert_close(shifted.pose_rt, out.pose_rt, atol=1e-5, rtol=0)


def test_sample_noise_shapes_and_determinism(aug):
    a = aug.sample_noise(5, generator=torch.Generator().manual_seed(7))
    b = aug.sample_noise(5, generator=torch.Generator().manual_seed(7))
    assert [t.shape for t in a] == [(5, DEFAULT_NOISE_DIMS[k]) for k in ("ba", "bl", "rt")]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0][:, :48], a[1][:, :48])


def test_custom_noise_dims_and_config_round_trip():
    aug = Augmentor(noise_dims={"ba": 8, "bl": 16, "rt": 4}, bl_limit=0.1, num_blocks=1)
    assert [t.shape[1] for t in aug.sample_noise(3)] == [8, 16, 4]
    clone = Augmentor(**aug.config)
    assert clone.config == aug.config
    assert sum(p.numel() for p in clone.parameters()) == sum(p.numel() for p in aug.parameters())
    aug.eval()
    _, _, out = _run(aug)
    assert (out.bone_length_ratios - 1).abs().max() <= 0.1 + 1e-6


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="noise_dims"):
        Augmentor(noise_dims={"ba": 8, "bl": 8})
    aug = Augmentor().eval()
    noise = aug.sample_noise(2)
    with pytest.raises(ValueError, match="pose3d"):
        aug(torch.zeros(2, 16, 3), torch.zeros(2, 3), *noise)
    with pytest.raises(ValueError, match="ops"):
        aug(torch.zeros(2, 17, 3), torch.zeros(2, 3), *noise, torch.ones(2))


def test_state_dict_alone_rebuilds_the_augmentor():
    torch.manual_seed(2)
    custom = {"noise_dims": {"ba": 8, "bl": 16, "rt": 4}, "bl_limit": 0.1, "min_depth": 2.0}
    aug = Augmentor(**custom, hidden=64, num_blocks=1).eval()
    clone = Augmentor.from_state_dict(aug.state_dict()).eval()
    assert clone.config == aug.config
    assert clone.config["bl_limit"] == pytest.approx(0.1) and clone.config["min_depth"] == 2.0
    a, b = _run(aug)[2], _run(clone)[2]
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    # A default-built augmentor takes the limit and depth floor from a loaded state too.
    default = Augmentor(noise_dims=custom["noise_dims"], hidden=64, num_blocks=1)
    default.load_state_dict(aug.state_dict())
    assert default.bl_limit == pytest.approx(0.1) and default.min_depth == 2.0
