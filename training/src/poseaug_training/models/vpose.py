"""VideoPose3D single-frame lifter ("VPose 1f"), the estimator PoseAug reports first.

With a receptive field of one frame, VideoPose3D's 1D convolutions are Linear layers: an
input layer to `channels`, then `blocks` residual blocks of two Linear+BN+ReLU+Dropout layers.
"""

from __future__ import annotations

from torch import nn

from poseaug_training.models.common import ResidualBlock, RootRelativeLifter, linear_bn_relu


class VPose1f(RootRelativeLifter):
    def __init__(
        self, num_joints: int = 17, channels: int = 1024, blocks: int = 4, dropout: float = 0.25
    ) -> None:
        body = nn.Sequential(
            linear_bn_relu(num_joints * 2, channels, dropout),
            *[ResidualBlock(channels, dropout) for _ in range(blocks)],
        )
        super().__init__(body, channels, num_joints)
        self.config = {"name": "vpose", "channels": channels, "blocks": blocks, "dropout": dropout}
