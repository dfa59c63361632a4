"""BA: the bone-angle operation of PoseAug.

Each bone's unit direction gets a predicted offset, is renormalized and scaled back to the
original bone length, so only joint angles change. The pelvis-to-thorax segment
(``BA_FIXED_BONES``) keeps its direction: otherwise BA could rotate the whole body, which is
RT's job (comment in the official models_poseaug/gan_generator.py, BAGenerator).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from poseaug_training.poseaug.bones import (
    bone_vectors,
    normalize,
    pose_from_bone_vectors,
    unit_bone_vectors,
)
from poseaug_training.poseaug.op_network import OpNetwork
from poseaug_training.skeleton import BA_FIXED_BONES, NUM_BONES, NUM_JOINTS


def movable_bone_mask(
    fixed_bones: Sequence[int] = BA_FIXED_BONES,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """[16] with 0.0 on the bones BA keeps fixed and 1.0 elsewhere."""
    return torch.tensor(
        [0.0 if b in fixed_bones else 1.0 for b in range(NUM_BONES)], dtype=dtype, device=device
    )


def apply_bone_angle(
    pose: Tensor,
    offsets: Tensor,
    enabled: Tensor | float = 1.0,
    fixed_bones: Sequence[int] = BA_FIXED_BONES,
) -> tuple[Tensor, Tensor]:
    """Turn bones of a root-relative pose [N,17,3] by offsets [N,16,3].

    ``enabled`` (0/1, a scalar tensor or float) masks the op arithmetically, so the same graph
    serves both cases in ONNX. Returns the new root-relative pose and the offsets actually
    applied (zero on fixed bones and when disabled).
    """
    weight = movable_bone_mask(fixed_bones, offsets.dtype, offsets.device) * enabled
    weight = weight.unsqueeze(-1)  # [16, 1]
    applied = offsets * weight
    bones = bone_vectors(pose)
    lengths = torch.linalg.vector_norm(bones, dim=-1, keepdim=True)
    unit = normalize(bones)
    turned = normalize(unit + applied)
    # Blend so fixed bones and a disabled op keep the exact source directions.
    new_unit = weight * turned + (1.0 - weight) * unit
    return pose_from_bone_vectors(new_unit * lengths), applied


def bone_angle_change(source: Tensor, augmented: Tensor) -> Tensor:
    """Per-bone 1 - cos(angle between source and augmented bone) [N,16] (official ba_diff)."""
    cos = (unit_bone_vectors(source) * unit_bone_vectors(augmented)).sum(-1)
    return 1.0 - cos


class BoneAngleGenerator(nn.Module):
    """Predicts BA offsets from the source pose and noise, and applies them."""

    def __init__(self, noise_dim: int = 48, hidden: int = 256, num_blocks: int = 2) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        self.net = OpNetwork(NUM_JOINTS * 3 + noise_dim, NUM_BONES * 3, hidden, num_blocks)

    def forward(
        self, pose: Tensor, noise: Tensor, enabled: Tensor | float = 1.0
    ) -> tuple[Tensor, Tensor]:
        """pose [N,17,3] root-relative, noise [N,D] -> (pose_ba [N,17,3], offsets [N,16,3])."""
        offsets = self.net(torch.cat([pose.flatten(1), noise], dim=1)).reshape(-1, NUM_BONES, 3)
        return apply_bone_angle(pose, offsets, enabled)
