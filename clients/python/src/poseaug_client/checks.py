"""Checks of what the server sent back, so a server bug surfaces as a clear PoseAugError
instead of silently misaligned arrays."""

from __future__ import annotations

import grpc
import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_client.errors import PoseAugError
from poseaug_client.results import AugmentChunk, augment_result, slice_chunk


def check_rows(array: np.ndarray, rows: int, name: str) -> np.ndarray:
    """The array, if it has the expected number of rows."""
    if array.ndim < 1 or array.shape[0] != rows:
        raise PoseAugError(
            grpc.StatusCode.INTERNAL,
            f"{name}: server answered {list(array.shape)} for {rows} poses",
        )
    return array


def stream_chunk(
    message: poseaug_pb2.StreamAugmentResponse, base: int, delivered: int
) -> AugmentChunk | None:
    """The part of a streamed chunk not yet delivered (None if all of it was), rows numbered
    from `base`. Rows must continue where the previous chunk stopped."""
    result = augment_result(message.chunk)
    start, rows = int(message.offset), len(result.poses3d)
    if start > delivered:
        raise PoseAugError(
            grpc.StatusCode.INTERNAL,
            f"offset: server skipped rows {delivered} to {start - 1} of the stream",
        )
    if start + rows <= delivered:
        return None
    chunk = AugmentChunk(base + start, *result)
    return slice_chunk(chunk, delivered - start) if start < delivered else chunk


def stream_ended_early(delivered: int, rows: int) -> PoseAugError:
    return PoseAugError(
        grpc.StatusCode.INTERNAL,
        f"StreamAugment: server sent {delivered} of {rows} rows before ending the stream",
    )


def unanswered_error(pending: int) -> PoseAugError:
    return PoseAugError(
        grpc.StatusCode.INTERNAL,
        f"StreamLift2Dto3D: server ended the stream with {pending} request(s) unanswered",
    )
