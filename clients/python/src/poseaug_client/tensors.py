"""Numpy arrays <-> the contract's `Tensor`: packed little-endian float32 bytes plus a shape."""

from __future__ import annotations

import grpc
import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_client.contract import F32, to_tensor  # noqa: F401
from poseaug_client.errors import PoseAugError, invalid_argument


def as_float_array(values: object, name: str) -> np.ndarray:
    """Any array-like of numbers as a float32 array, with an error naming `name` otherwise."""
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise invalid_argument(f"{name}: not a numeric array ({exc})") from None
    return array


def from_tensor(tensor: poseaug_pb2.Tensor, name: str) -> np.ndarray:
    """Unpack a response tensor into a writable native float32 array."""
    shape = tuple(int(d) for d in tensor.shape)
    expected = 4 * int(np.prod(shape, dtype=np.int64)) if shape else 0
    if len(tensor.data) != expected:
        raise PoseAugError(
            grpc.StatusCode.INTERNAL,
            f"{name}: server sent {len(tensor.data)} bytes for shape {list(shape)}",
        )
    return np.frombuffer(tensor.data, dtype=F32).reshape(shape).astype(np.float32)
