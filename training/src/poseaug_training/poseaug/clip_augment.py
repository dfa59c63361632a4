"""PoseAug per clip: one set of BA, BL and RT parameters moves every frame of a clip.

The augmentor reads the clip's anchor frame and predicts its parameters as for a single pose;
applying the same bone-angle offsets, bone-length ratios and rigid motion to every frame keeps
the augmented clip a plausible motion (the same body, turning the same way), where fresh
parameters per frame would make it jitter. The anchor frame's result is exactly the
augmentor's own output, so the discriminators and the error feedback see what they always saw.
"""

from __future__ import annotations

import torch
from torch import Tensor

from poseaug_training.poseaug.augmentor import AugmentorOutput
from poseaug_training.poseaug.bone_angle_op import apply_bone_angle
from poseaug_training.poseaug.bone_length_op import apply_bone_length
from poseaug_training.poseaug.rotation_translation_op import axis_angle_to_matrix


def augment_clip(
    clip_pose: Tensor, clip_root: Tensor, anchor_frame: int, out: AugmentorOutput, ops: Tensor
) -> tuple[Tensor, Tensor]:
    """Clips [B, R, 17, 3] root-relative with roots [B, R, 3] (camera frame) and the augmentor's
    output for their anchor frames -> (BA clips, RT clips), both absolute [B, R, 17, 3]: BA
    keeps each frame's root, RT rotates the body and its trajectory about the anchor's root
    and puts that root at the new translation."""
    b, r = clip_pose.shape[:2]
    flat = clip_pose.reshape(b * r, *clip_pose.shape[2:])
    ba, _ = apply_bone_angle(flat, out.bone_angle_offsets.repeat_interleave(r, 0), ops[0])
    bl = apply_bone_length(ba, out.bone_length_ratios.repeat_interleave(r, 0))
    rot = axis_angle_to_matrix(out.rotation)  # [B, 3, 3]
    moved = clip_root - clip_root[:, anchor_frame : anchor_frame + 1]
    roots = out.translation[:, None] + torch.einsum("bij,brj->bri", rot, moved)
    rt = torch.matmul(bl.reshape(b, r, -1, 3), rot.transpose(1, 2)[:, None]) + roots[:, :, None]
    return ba.reshape(b, r, -1, 3) + clip_root[:, :, None], rt
