"""The asyncio client: the same API as PoseAugClient, as coroutines and async iterators.

Planning and bookkeeping live in `_base.py` and `streaming.py`; this module holds the asyncio
transport: calls with retries, and the loop that reopens a stream after UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import grpc
import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_client._base import _UNSET, _ClientBase
from poseaug_client.cameras import CameraLike, CameraOption
from poseaug_client.config import ClientConfig
from poseaug_client.errors import PoseAugError
from poseaug_client.jobs import (
    DEFAULT_OPS,
    AugmentJob,
    AugmentOptions,
    ImageSizeLike,
    StreamPart,
    batch_parts,
    lift_stream_parts,
    prepare_augment,
)
from poseaug_client.progress import ProgressOption, progress_bar
from poseaug_client.results import AugmentChunk, AugmentResult, LiftResult, ModelInfo
from poseaug_client.retry import acall_with_retry
from poseaug_client.streaming import ResumableStream

__all__ = ["AsyncPoseAugClient"]


class AsyncPoseAugClient(_ClientBase):
    """Non-blocking client over grpc.aio; create it inside a running event loop.

    Takes the same options as PoseAugClient. Use `async with` or `await client.close()`.
    """

    _aio = True

    async def close(self) -> None:
        """Close every channel."""
        for endpoint in self._pool.endpoints:
            await endpoint.channel.close()

    async def __aenter__(self) -> AsyncPoseAugClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _unary(self, method: str, request: Any, timeout: float | None) -> Any:
        call = self._rpc(method, request)
        return await acall_with_retry(self._pool, method, call, self._timeout(timeout))

    async def health(self, service: str = "", *, timeout: float | None = _UNSET) -> str:
        """grpc.health.v1 status of the server ("" = the whole server), e.g. "SERVING"."""
        try:
            response = await self._unary(self._HEALTH, self._health_request(service), timeout)
        except PoseAugError as error:
            self._raise_unknown_service(error, service)
            raise
        return self._health_status(response)

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
        track_ids: object | None = None,
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
            track_ids=track_ids,
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
        track_ids: object | None = None,
        timeout: float | None = _UNSET,
        progress: ProgressOption = False,
    ) -> LiftResult:
        """See PoseAugClient.lift_result."""
        plan = self._lift_plan(keypoints, format, image_size, scores, model, camera, track_ids)
        with progress_bar(progress, plan.job.count, "lift", "pose") as bar:
            for rows, request in plan.requests():
                plan.answered(await self._unary("Lift2Dto3D", request, timeout), rows)
                bar.update(rows)
        return plan.result()

    async def augment(
        self,
        poses3d: object,
        count: int = 1,
        ops: str | Iterable[str] = DEFAULT_OPS,
        seed: int = 0,
        camera: CameraLike | None = None,
        model: str | None = None,
        *,
        placement: str = "in_view",
        max_tilt_deg: float | None = None,
        redraw_implausible: bool = False,
        keypoint_format: str = "h36m17",
        timeout: float | None = _UNSET,
        progress: ProgressOption = False,
    ) -> AugmentResult:
        """See PoseAugClient.augment."""
        options = AugmentOptions(placement, max_tilt_deg, redraw_implausible, keypoint_format)
        plan = self._augment_plan(poses3d, count, ops, seed, camera, model, timeout, options)
        with progress_bar(progress, plan.job.outputs, "augment", "pose") as bar:
            if plan.unary:
                result = plan.unary_result(await self._unary("Augment", plan.request(), timeout))
                bar.update(plan.job.outputs)
                return result
            async for chunk in self._stream_job(plan.job, plan.chunk_size, plan.stream_timeout):
                plan.add(chunk)
                bar.update(len(chunk.poses3d))
        return plan.result()

    async def lift_stream(
        self,
        batches: Iterable[object] | AsyncIterable[object],
        format: str | int = "h36m17",
        image_size: ImageSizeLike | None = None,
        model: str | None = None,
        *,
        camera: CameraOption = None,
        lookahead: int = 0,
        timeout: float | None = _UNSET,
        progress: ProgressOption = False,
        total: int | None = None,
    ) -> AsyncIterator[np.ndarray]:
        """See PoseAugClient.lift_stream; `batches` may also be an async iterable."""
        total = self._stream_total(batches, total)
        parts = _async_parts(batches, self.config, format, image_size, model, camera)
        stream = self._lift_stream(parts, timeout, lookahead)
        with progress_bar(progress, total, "lift stream", "batch") as bar:
            async for poses in self._resumable(stream):
                bar.update(1)
                yield poses

    async def augment_stream(
        self,
        poses3d: object,
        count: int = 1,
        ops: str | Iterable[str] = DEFAULT_OPS,
        seed: int = 0,
        camera: CameraLike | None = None,
        model: str | None = None,
        *,
        placement: str = "in_view",
        max_tilt_deg: float | None = None,
        redraw_implausible: bool = False,
        keypoint_format: str = "h36m17",
        chunk_size: int = 4096,
        timeout: float | None = _UNSET,
        progress: ProgressOption = False,
    ) -> AsyncIterator[AugmentChunk]:
        """See PoseAugClient.augment_stream."""
        options = AugmentOptions(placement, max_tilt_deg, redraw_implausible, keypoint_format)
        job = prepare_augment(poses3d, count, ops, seed, camera, model, options)
        with progress_bar(progress, job.outputs, "augment", "pose") as bar:
            async for chunk in self._stream_job(job, chunk_size, self._stream_timeout(timeout)):
                bar.update(len(chunk.poses3d))
                yield chunk

    async def _stream_job(
        self, job: AugmentJob, chunk_size: int, timeout: float | None
    ) -> AsyncIterator[AugmentChunk]:
        for stream in self._augment_streams(job, chunk_size, timeout):
            async for chunk in self._resumable(stream):
                yield chunk

    async def _resumable(self, stream: ResumableStream) -> AsyncIterator[Any]:
        """Run a streaming call to its end, reopening it after UNAVAILABLE (see streaming.py)."""
        while True:
            endpoint = self._pool.next()
            call = getattr(endpoint.poseaug, stream.method)(
                stream.requests(),
                timeout=stream.deadline.remaining(),
                metadata=self._pool.metadata,
            )
            try:
                async for message in call:
                    for item in stream.received(message):
                        yield item
                break
            except grpc.RpcError as error:
                await asyncio.sleep(stream.retries.delay_after(error, endpoint.target))
            finally:
                call.cancel()
        for item in stream.finished():
            yield item


async def _async_parts(
    batches: Iterable[object] | AsyncIterable[object],
    config: ClientConfig,
    format: str | int,
    image_size: ImageSizeLike | None,
    model: str | None,
    camera: CameraOption = None,
) -> AsyncIterator[StreamPart]:
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
