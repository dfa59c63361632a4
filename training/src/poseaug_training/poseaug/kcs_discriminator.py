"""Part-aware Kinematic Chain Space (KCS) 3D discriminator of PoseAug.

For each body part, Psi = B B^T of that part's bone matrix B holds the inner products of its
bones: joint angles (and, with unit bones, nothing else), invariant to translation and to a
global rotation. One MLP path per part judges it, as the official Pos3dDiscriminator
(models_poseaug/PosDiscriminator.py in jfzhang95/PoseAug) does:

- bones are made unit length first ("only check on bone angle"): the 3D discriminator sees the
  BA output and should judge angles, not the lengths BL changes later;
- each limb's part includes torso "anchor" bones (the official masks do: legs add both pelvis
  bones and hip->spine, arms add spine->thorax, the torso adds the pelvis bones). Psi of a
  limb alone holds only the angles inside the limb; the anchors add the limb-to-torso angles
  (how far the thigh swings away from the spine, say). ``KCS_PART_BONES`` = ``PART_BONES`` +
  anchors;
- path: Linear(k*k, 256), LeakyReLU, Linear(256, 256), LeakyReLU, Linear(256, 256) plus a
  residual from the first layer, LeakyReLU(Linear(256, 100)), Linear(100, 1);
- the part scores are *not* merged: ``forward`` returns [N, 5] and the LSGAN losses average
  over every entry, exactly what the official MSE against a [N, 5] target does. Each part gets
  its own verdict, so a plausible torso cannot hide an impossible arm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from poseaug_training.poseaug.bones import bone_vectors, unit_bone_vectors
from poseaug_training.poseaug.op_network import init_kaiming
from poseaug_training.skeleton import PART_BONES

KCS_ANCHOR_BONES: Mapping[str, tuple[int, ...]] = {
    "torso": (0, 3),  # pelvis -> hips
    "left_arm": (7,),  # spine -> thorax
    "right_arm": (7,),
    "left_leg": (0, 3, 6),  # both pelvis bones, hip -> spine
    "right_leg": (0, 3, 6),
}
KCS_PART_BONES: Mapping[str, tuple[int, ...]] = {
    part: tuple(sorted(set(bones) | set(KCS_ANCHOR_BONES[part])))
    for part, bones in PART_BONES.items()
}


def kcs_matrix(bones: Tensor) -> Tensor:
    """Psi = B B^T: bone matrix [N,k,3] -> [N,k,k]."""
    return torch.matmul(bones, bones.transpose(-1, -2))


class KCSPath(nn.Module):
    """One part's MLP with the residual connection of the official KCSpath."""

    def __init__(self, in_features: int, channel: int = 256, channel_mid: int = 100) -> None:
        super().__init__()
        self.layer1 = nn.Linear(in_features, channel)
        self.layer2 = nn.Linear(channel, channel)
        self.layer3 = nn.Linear(channel, channel)
        self.layer_last = nn.Linear(channel, channel_mid)
        self.layer_pred = nn.Linear(channel_mid, 1)
        self.act = nn.LeakyReLU(0.01)

    def forward(self, psi: Tensor) -> Tensor:
        h1 = self.act(self.layer1(psi))
        h3 = self.layer3(self.act(self.layer2(h1))) + h1
        return self.layer_pred(self.act(self.layer_last(h3)))


class KCSDiscriminator(nn.Module):
    """Poses [N,17,3] (any translation) -> per-part realness scores [N, num_parts]."""

    def __init__(
        self,
        part_bones: Mapping[str, Sequence[int]] = KCS_PART_BONES,
        channel: int = 256,
        channel_mid: int = 100,
        unit_bones: bool = True,
    ) -> None:
        super().__init__()
        self.part_names: tuple[str, ...] = tuple(part_bones)
        self.part_bones: dict[str, tuple[int, ...]] = {k: tuple(v) for k, v in part_bones.items()}
        self.unit_bones = unit_bones
        self.paths = nn.ModuleDict(
            {k: KCSPath(len(v) ** 2, channel, channel_mid) for k, v in self.part_bones.items()}
        )
        init_kaiming(self)

    def psi(self, pose: Tensor) -> dict[str, Tensor]:
        """Per-part KCS matrices [N,k,k] of the (unit, by default) bone vectors."""
        bones = unit_bone_vectors(pose) if self.unit_bones else bone_vectors(pose)
        return {k: kcs_matrix(bones[:, list(v)]) for k, v in self.part_bones.items()}

    def forward(self, pose: Tensor) -> Tensor:
        psi = self.psi(pose)
        return torch.cat([self.paths[k](psi[k].flatten(1)) for k in self.part_names], dim=1)
