"""The PoseAug augmentor (the GAN generator): BA -> BL -> RT with explicit noise inputs.

As in the official PoseGenerator (models_poseaug/gan_generator.py), every operation's
network reads the *source* pose (plus its own noise; BL also the source bone lengths) and the
operations are applied one after the other to the running pose. Unlike the official code the
noise is an input, so a seed reproduces an augmentation anywhere (ONNX included), and each op
can be switched off by ``ops`` with arithmetic masking (no Python branch on tensor values).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from poseaug_training.poseaug.bone_angle_op import BoneAngleGenerator
from poseaug_training.poseaug.bone_length_op import DEFAULT_LIMIT, BoneLengthGenerator
from poseaug_training.poseaug.rotation_translation_op import (
    DEFAULT_MAX_TILT_DEG,
    DEFAULT_MIN_DEPTH,
    RotationTranslationGenerator,
)
from poseaug_training.skeleton import NUM_BONES, NUM_JOINTS

# Official noise_channle=48 for each generator branch (models_poseaug/gan_generator.py).
DEFAULT_NOISE_DIMS: Mapping[str, int] = {"ba": 48, "bl": 48, "rt": 48}
OP_NAMES: tuple[str, str, str] = ("ba", "bl", "rt")


class AugmentorOutput(NamedTuple):
    """Everything the training losses and the ONNX contract need from one forward pass."""

    pose_ba: Tensor  # [N,17,3] root-relative, after BA
    pose_bl: Tensor  # [N,17,3] root-relative, after BA and BL
    pose_rt: Tensor  # [N,17,3] absolute camera frame, root at `translation`
    bone_angle_offsets: Tensor  # [N,16,3] offsets applied to unit bone vectors
    bone_length_ratios: Tensor  # [N,16] per-bone length ratio
    rotation: Tensor  # [N,3] axis-angle, radians
    translation: Tensor  # [N,3] new root position, metres


class Augmentor(nn.Module):
    """PoseAug generator. See :meth:`forward` for the exact (ONNX) contract."""

    def __init__(
        self,
        noise_dims: Mapping[str, int] = DEFAULT_NOISE_DIMS,
        bl_limit: float = DEFAULT_LIMIT,
        min_depth: float = DEFAULT_MIN_DEPTH,
        hidden: int = 256,
        num_blocks: int = 2,
        rt_mode: str = "free",
        max_tilt_deg: float = DEFAULT_MAX_TILT_DEG,
    ) -> None:
        super().__init__()
        if set(noise_dims) != set(OP_NAMES) or min(noise_dims.values()) < 1:
            raise ValueError(f"noise_dims needs positive 'ba', 'bl', 'rt', got {dict(noise_dims)}")
        self.noise_dims: dict[str, int] = {k: int(noise_dims[k]) for k in OP_NAMES}
        self.hidden = hidden
        self.num_blocks = num_blocks
        self.ba = BoneAngleGenerator(self.noise_dims["ba"], hidden, num_blocks)
        self.bl = BoneLengthGenerator(self.noise_dims["bl"], bl_limit, hidden, num_blocks)
        self.rt = RotationTranslationGenerator(
            self.noise_dims["rt"], min_depth, hidden, num_blocks, rt_mode, max_tilt_deg
        )

    @property
    def bl_limit(self) -> float:
        return float(self.bl.limit)

    @property
    def min_depth(self) -> float:
        return float(self.rt.min_depth)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Tensor]) -> Augmentor:
        """Rebuild an augmentor from its ``state_dict()`` alone.

        Noise dims, width and depth are read off the weight shapes; BL limit, depth floor and
        (gravity mode) tilt bound are buffers in the state itself.
        """
        first = {op: state[f"{op}.net.net.0.weight"] for op in ("ba", "bl")}
        first["rt"] = state["rt.rotation_net.net.0.weight"]
        hidden = int(first["ba"].shape[0])
        pose_in = NUM_JOINTS * 3
        dims = {
            "ba": int(first["ba"].shape[1]) - pose_in,
            "bl": int(first["bl"].shape[1]) - pose_in - NUM_BONES,
            "rt": int(first["rt"].shape[1]) - pose_in,
        }
        ba_weights = [
            v for k, v in state.items() if k.startswith("ba.net.") and k.endswith("weight")
        ]
        n_linear = sum(1 for v in ba_weights if v.dim() == 2)  # BatchNorm weights are 1-D
        gravity = {}
        if "rt.max_tilt" in state:
            gravity = {
                "rt_mode": "gravity",
                "max_tilt_deg": math.degrees(float(state["rt.max_tilt"])),
            }
        model = cls(noise_dims=dims, hidden=hidden, num_blocks=(n_linear - 2) // 2, **gravity)
        model.load_state_dict(state)
        return model

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (for checkpoints and the manifest): ``Augmentor(**config)``."""
        return {
            "noise_dims": dict(self.noise_dims),
            "bl_limit": self.bl_limit,
            "min_depth": self.min_depth,
            "hidden": self.hidden,
            "num_blocks": self.num_blocks,
            **self.rt_config,
        }

    @property
    def rt_config(self) -> dict[str, Any]:
        """RT's mode, and its tilt bound in gravity mode (the free mode's config stays as the
        first bundles recorded it)."""
        if self.rt.mode == "free":
            return {}
        return {"rt_mode": "gravity", "max_tilt_deg": math.degrees(float(self.rt.max_tilt))}

    def sample_noise(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Standard normal (noise_ba, noise_bl, noise_rt), each [n, D_op].

        ``device`` defaults to the module's; a ``generator`` must live on that device.
        """
        if device is None:
            device = next(self.parameters()).device
        return tuple(  # type: ignore[return-value]
            torch.randn(n, self.noise_dims[op], generator=generator, device=device)
            for op in OP_NAMES
        )

    def forward(
        self,
        pose3d: Tensor,
        root: Tensor,
        noise_ba: Tensor,
        noise_bl: Tensor,
        noise_rt: Tensor,
        ops: Tensor | None = None,
    ) -> AugmentorOutput:
        """Augment root-relative poses [N,17,3] whose roots are ``root`` [N,3] (metres).

        ``ops`` [3] (float 0/1; default all ones) switches BA, BL, RT: 0 makes that op the
        identity (offsets 0, ratios 1, rotation 0, translation = root). Joint 0 is subtracted
        from ``pose3d`` first, so the input is always treated as root-relative.
        """
        if pose3d.dim() != 3 or pose3d.shape[1:] != (NUM_JOINTS, 3):
            raise ValueError(f"pose3d must be [N,{NUM_JOINTS},3], got {tuple(pose3d.shape)}")
        if ops is None:
            ops = torch.ones(3, dtype=pose3d.dtype, device=pose3d.device)
        elif ops.shape != (3,):
            raise ValueError(f"ops must be [3], got {tuple(ops.shape)}")
        source = pose3d - pose3d[:, :1, :]
        pose_ba, offsets = self.ba(source, noise_ba, ops[0])
        pose_bl, ratios = self.bl(source, pose_ba, noise_bl, ops[1])
        pose_rt, rotation, translation = self.rt(source, pose_bl, root, noise_rt, ops[2])
        return AugmentorOutput(pose_ba, pose_bl, pose_rt, offsets, ratios, rotation, translation)
