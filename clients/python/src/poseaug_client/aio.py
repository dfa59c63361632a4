"""The asyncio client: the same API as PoseAugClient, as coroutines and async iterators."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2

from poseaug.v1 import poseaug_pb2
from poseaug_client.cameras import CameraOption
from poseaug_client.channel import EndpointPool
from poseaug_client.checks import (
    check_rows,
    stream_chunk,
    stream_ended_early,
    unanswered_error,
)
from poseaug_client.client import DEFAULT_OPS
from poseaug_client.config import DEFAULT_SERVER, ClientConfig
from poseaug_client.errors import PoseAugError
from poseaug_client.jobs import (
    AugmentJob,
    ImageSizeLike,
    augment_outputs_per_call,
    augment_request,
    batch_parts,
    chunk_bounds,
    lift_chunk_size,
    lift_request,
    lift_stream_parts,
    prepare_augment,
    prepare_lift,
    stream_augment_requests,
    stream_sources_per_call,
)
from poseaug_client.progress import ProgressOption, progress_bar
from poseaug_client.results import (
    AugmentChunk,
    AugmentResult,
    LiftResult,
    ModelInfo,
    augment_result,
    concat_augment,
    join_lift,
    lift_poses,
)
from poseaug_client.retry import (
    Deadline,
    StreamRetries,
    acall_with_retry,
)
from poseaug_client.streaming import LiftAssembler, LiftFeed, Part

_UNSET: Any = object()


class AsyncPoseAugClient:
    """Non-blocking client over grpc.aio; create it inside a running event loop.

    Takes the same options as PoseAugClient. Use `async with` or `await client.close()`.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = DEFAULT_SERVER,
        *,
        config: ClientConfig | None = None,
        **options: Any,
    ) -> None:
        self.config = config or ClientConfig.create(servers, **options)
        self._pool = EndpointPool(self.config, aio=True)

    async def close(self) -> None:
        """Close every channel."""
        for endpoint in self._pool.endpoints:
            await endpoint.channel.close()

    async def __aenter__(self) -> AsyncPoseAugClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _timeout(self, timeout: float | None) -> float | None:
        return self.config.timeout if timeout is _UNSET else timeout

    async def _unary(self, method: str, request: Any, timeout: float | None) -> Any:
        metadata = self._pool.metadata

        def call(endpoint: Any, left: float | None) -> Any:
            return getattr(endpoint.poseaug, method)(request, timeout=left, metadata=metadata)

        return await acall_with_retry(self._pool, method, call, self._timeout(timeout))

    async def health(self, service: str = "", *, timeout: float | None = _UNSET) -> str:
        """grpc.health.v1 status of the server ("" = the whole server), e.g. "SERVING"."""
        request = health_pb2.HealthCheckRequest(service=service)
        metadata = self._pool.metadata
        try:
            response = await acall_with_retry(
                self._pool,
                "Health.Check",
                lambda ep, left: ep.health.Check(request, timeout=left, metadata=metadata),
                self._timeout(timeout),
            )
        except PoseAugError as error:
            if error.code == grpc.StatusCode.NOT_FOUND:
                raise PoseAugError(error.code, f"health: unknown service {service!r}") from None
            raise
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    async def models(self, *, timeout: float | None = _UNSET) -> list[ModelInfo]:
        """Every model bundle the server holds (`is_default` marks the default one)."""
        response = await self._unary("ListModels", poseaug_pb2.ListModelsRequest(), timeout)
        return [ModelInfo.from_proto(m) for m in response.models]

    async def model_info(
        self, name: str | None = None, *, timeout: float | None = _UNSET
    ) -> ModelInfo:
        """One bundle's joints, formats, metrics and execution providers (None: the default)."""
        request = poseaug_pb2.GetModelInfoRequest(model=name or "")
        response = await self._unary("GetModelInfo", request, timeout)
        return ModelInfo.from_proto(response.model)

    async def lift(
        self,
        keypoints: object,
        format: str | int = "h36m17",
        image_size: ImageSizeLike | None = None,
        scores: object | None = None,
        model: str | None = None,
        *,
        camera: CameraOption = None,
        timeout: float | None = _UNSET,
        progress: ProgressOption = False,
    ) -> np.ndarray:
        """See PoseAugClient.lift."""
        result = await self.lift_result(
            keypoints,
            format,
            image_size,
            scores,
            model,
            camera=camera,
            timeout=timeout,
            progress=progress,
        )
        return result.poses3d

    async def lift_result(
        self,
        keypoints: object,
        format: str | int = "h36m17",
        image_size: ImageSizeLike | None = None,
        scores: object | None = None,
        model: str | None = None,
        *,
        camera: CameraOption = None,
        timeout: float | None = _UNSET,
        progress: ProgressOption = False,
    ) -> LiftResult:
        """See PoseAugClient.lift_result."""
        job = prepare_lift(keypoints, format, image_size, scores, model, camera=camera)
        poses, responses = [], []
        bounds = chunk_bounds(job.count, lift_chunk_size(self.config, job.keypoints.shape[1]))
        with progress_bar(progress, job.count, "lift", "pose") as bar:
            for start, stop in bounds:
                request = lift_request(job, start, stop)
                response = await self._unary("Lift2Dto3D", request, timeout)
                poses.append(check_rows(lift_poses(response), stop - start, "pose3d"))
                responses.append(response)
                bar.update(stop - start)
        return join_lift(poses, responses, job.single)

    async def augment(
        self,
        poses3d: object,
        count: int = 1,
        ops: str | Iterable[str] = DEFAULT_OPS,
        seed: int = 0,
        camera: poseaug_pb2.CameraIntrinsics | Mapping[str, object] | None = None,
        model: str | None = None,
        *,
        timeout: float | None = _UNSET,
        progress: ProgressOption = False,
    ) -> AugmentResult:
        """See PoseAugClient.augment."""
        job = prepare_augment(poses3d, count, ops, seed, camera, model)
        per_call = augment_outputs_per_call(self.config)
        with progress_bar(progress, job.outputs, "augment", "pose") as bar:
            if job.outputs <= per_call:
                request = augment_request(job, 0, len(job.poses3d), job.seed)
                result = augment_result(await self._unary("Augment", request, timeout))
                check_rows(result.poses3d, job.outputs, "poses3d")
                bar.update(job.outputs)
                return result
            calls = -(-job.outputs // per_call)
            deadline = None if self._timeout(timeout) is None else self._timeout(timeout) * calls
            parts = []
            async for chunk in self._stream_job(job, per_call, deadline):
                parts.append(AugmentResult(chunk.poses3d, chunk.keypoints2d, chunk.params))
                bar.update(len(chunk.poses3d))
        return concat_augment(parts)

    async def lift_stream(
        self,
        batches: Iterable[object] | AsyncIterable[object],
        format: str | int = "h36m17",
        image_size: ImageSizeLike | None = None,
        model: str | None = None,
        *,
        camera: CameraOption = None,
        timeout: float | None = _UNSET,
        progress: ProgressOption = False,
        total: int | None = None,
    ) -> AsyncIterator[np.ndarray]:
        """See PoseAugClient.lift_stream; `batches` may also be an async iterable."""
        if total is None and hasattr(batches, "__len__"):
            total = len(batches)  # type: ignore[arg-type]
        parts = _async_parts(batches, self.config, format, image_size, model, camera)
        feed, assembler, pull_lock = LiftFeed(), LiftAssembler(), asyncio.Lock()
        deadline = Deadline(self.config.stream_timeout if timeout is _UNSET else timeout)
        retries = StreamRetries(self.config, deadline, "StreamLift2Dto3D")
        with progress_bar(progress, total, "lift stream", "batch") as bar:
            while True:
                endpoint = self._pool.next()
                call = endpoint.poseaug.StreamLift2Dto3D(
                    feed.arequests(parts, pull_lock),
                    timeout=deadline.remaining(),
                    metadata=self._pool.metadata,
                )
                try:
                    async for message in call:
                        response = message.response
                        feed.answered(response.request_id)
                        for part in feed.take_local():
                            assembler.add_local(part)
                        assembler.add(response.request_id, lift_poses(response))
                        retries.progressed()
                        for poses in assembler.ready():
                            bar.update(1)
                            yield poses
                    break
                except grpc.RpcError as error:
                    await asyncio.sleep(retries.delay_after(error, endpoint.target))
                finally:
                    call.cancel()
            for part in feed.take_local():
                assembler.add_local(part)
            for poses in assembler.ready():
                bar.update(1)
                yield poses
        if feed.error is not None:
            raise feed.error
        if feed.pending:
            raise unanswered_error(len(feed.pending))

    async def augment_stream(
        self,
        poses3d: object,
        count: int = 1,
        ops: str | Iterable[str] = DEFAULT_OPS,
        seed: int = 0,
        camera: poseaug_pb2.CameraIntrinsics | Mapping[str, object] | None = None,
        model: str | None = None,
        *,
        chunk_size: int = 4096,
        timeout: float | None = _UNSET,
        progress: ProgressOption = False,
    ) -> AsyncIterator[AugmentChunk]:
        """See PoseAugClient.augment_stream."""
        job = prepare_augment(poses3d, count, ops, seed, camera, model)
        stream_timeout = self.config.stream_timeout if timeout is _UNSET else timeout
        with progress_bar(progress, job.outputs, "augment", "pose") as bar:
            async for chunk in self._stream_job(job, chunk_size, stream_timeout):
                bar.update(len(chunk.poses3d))
                yield chunk

    async def _stream_job(
        self, job: AugmentJob, chunk_size: int, timeout: float | None
    ) -> AsyncIterator[AugmentChunk]:
        """Chunks of a whole job: one StreamAugment call, or one per ~million sources."""
        calls = stream_augment_requests(job, stream_sources_per_call(self.config), chunk_size)
        for base, rows, request in calls:
            async for chunk in self._augment_call(request, base, rows, timeout):
                yield chunk

    async def _augment_call(
        self, request: poseaug_pb2.StreamAugmentRequest, base: int, rows: int, timeout: float | None
    ) -> AsyncIterator[AugmentChunk]:
        deadline, delivered = Deadline(timeout), 0
        retries = StreamRetries(self.config, deadline, "StreamAugment")
        while True:
            endpoint = self._pool.next()
            call = endpoint.poseaug.StreamAugment(
                request, timeout=deadline.remaining(), metadata=self._pool.metadata
            )
            try:
                async for message in call:
                    chunk = stream_chunk(message, base, delivered)
                    if chunk is None:
                        continue
                    delivered += len(chunk.poses3d)
                    retries.progressed()
                    yield chunk
                break
            except grpc.RpcError as error:
                await asyncio.sleep(retries.delay_after(error, endpoint.target))
            finally:
                call.cancel()
        if delivered != rows:
            raise stream_ended_early(delivered, rows)


async def _async_parts(
    batches: Iterable[object] | AsyncIterable[object],
    config: ClientConfig,
    format: str | int,
    image_size: ImageSizeLike | None,
    model: str | None,
    camera: CameraOption = None,
) -> AsyncIterator[Part]:
    """Stream parts of sync or async batches, built as the batches arrive."""
    if isinstance(batches, AsyncIterable):
        index = 0
        async for batch in batches:
            for item in batch_parts(index, batch, config, format, image_size, model, camera):
                yield item
            index += 1
    else:
        for item in lift_stream_parts(batches, config, format, image_size, model, camera):
            yield item
