"""2D pose discriminator of PoseAug: an MLP on projected poses.

Input: [N,17,2] in normalized screen coordinates, **not** root-relative. The 2D discriminator
is the only signal that judges the RT op's output as a camera would see it: where the body
lands in the image and how large it appears (i.e. its depth). A root-relative input would
throw away the position and leave translation unconstrained. The official code does the
same: it feeds ``project_to_2d(pose_rt, camera)`` and the real 2D keypoints as they are
(function_poseaug/model_gan_train.py); the architecture follows Pos2dDiscriminator in
models_poseaug/PosDiscriminator.py: four Linear(100) layers with LeakyReLU and a residual
connection from the first to the third, then Linear(100, 100), LeakyReLU, Linear(100, 1).
"""

from __future__ import annotations

from torch import Tensor, nn

from poseaug_training.poseaug.op_network import init_kaiming
from poseaug_training.skeleton import NUM_JOINTS


class Pose2DDiscriminator(nn.Module):
    """Poses [N,17,2] (normalized screen coordinates) -> realness scores [N,1]."""

    def __init__(self, num_joints: int = NUM_JOINTS, hidden: int = 100) -> None:
        super().__init__()
        self.layer1 = nn.Linear(num_joints * 2, hidden)
        self.layer2 = nn.Linear(hidden, hidden)
        self.layer3 = nn.Linear(hidden, hidden)
        self.layer4 = nn.Linear(hidden, hidden)
        self.layer_last = nn.Linear(hidden, hidden)
        self.layer_pred = nn.Linear(hidden, 1)
        self.act = nn.LeakyReLU(0.01)
        init_kaiming(self)

    def forward(self, pose2d: Tensor) -> Tensor:
        h1 = self.act(self.layer1(pose2d.flatten(1)))
        h2 = self.act(self.layer2(h1))
        h3 = self.act(self.layer3(h2) + h1)
        h4 = self.layer4(h3)
        return self.layer_pred(self.act(self.layer_last(h4)))
