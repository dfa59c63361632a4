"""The small MLP that predicts one operation's parameters from a pose and its noise.

Same shape as the official generator branches (models_poseaug/gan_generator.py in
jfzhang95/PoseAug): an input layer, ``num_blocks`` blocks of two Linear+BN+LeakyReLU layers
(no residual connection in the official generator), and an output layer; hidden width 256;
LeakyReLU slope 0.01; Kaiming-normal weights. With the official ``num_blocks=2`` that is
input layer, two hidden blocks, output layer: six Linear modules, which we read as the paper's
"four layers" (blocks counted as one); ``num_blocks=1`` gives four Linear modules.
"""

from __future__ import annotations

from torch import Tensor, nn


def _linear_bn_lrelu(n_in: int, n_out: int) -> list[nn.Module]:
    return [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.LeakyReLU(0.01)]


def init_kaiming(module: nn.Module) -> None:
    """Kaiming-normal init of every Linear weight, as the official ``init_weights``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight)


class OpNetwork(nn.Module):
    """features [N, in_features] -> parameters [N, out_features]."""

    def __init__(
        self, in_features: int, out_features: int, hidden: int = 256, num_blocks: int = 2
    ) -> None:
        super().__init__()
        layers = _linear_bn_lrelu(in_features, hidden)
        for _ in range(num_blocks):
            layers += _linear_bn_lrelu(hidden, hidden) + _linear_bn_lrelu(hidden, hidden)
        layers.append(nn.Linear(hidden, out_features))
        self.net = nn.Sequential(*layers)
        init_kaiming(self)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)
