"""Pieces shared by the lifters: residual Linear-BN-ReLU-Dropout block, root-relative head."""

from __future__ import annotations

import torch
from torch import nn


def linear_bn_relu(cin: int, cout: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(cin, cout, bias=False),
        nn.BatchNorm1d(cout, momentum=0.1),
        nn.ReLU(),
        nn.Dropout(dropout),
    )


class ResidualBlock(nn.Module):
    """Two Linear+BN+ReLU+Dropout layers with a skip connection (VideoPose3D / Martinez)."""

    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            linear_bn_relu(channels, channels, dropout), linear_bn_relu(channels, channels, dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class RootRelativeLifter(nn.Module):
    """[N, J, 2] -> [N, J, 3]: the network predicts the J-1 non-root joints; the root is 0.

    Predicting the root would only add noise: outputs are root-relative by contract.
    """

    def __init__(self, body: nn.Module, channels: int, num_joints: int) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.body = body
        self.head = nn.Linear(channels, (num_joints - 1) * 3)
        # Training may run the layers under autocast (bf16 on CPUs with AVX512-BF16: about
        # 2.4x faster steps); evaluation and ONNX export leave it None (float32).
        self.autocast_dtype: torch.dtype | None = None

    def body_input(self, kp2d: torch.Tensor) -> torch.Tensor:
        """What `body` takes: one flat row per pose (a temporal body keeps its frames)."""
        return kp2d.reshape(kp2d.shape[0], -1)

    def forward(self, kp2d: torch.Tensor) -> torch.Tensor:
        n = kp2d.shape[0]
        with torch.autocast(
            kp2d.device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            out = self.head(self.body(self.body_input(kp2d)))
        out = out.float().reshape(n, self.num_joints - 1, 3)
        return torch.cat([torch.zeros_like(out[:, :1]), out], dim=1)
