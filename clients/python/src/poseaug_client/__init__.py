"""Python client for the PoseAug service: numpy in, numpy out, over gRPC.

from poseaug_client import PoseAugClient

with PoseAugClient("127.0.0.1:50051") as client:
    poses3d = client.lift(keypoints, format="coco17", image_size=(1920, 1080))
    result = client.lift_result(keypoints, camera=Camera(1500, 1500, 960, 540), scores=scores)
    augmented, keypoints2d, params = client.augment(poses3d, count=4, seed=1)
"""

from __future__ import annotations

from poseaug_client.aio import AsyncPoseAugClient
from poseaug_client.cameras import Camera
from poseaug_client.client import PoseAugClient
from poseaug_client.config import ClientConfig
from poseaug_client.errors import PoseAugError
from poseaug_client.formats import H36M_JOINT_NAMES, H36M_PARENTS
from poseaug_client.results import AugmentChunk, AugmentResult, LiftResult, ModelInfo
from poseaug_client.version import __version__

__all__ = [
    "H36M_JOINT_NAMES",
    "H36M_PARENTS",
    "AsyncPoseAugClient",
    "AugmentChunk",
    "AugmentResult",
    "Camera",
    "ClientConfig",
    "LiftResult",
    "ModelInfo",
    "PoseAugClient",
    "PoseAugError",
    "__version__",
]
