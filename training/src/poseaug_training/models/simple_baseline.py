"""SimpleBaseline (Martinez et al., ICCV 2017): the MLP lifter PoseAug also evaluates."""

from __future__ import annotations

from torch import nn

from poseaug_training.models.common import ResidualBlock, RootRelativeLifter, linear_bn_relu


class SimpleBaseline(RootRelativeLifter):
    def __init__(
        self, num_joints: int = 17, channels: int = 1024, blocks: int = 2, dropout: float = 0.5
    ) -> None:
        body = nn.Sequential(
            linear_bn_relu(num_joints * 2, channels, dropout),
            *[ResidualBlock(channels, dropout) for _ in range(blocks)],
        )
        super().__init__(body, channels, num_joints)
        self.config = {"name": "mlp", "channels": channels, "blocks": blocks, "dropout": dropout}
