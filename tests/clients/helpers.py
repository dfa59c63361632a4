"""Reference calls for the client tests: the generated stub used by hand (no client library),
and the server's own request counters (Prometheus), to see how many RPCs a client made."""

from __future__ import annotations

import urllib.request

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from poseaug.v1 import poseaug_pb2
from tests.support.server import ServerHandle


def raw_lift(
    server: ServerHandle,
    keypoints: np.ndarray,
    fmt: int = poseaug_pb2.KEYPOINT_FORMAT_H36M_17,
    size: tuple[int, int] = (1000, 1000),
    model: str = "",
) -> np.ndarray:
    """Lift2Dto3D through the bare stub: the ground truth for the client's packing."""
    request = poseaug_pb2.Lift2Dto3DRequest(
        keypoints=poseaug_pb2.Tensor(
            shape=list(keypoints.shape), data=keypoints.astype("<f4").tobytes()
        ),
        format=fmt,
        image_size=poseaug_pb2.ImageSize(width=size[0], height=size[1]),
        model=model,
    )
    response = server.stub.Lift2Dto3D(request, timeout=30)
    return np.frombuffer(response.pose3d.data, "<f4").reshape(tuple(response.pose3d.shape))


def raw_augment(server: ServerHandle, poses: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Augment (all ops, default camera) through the bare stub: augmented poses [M, 17, 3]."""
    request = poseaug_pb2.AugmentRequest(
        poses3d=poseaug_pb2.Tensor(shape=list(poses.shape), data=poses.astype("<f4").tobytes()),
        count=count,
        seed=seed,
    )
    response = server.stub.Augment(request, timeout=30)
    return np.frombuffer(response.poses3d.data, "<f4").reshape(tuple(response.poses3d.shape))


def request_count(server: ServerHandle, method: str, code: str = "OK") -> float:
    """RPCs of `method` the server finished with `code` (poseaug_requests_total)."""
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "poseaug_requests_total"
                and sample.labels.get("method") == method
                and sample.labels.get("code") == code
            ):
                total += sample.value
    return total
