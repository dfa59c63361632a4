"""PoseAug (Gong, Zhang, Feng, CVPR 2021): augmentor, discriminators, losses, schedules.

One file per piece: ``bones`` (bone vectors and forward kinematics), ``bone_angle_op`` (BA),
``bone_length_op`` (BL), ``rotation_translation_op`` (RT), ``augmentor`` (the generator),
``kcs_discriminator`` (3D), ``pose2d_discriminator`` (2D), ``history_pool``, ``losses``,
and ``schedules``. Its ONNX export is ``poseaug_training.export.augmentor_onnx``.
"""

from poseaug_training.poseaug.augmentor import (
    DEFAULT_NOISE_DIMS,
    Augmentor,
    AugmentorOutput,
)
from poseaug_training.poseaug.history_pool import HistoryPool
from poseaug_training.poseaug.kcs_discriminator import KCSDiscriminator
from poseaug_training.poseaug.pose2d_discriminator import Pose2DDiscriminator
from poseaug_training.poseaug.schedules import HardRatio, HardRatioSchedule, beta

__all__ = [
    "DEFAULT_NOISE_DIMS",
    "Augmentor",
    "AugmentorOutput",
    "HardRatio",
    "HardRatioSchedule",
    "HistoryPool",
    "KCSDiscriminator",
    "Pose2DDiscriminator",
    "beta",
]
