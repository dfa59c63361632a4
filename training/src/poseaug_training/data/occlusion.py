"""Missing joints: what occlusion and the image border take from a real detector's output.

A detector's keypoint under its score threshold is not a position: the lifter must be told it
is missing and infer it from the rest. Training draws missing joints the way footage loses
them: a few random joints (wrists and ankles most often), a whole limb behind something, one
side of the body turned away, and every joint outside the frame.
"""

from __future__ import annotations

import torch

from poseaug_training.skeleton import NUM_JOINTS

# How often each joint goes missing relative to the others (extremities most, the trunk least).
JOINT_WEIGHTS = torch.tensor(
    [0.3, 1, 2, 3, 1, 2, 3, 0.3, 0.3, 1, 1, 1, 2, 3, 1, 2, 3], dtype=torch.float32
)
LIMBS: tuple[tuple[int, ...], ...] = (
    (1, 2, 3),  # right leg
    (4, 5, 6),  # left leg
    (11, 12, 13),  # left arm
    (14, 15, 16),  # right arm
)
SIDES: tuple[tuple[int, ...], ...] = ((1, 2, 3, 14, 15, 16), (4, 5, 6, 11, 12, 13))
MAX_RANDOM_MISSING = 5
# Fewer joints than this left visible and the pose is taken as seen in full (a detector that
# sees so little of a person does not report it).
MIN_VISIBLE = 5


def random_visibility(
    n: int,
    gen: torch.Generator | None = None,
    p_occluded: float = 0.5,
    p_limb: float = 0.2,
    p_side: float = 0.1,
) -> torch.Tensor:
    """[N, 17] bool, True = seen. With probability `p_occluded` a pose loses joints: a whole
    limb (`p_limb` of those), one side (`p_side`), else 1-5 random joints."""
    visible = torch.ones(n, NUM_JOINTS, dtype=torch.bool)
    u = torch.rand(n, generator=gen)
    occluded = u < p_occluded
    kind = torch.rand(n, generator=gen)
    limb = occluded & (kind < p_limb)
    side = occluded & (kind >= p_limb) & (kind < p_limb + p_side)
    joints = occluded & ~limb & ~side
    # k random joints per pose, without replacement, weighted towards the extremities.
    k = torch.randint(1, MAX_RANDOM_MISSING + 1, (n,), generator=gen)
    # Weighted order without replacement (Efraimidis-Spirakis keys: u ** (1 / w), largest first).
    keys = torch.rand(n, NUM_JOINTS, generator=gen).log() / JOINT_WEIGHTS
    order = keys.argsort(1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(NUM_JOINTS).expand(n, -1))
    visible &= ~(joints[:, None] & (rank < k[:, None]))
    which_limb = torch.randint(len(LIMBS), (n,), generator=gen)
    which_side = torch.randint(len(SIDES), (n,), generator=gen)
    for i, members in enumerate(LIMBS):
        visible[:, list(members)] &= ~(limb & (which_limb == i))[:, None]
    for i, members in enumerate(SIDES):
        visible[:, list(members)] &= ~(side & (which_side == i))[:, None]
    return visible


def inside_frame(pixels: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """[N, J] bool: the joint lands inside its image (width, height in intrinsics[:, 9:11])."""
    size = intrinsics[:, None, 9:11]
    return ((pixels >= 0) & (pixels < size)).all(-1)


def drop_joints(n: int, count: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """[N, 17] bool with exactly `count` uniformly chosen joints missing per pose (the
    occlusion test: 1, 2 or 4 random joints)."""
    order = torch.rand(n, NUM_JOINTS, generator=gen).argsort(1)
    visible = torch.ones(n, NUM_JOINTS, dtype=torch.bool)
    visible.scatter_(1, order[:, :count], False)
    return visible
