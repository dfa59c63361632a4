"""BL: the bone-length operation of PoseAug.

One ratio per bone group (``BONE_LENGTH_GROUPS``: left and right share a group, so the body
stays symmetric), ``1 + limit * tanh(raw)``, i.e. at most +-20% by default. The spine-to-thorax
group is kept at ratio 1 as in the official BLGenerator (models_poseaug/gan_generator.py):
a body scaled as a whole is ambiguous with one moved in depth, so one torso bone anchors scale.

With a body prior (`bodies`, the camera-aware generation's --bl-bodies), BL first gives each
pose a body drawn from published anthropometry (data/body_shapes.py: other adult statures and
proportions, children) by its noise, then applies its learned ratios: the other bodies cameras
cannot give, and the augmentor's learned, feedback-driven choice of what is hard about them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from poseaug_training.data.body_shapes import (
    BODY_DRAWS,
    BodyRanges,
    bodies_from_normal,
    body_ranges_buffer,
)
from poseaug_training.poseaug.bones import bone_lengths, bone_vectors, pose_from_bone_vectors
from poseaug_training.poseaug.op_network import OpNetwork
from poseaug_training.skeleton import BONE_LENGTH_GROUPS, NUM_BONES, NUM_JOINTS

# Bones whose group BL leaves unchanged (spine -> thorax), following the official mask.
BL_FIXED_BONES: tuple[int, ...] = (7,)
DEFAULT_LIMIT = 0.2


def _group_of_bone(groups: Sequence[Sequence[int]]) -> list[int]:
    owner = [-1] * NUM_BONES
    for g, bones in enumerate(groups):
        for b in bones:
            if owner[b] != -1:
                raise ValueError(f"bone {b} is in two bone-length groups")
            owner[b] = g
    if -1 in owner:
        raise ValueError(f"bone {owner.index(-1)} is in no bone-length group")
    return owner


GROUP_OF_BONE: tuple[int, ...] = tuple(_group_of_bone(BONE_LENGTH_GROUPS))
NUM_GROUPS = len(BONE_LENGTH_GROUPS)


def free_group_mask(
    fixed_bones: Sequence[int] = BL_FIXED_BONES,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """[G] with 0.0 on groups holding a fixed bone, 1.0 elsewhere."""
    fixed = {GROUP_OF_BONE[b] for b in fixed_bones}
    return torch.tensor(
        [0.0 if g in fixed else 1.0 for g in range(NUM_GROUPS)], dtype=dtype, device=device
    )


def bone_length_ratios(
    raw: Tensor,
    limit: float | Tensor = DEFAULT_LIMIT,
    enabled: Tensor | float = 1.0,
    fixed_bones: Sequence[int] = BL_FIXED_BONES,
) -> Tensor:
    """Raw group outputs [N,G] -> per-bone ratios [N,16] in [1 - limit, 1 + limit]."""
    change = torch.tanh(raw) * (limit * free_group_mask(fixed_bones, raw.dtype, raw.device))
    return 1.0 + enabled * change[:, list(GROUP_OF_BONE)]


def apply_bone_length(pose: Tensor, ratios: Tensor) -> Tensor:
    """Scale each bone of a root-relative pose [N,17,3] by ratios [N,16]; directions kept."""
    return pose_from_bone_vectors(bone_vectors(pose) * ratios.unsqueeze(-1))


def group_changes(ratios: Tensor) -> Tensor:
    """Per-group ratio change (ratio - 1) [N,G], read from the first bone of each group."""
    return ratios[:, [g[0] for g in BONE_LENGTH_GROUPS]] - 1.0


class BoneLengthGenerator(nn.Module):
    """Predicts group ratios from the source pose, its bone lengths and noise; applies them."""

    def __init__(
        self,
        noise_dim: int = 48,
        limit: float = DEFAULT_LIMIT,
        hidden: int = 256,
        num_blocks: int = 2,
        bodies: BodyRanges | None = None,
    ) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        # A buffer, so a checkpoint carries the limit it was trained with.
        self.register_buffer("limit", torch.tensor(float(limit)))
        self.bodies = bodies
        if bodies is not None:  # the prior's ranges travel with the weights
            if noise_dim < BODY_DRAWS:
                raise ValueError(f"a body prior needs at least {BODY_DRAWS} BL noise dims")
            self.register_buffer("body_prior", body_ranges_buffer(bodies))
        n_in = NUM_JOINTS * 3 + NUM_BONES + noise_dim
        self.net = OpNetwork(n_in, NUM_GROUPS, hidden, num_blocks)

    def forward(
        self, source: Tensor, pose: Tensor, noise: Tensor, enabled: Tensor | float = 1.0
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Features from ``source`` [N,17,3]; BL applied to ``pose`` (the BA output).

        Returns (pose_bl [N,17,3] root-relative, ratios [N,16], the learned part of the ratios
        [N,16]). With a body prior, the ratios are a body drawn from the prior by the first
        BODY_DRAWS noise values times the learned ratios (the regularizer holds only the
        latter); without one the two are the same.
        """
        features = torch.cat([source.flatten(1), bone_lengths(source), noise], dim=1)
        learned = bone_length_ratios(self.net(features), self.limit, enabled)
        if self.bodies is None:
            return apply_bone_length(pose, learned), learned, learned
        body = bodies_from_normal(noise, self.bodies).to(noise.dtype)
        ratios = learned * (1.0 + enabled * (body - 1.0))
        return apply_bone_length(pose, ratios), ratios, learned
