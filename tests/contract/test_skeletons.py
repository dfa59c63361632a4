"""One skeleton: training's tables (it does not depend on the client) match the contract's,
and the service maps every keypoint layout with the contract's tables."""

from __future__ import annotations

import numpy as np
import pytest

from poseaug.v1 import poseaug_pb2
from poseaug_client import contract
from poseaug_service import keypoint_formats

skeleton = pytest.importorskip("poseaug_training.skeleton")
keypoints = pytest.importorskip("poseaug_training.data.keypoints")


def test_training_skeleton_is_the_contract_skeleton():
    assert skeleton.JOINT_NAMES == contract.H36M_JOINT_NAMES
    assert skeleton.PARENTS == contract.H36M_PARENTS
    assert skeleton.NUM_JOINTS == contract.NUM_JOINTS == len(contract.H36M_JOINT_NAMES)
    assert skeleton.NUM_BONES == contract.NUM_BONES


def test_training_mpii_table_maps_like_the_service():
    """Training's MPII-16 -> H36M-17 index table gives the same poses as the service's
    matrix built from the contract's MPII names."""
    assert len(contract.MPII_NAMES) == 16
    kp = np.random.default_rng(0).normal(size=(5, 16, 2)).astype(np.float32)
    _, matrix, _ = keypoint_formats.FORMATS[poseaug_pb2.KEYPOINT_FORMAT_MPII_16]
    np.testing.assert_allclose(
        keypoints.mpii16_to_h36m17(kp), keypoint_formats.to_h36m(kp, matrix), atol=1e-6
    )


def test_limbs_keep_their_names():
    """Where training takes an MPII joint as it is, the names agree (limbs by name)."""
    renamed = {"hip": "pelvis", "neck_nose": "upper_neck", "head": "head_top"}
    for joint, source in enumerate(keypoints.MPII_TO_H36M):
        if source < 0:
            continue
        name = contract.H36M_JOINT_NAMES[joint]
        assert contract.MPII_NAMES[source] == renamed.get(name, name)


def test_the_client_and_the_service_use_the_contract():
    from poseaug_client import formats, jobs, tensors
    from poseaug_service import augmentation
    from poseaug_service import tensors as service_tensors

    assert formats.H36M_JOINT_NAMES is contract.H36M_JOINT_NAMES
    assert keypoint_formats.MPII_NAMES is contract.MPII_NAMES
    assert keypoint_formats.COCO_NAMES is contract.COCO_NAMES
    assert tensors.to_tensor is service_tensors.to_tensor is contract.to_tensor
    assert jobs.MAX_AUGMENT_COUNT == augmentation.MAX_AUGMENT_COUNT
