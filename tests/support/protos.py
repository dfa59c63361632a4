"""Tensor message helpers for tests: numpy <-> poseaug.v1.Tensor, written independently of the
server's own code so tests check the wire format rather than reuse it."""

from __future__ import annotations

import numpy as np

from poseaug.v1 import poseaug_pb2


def tensor(array) -> poseaug_pb2.Tensor:
    a = np.asarray(array, dtype="<f4")
    return poseaug_pb2.Tensor(shape=list(a.shape), data=a.tobytes())


def array(message: poseaug_pb2.Tensor) -> np.ndarray:
    return np.frombuffer(message.data, dtype="<f4").reshape(tuple(message.shape))


def normalize_reference(pixels: np.ndarray, width, height) -> np.ndarray:
    """The README's formula, x = u / w * 2 - 1, y = v / w * 2 - h / w, in float64."""
    p = np.asarray(pixels, dtype=np.float64)
    w = np.asarray(width, dtype=np.float64).reshape(-1, 1)
    h = np.asarray(height, dtype=np.float64).reshape(-1, 1)
    out = np.empty_like(p)
    out[..., 0] = p[..., 0] / w * 2 - 1
    out[..., 1] = p[..., 1] / w * 2 - h / w
    return out.astype(np.float32)


def lift_request(
    pixels: np.ndarray, width: int = 1000, height: int = 1000, **fields
) -> poseaug_pb2.Lift2Dto3DRequest:
    """A Lift2Dto3DRequest with one image size for the batch."""
    return poseaug_pb2.Lift2Dto3DRequest(
        keypoints=tensor(pixels),
        image_size=poseaug_pb2.ImageSize(width=width, height=height),
        **fields,
    )
