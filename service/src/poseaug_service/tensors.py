"""Tensor messages <-> numpy, with the validation every RPC shares.

Tensors are packed little-endian float32 bytes plus a shape; `np.frombuffer` reads them
without copying, and one vectorized finiteness check rejects NaN/Inf.
"""

from __future__ import annotations

import math

import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_client.contract import F32, to_tensor  # noqa: F401
from poseaug_service.errors import InvalidArgumentError


def to_array(
    tensor: poseaug_pb2.Tensor,
    field: str,
    rank: int,
    fixed: dict[int, int] | None = None,
    max_rows: int | None = None,
    finite: bool = True,
) -> np.ndarray:
    """Decode `tensor` (request field `field`) into a read-only float32 array.

    `fixed` maps axis -> required size, `max_rows` bounds axis 0; every violation raises
    InvalidArgumentError naming the field.
    """
    shape = tuple(int(d) for d in tensor.shape)
    if len(shape) != rank:
        raise InvalidArgumentError(
            f"{field}.shape", f"expected rank {rank}, got shape {list(shape)}"
        )
    if any(d < 1 for d in shape):
        raise InvalidArgumentError(
            f"{field}.shape", f"every dimension must be >= 1, got {list(shape)}"
        )
    for axis, size in (fixed or {}).items():
        if shape[axis] != size:
            raise InvalidArgumentError(
                f"{field}.shape", f"axis {axis} must be {size}, got shape {list(shape)}"
            )
    if max_rows is not None and shape[0] > max_rows:
        raise InvalidArgumentError(
            f"{field}.shape",
            f"N = {shape[0]} poses exceeds the server limit of {max_rows} per request",
        )
    expected = 4 * math.prod(shape)
    if len(tensor.data) != expected:
        raise InvalidArgumentError(
            f"{field}.data",
            f"shape {list(shape)} needs {expected} bytes of float32, got {len(tensor.data)}",
        )
    array = np.frombuffer(tensor.data, dtype=F32).reshape(shape)
    if finite and not np.isfinite(array).all():
        raise InvalidArgumentError(f"{field}.data", "contains NaN or Inf")
    return array


def require_finite_result(arrays: dict[str, np.ndarray] | np.ndarray, field: str) -> None:
    """Reject a request whose results overflowed float32 (finite but extreme inputs, e.g.
    3e38 metres): INVALID_ARGUMENT naming the input field, instead of answering Inf/NaN."""
    items = arrays.values() if isinstance(arrays, dict) else (arrays,)
    for a in items:
        if np.isfinite(a).all():
            continue
        rows = np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(axis=1))
        raise InvalidArgumentError(
            field,
            f"values too large: the result for row {int(rows[0])} is not finite in float32 "
            "(poses are metres, keypoints pixels)",
        )
