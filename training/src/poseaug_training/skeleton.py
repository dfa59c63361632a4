"""The H36M-17 skeleton shared by every part of training (and written into manifests)."""

from __future__ import annotations

JOINT_NAMES: tuple[str, ...] = (
    "hip",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "spine",
    "thorax",
    "neck_nose",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
)
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
NUM_JOINTS = 17
NUM_BONES = 16
# Bone b ends at joint b + 1 and starts at its parent.
BONE_CHILDREN: tuple[int, ...] = tuple(range(1, NUM_JOINTS))
BONE_PARENTS: tuple[int, ...] = tuple(PARENTS[j] for j in BONE_CHILDREN)

LEFT_JOINTS: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
RIGHT_JOINTS: tuple[int, ...] = (1, 2, 3, 14, 15, 16)

# Body parts for the part-aware KCS discriminator (bone indices, b = child joint - 1).
PART_BONES: dict[str, tuple[int, ...]] = {
    "torso": (6, 7, 8, 9, 10, 13),  # hip-spine, spine-thorax, thorax-neck, neck-head, shoulders
    "left_arm": (10, 11, 12),  # thorax-left shoulder, upper arm, forearm
    "right_arm": (13, 14, 15),
    "left_leg": (3, 4, 5),  # hip-left hip, thigh, shin
    "right_leg": (0, 1, 2),
}

# Bone-length groups for the BL op: one ratio per group, left and right share it (symmetry).
BONE_LENGTH_GROUPS: tuple[tuple[int, ...], ...] = (
    (0, 3),  # pelvis -> hips
    (1, 4),  # thighs
    (2, 5),  # shins
    (6,),  # hip -> spine
    (7,),  # spine -> thorax
    (8,),  # thorax -> neck/nose
    (9,),  # neck/nose -> head
    (10, 13),  # thorax -> shoulders
    (11, 14),  # upper arms
    (12, 15),  # forearms
)
# Bone kept fixed by the BA op (the pelvis-to-thorax segment: hip->spine and spine->thorax).
BA_FIXED_BONES: tuple[int, ...] = (6, 7)
