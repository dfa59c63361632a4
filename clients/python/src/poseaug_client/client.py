"""The synchronous client: numpy arrays in and out, chunking, retries, streams."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
from poseaug_client.config import DEFAULT_SERVER, ClientConfig
from poseaug_client.errors import PoseAugError
from poseaug_client.jobs import (
    AugmentJob,
    ImageSizeLike,
    augment_outputs_per_call,
    augment_request,
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
    call_with_retry,
)
from poseaug_client.streaming import LiftAssembler, LiftFeed

_UNSET: Any = object()
DEFAULT_OPS = ("ba", "bl", "rt")


class PoseAugClient:
    """Blocking client for one server or a round-robin set of servers.

    Options (all keyword): timeout, stream_timeout, max_attempts, initial_backoff,
    max_backoff, max_poses_per_call, max_message_bytes, token, token_file, tls, tls_ca,
    tls_cert, tls_key, tls_server_name; see `ClientConfig`. Every failure raises PoseAugError.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = DEFAULT_SERVER,
        *,
        config: ClientConfig | None = None,
        **options: Any,
    ) -> None:
        self.config = config or ClientConfig.create(servers, **options)
        self._pool = EndpointPool(self.config, aio=False)

    def close(self) -> None:
        """Close every channel."""
        for endpoint in self._pool.endpoints:
            endpoint.channel.close()

    def __enter__(self) -> PoseAugClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- unary calls ---------------------------------------------------------------------

    def _unary(self, method: str, request: Any, timeout: float | None) -> Any:
        metadata = self._pool.metadata

        def call(endpoint: Any, left: float | None) -> Any:
            return getattr(endpoint.poseaug, method)(request, timeout=left, metadata=metadata)

        return call_with_retry(self._pool, method, call, self._timeout(timeout))

    def _timeout(self, timeout: float | None) -> float | None:
        return self.config.timeout if timeout is _UNSET else timeout

    def health(self, service: str = "", *, timeout: float | None = _UNSET) -> str:
        """grpc.health.v1 status of the server ("" = the whole server), e.g. "SERVING"."""
        request = health_pb2.HealthCheckRequest(service=service)
        metadata = self._pool.metadata
        try:
            response = call_with_retry(
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

    def models(self, *, timeout: float | None = _UNSET) -> list[ModelInfo]:
        """Every model bundle the server holds (`is_default` marks the default one)."""
        response = self._unary("ListModels", poseaug_pb2.ListModelsRequest(), timeout)
        return [ModelInfo.from_proto(m) for m in response.models]

    def model_info(self, name: str | None = None, *, timeout: float | None = _UNSET) -> ModelInfo:
        """One bundle's joints, formats, metrics and execution providers (None: the default)."""
        request = poseaug_pb2.GetModelInfoRequest(model=name or "")
        return ModelInfo.from_proto(self._unary("GetModelInfo", request, timeout).model)

    def lift(
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
        """Lift 2D keypoints in pixels [N, K, 2] to root-relative 3D poses [N, 17, 3] (metres).

        `image_size` is (width, height) for the whole batch or an [N, 2] array per pose
        (default 1000 x 1000 when no camera is given). `camera` is a Camera for the batch or a
        sequence of N: camera-aware models turn pixels into rays with it, and without one use
        their default camera (60 degrees across the image width); format 1 models take only
        the image size from it. `scores` [N, K] in [0, 1]: camera-aware models treat a joint
        scored under 0.3 as missing and infer it. `lift_result` also returns which joints were
        inferred and whether the default camera was used. Batches over `max_poses_per_call`
        are sent as several calls and joined in order. A single pose [K, 2] gives a single
        pose [17, 3].
        """
        result = self.lift_result(
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

    def lift_result(
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
        """`lift` with what the server says about it: LiftResult(poses3d, joint_inferred,
        default_camera, pose_scores, model, model_version)."""
        job = prepare_lift(keypoints, format, image_size, scores, model, camera=camera)
        poses, responses = [], []
        bounds = chunk_bounds(job.count, lift_chunk_size(self.config, job.keypoints.shape[1]))
        with progress_bar(progress, job.count, "lift", "pose") as bar:
            for start, stop in bounds:
                request = lift_request(job, start, stop)
                response = self._unary("Lift2Dto3D", request, timeout)
                poses.append(check_rows(lift_poses(response), stop - start, "pose3d"))
                responses.append(response)
                bar.update(stop - start)
        return join_lift(poses, responses, job.single)

    def augment(
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
        """Augment 3D poses [N, 17, 3]: `count` new poses per source, with their 2D projections.

        Returns (poses3d [N*count, 17, 3], keypoints2d [N*count, 17, 2], params). Jobs over
        `max_poses_per_call` outputs go through StreamAugment in chunks of that size (deadline:
        `timeout` per chunk) and are joined; the server numbers noise rows across the job, so
        the result is the same as one unary call with the same seed.
        """
        job = prepare_augment(poses3d, count, ops, seed, camera, model)
        per_call = augment_outputs_per_call(self.config)
        with progress_bar(progress, job.outputs, "augment", "pose") as bar:
            if job.outputs <= per_call:
                request = augment_request(job, 0, len(job.poses3d), job.seed)
                result = augment_result(self._unary("Augment", request, timeout))
                check_rows(result.poses3d, job.outputs, "poses3d")
                bar.update(job.outputs)
                return result
            calls = -(-job.outputs // per_call)
            deadline = None if self._timeout(timeout) is None else self._timeout(timeout) * calls
            parts = []
            for chunk in self._stream_job(job, per_call, deadline):
                parts.append(AugmentResult(chunk.poses3d, chunk.keypoints2d, chunk.params))
                bar.update(len(chunk.poses3d))
        return concat_augment(parts)

    # -- streams -------------------------------------------------------------------------

    def lift_stream(
        self,
        batches: Iterable[object],
        format: str | int = "h36m17",
        image_size: ImageSizeLike | None = None,
        model: str | None = None,
        *,
        camera: CameraOption = None,
        timeout: float | None = _UNSET,
        progress: ProgressOption = False,
        total: int | None = None,
    ) -> Iterator[np.ndarray]:
        """Lift a sequence of batches (video frames, file shards) over one StreamLift2Dto3D
        call, yielding [n, 17, 3] per batch in input order while later batches are in flight.

        A batch is an array [n, K, 2] or a mapping with "keypoints" and optional "scores",
        "image_size" and "camera" (see `lift`). After UNAVAILABLE the stream is reopened and
        unanswered batches resent.
        """
        if total is None and hasattr(batches, "__len__"):
            total = len(batches)  # type: ignore[arg-type]
        parts = lift_stream_parts(iter(batches), self.config, format, image_size, model, camera)
        feed, assembler, pull_lock = LiftFeed(), LiftAssembler(), threading.Lock()
        deadline = Deadline(self.config.stream_timeout if timeout is _UNSET else timeout)
        retries = StreamRetries(self.config, deadline, "StreamLift2Dto3D")
        with progress_bar(progress, total, "lift stream", "batch") as bar:
            while True:
                endpoint = self._pool.next()
                call = endpoint.poseaug.StreamLift2Dto3D(
                    feed.requests(parts, pull_lock),
                    timeout=deadline.remaining(),
                    metadata=self._pool.metadata,
                )
                try:
                    for message in call:
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
                    time.sleep(retries.delay_after(error, endpoint.target))
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

    def augment_stream(
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
    ) -> Iterator[AugmentChunk]:
        """Bulk augmentation over StreamAugment: yields AugmentChunk(offset, poses3d,
        keypoints2d, params) pieces of at most `chunk_size` rows, in row order.

        The server bounds its memory per chunk, so N * count may exceed the unary limit. After
        UNAVAILABLE the job is asked again and rows already delivered are skipped (the same
        seed gives the same rows).
        """
        job = prepare_augment(poses3d, count, ops, seed, camera, model)
        stream_timeout = self.config.stream_timeout if timeout is _UNSET else timeout
        with progress_bar(progress, job.outputs, "augment", "pose") as bar:
            for chunk in self._stream_job(job, chunk_size, stream_timeout):
                bar.update(len(chunk.poses3d))
                yield chunk

    def _stream_job(
        self, job: AugmentJob, chunk_size: int, timeout: float | None
    ) -> Iterator[AugmentChunk]:
        """Chunks of a whole job: one StreamAugment call, or one per ~million sources."""
        calls = stream_augment_requests(job, stream_sources_per_call(self.config), chunk_size)
        for base, rows, request in calls:
            yield from self._augment_call(request, base, rows, timeout)

    def _augment_call(
        self, request: poseaug_pb2.StreamAugmentRequest, base: int, rows: int, timeout: float | None
    ) -> Iterator[AugmentChunk]:
        """One StreamAugment call with resume-on-retry; yields rows [base, base + rows)."""
        deadline, delivered = Deadline(timeout), 0
        retries = StreamRetries(self.config, deadline, "StreamAugment")
        while True:
            endpoint = self._pool.next()
            call = endpoint.poseaug.StreamAugment(
                request, timeout=deadline.remaining(), metadata=self._pool.metadata
            )
            try:
                for message in call:
                    chunk = stream_chunk(message, base, delivered)
                    if chunk is None:
                        continue
                    delivered += len(chunk.poses3d)
                    retries.progressed()
                    yield chunk
                break
            except grpc.RpcError as error:
                time.sleep(retries.delay_after(error, endpoint.target))
            finally:
                call.cancel()
        if delivered != rows:
            raise stream_ended_early(delivered, rows)
