"""What PoseAugClient and AsyncPoseAugClient share, written once and without I/O: options and
endpoints, the requests each method sends, and how their answers become results.

The two clients keep only their transport loops (blocking calls and sleeps, or awaits), in the
way the sync and async clients of Triton share a base.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar

import grpc
import numpy as np
from grpc_health.v1 import health_pb2

from poseaug.v1 import poseaug_pb2
from poseaug_client.cameras import CameraLike, CameraOption
from poseaug_client.channel import Endpoint, EndpointPool
from poseaug_client.checks import check_rows
from poseaug_client.config import DEFAULT_SERVER, ClientConfig
from poseaug_client.errors import PoseAugError
from poseaug_client.jobs import (
    AugmentJob,
    AugmentOptions,
    ImageSizeLike,
    LiftJob,
    StreamPart,
    augment_outputs_per_call,
    augment_request,
    chunk_bounds,
    lift_chunk_size,
    lift_request,
    prepare_augment,
    prepare_lift,
    stream_augment_requests,
    stream_sources_per_call,
)
from poseaug_client.results import (
    AugmentChunk,
    AugmentResult,
    LiftResult,
    augment_result,
    concat_augment,
    join_lift,
    lift_poses,
)
from poseaug_client.streaming import AugmentStream, LiftStream

#: The default of every `timeout`: the configured one (None means no deadline).
_UNSET: Any = object()


class _ClientBase:
    """Options, endpoints and request planning of both clients; `_aio` picks the channels."""

    _aio: ClassVar[bool]
    _HEALTH = "Health.Check"  # the method name retries and errors use for health checks

    def __init__(
        self,
        servers: str | Sequence[str] = DEFAULT_SERVER,
        *,
        config: ClientConfig | None = None,
        **options: Any,
    ) -> None:
        self.config = config or ClientConfig.create(servers, **options)
        self._pool = EndpointPool(self.config, aio=self._aio)

    def _timeout(self, timeout: float | None) -> float | None:
        return self.config.timeout if timeout is _UNSET else timeout

    def _stream_timeout(self, timeout: float | None) -> float | None:
        return self.config.stream_timeout if timeout is _UNSET else timeout

    def _rpc(self, method: str, request: Any) -> Callable[[Endpoint, float | None], Any]:
        """`method` called on one endpoint with the seconds left ("Health.Check": the health
        service, else PoseAugService)."""
        metadata = self._pool.metadata

        def call(endpoint: Endpoint, left: float | None) -> Any:
            if method == self._HEALTH:
                return endpoint.health.Check(request, timeout=left, metadata=metadata)
            return getattr(endpoint.poseaug, method)(request, timeout=left, metadata=metadata)

        return call

    @staticmethod
    def _health_request(service: str) -> health_pb2.HealthCheckRequest:
        return health_pb2.HealthCheckRequest(service=service)

    @staticmethod
    def _health_status(response: health_pb2.HealthCheckResponse) -> str:
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    @staticmethod
    def _raise_unknown_service(error: PoseAugError, service: str) -> None:
        """NOT_FOUND from the health service: name the service the caller asked about."""
        if error.code == grpc.StatusCode.NOT_FOUND:
            raise PoseAugError(error.code, f"health: unknown service {service!r}") from None

    @staticmethod
    def _stream_total(batches: object, total: int | None) -> int | None:
        """The progress bar's total: given, or the length of a sized sequence of batches."""
        if total is None and hasattr(batches, "__len__"):
            return len(batches)  # type: ignore[arg-type]
        return total

    def _lift_plan(
        self,
        keypoints: object,
        format: str | int,
        image_size: ImageSizeLike | None,
        scores: object | None,
        model: str | None,
        camera: CameraOption,
        track_ids: object | None = None,
    ) -> _LiftPlan:
        job = prepare_lift(
            keypoints, format, image_size, scores, model, camera=camera, track_ids=track_ids
        )
        return _LiftPlan(job, lift_chunk_size(self.config, job.keypoints.shape[1]))

    def _augment_plan(
        self,
        poses3d: object,
        count: int,
        ops: str | Iterable[str],
        seed: int,
        camera: CameraLike | None,
        model: str | None,
        timeout: float | None,
        options: AugmentOptions,
    ) -> _AugmentPlan:
        job = prepare_augment(poses3d, count, ops, seed, camera, model, options)
        return _AugmentPlan(job, augment_outputs_per_call(self.config), self._timeout(timeout))

    def _lift_stream(
        self,
        parts: Iterator[StreamPart] | AsyncIterator[StreamPart],
        timeout: float | None,
        lookahead: int = 0,
    ) -> LiftStream:
        return LiftStream(
            self.config, parts, self._stream_timeout(timeout), aio=self._aio, lookahead=lookahead
        )

    def _augment_streams(
        self, job: AugmentJob, chunk_size: int, timeout: float | None
    ) -> Iterator[AugmentStream]:
        """The StreamAugment calls of a whole job: one, or one per ~million sources."""
        calls = stream_augment_requests(job, stream_sources_per_call(self.config), chunk_size)
        for base, rows, request in calls:
            yield AugmentStream(self.config, request, base, rows, timeout)


class _LiftPlan:
    """The Lift2Dto3D calls of one lift (at most `chunk` poses each) and their joined answer."""

    def __init__(self, job: LiftJob, chunk: int) -> None:
        self.job = job
        self._bounds = chunk_bounds(job.count, chunk)
        self._poses: list[np.ndarray] = []
        self._responses: list[poseaug_pb2.Lift2Dto3DResponse] = []

    def requests(self) -> Iterator[tuple[int, poseaug_pb2.Lift2Dto3DRequest]]:
        """(poses, request) of each call, built as the calls are made."""
        for start, stop in self._bounds:
            yield stop - start, lift_request(self.job, start, stop)

    def answered(self, response: poseaug_pb2.Lift2Dto3DResponse, rows: int) -> None:
        self._poses.append(check_rows(lift_poses(response), rows, "pose3d"))
        self._responses.append(response)

    def result(self) -> LiftResult:
        return join_lift(self._poses, self._responses, self.job.single)


class _AugmentPlan:
    """One augment: a single Augment call when its outputs fit one message, else StreamAugment
    calls in chunks of that size (deadline: `timeout` per chunk), joined in order."""

    def __init__(self, job: AugmentJob, per_call: int, timeout: float | None) -> None:
        self.job = job
        self.unary = job.outputs <= per_call
        self.chunk_size = per_call
        calls = -(-job.outputs // per_call)
        self.stream_timeout = None if timeout is None else timeout * calls
        self._parts: list[AugmentResult] = []

    def request(self) -> poseaug_pb2.AugmentRequest:
        return augment_request(self.job, 0, len(self.job.poses3d), self.job.seed)

    def unary_result(self, response: poseaug_pb2.AugmentResponse) -> AugmentResult:
        result = augment_result(response)
        check_rows(result.poses3d, self.job.outputs, "poses3d")
        return result

    def add(self, chunk: AugmentChunk) -> None:
        self._parts.append(AugmentResult(chunk.poses3d, chunk.keypoints2d, chunk.params))

    def result(self) -> AugmentResult:
        return concat_augment(self._parts)
