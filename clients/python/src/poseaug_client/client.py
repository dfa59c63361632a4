"""The synchronous client: numpy arrays in and out, chunking, retries, streams.

Planning and bookkeeping live in `_base.py` and `streaming.py`; this module holds the blocking
transport: calls with retries, and the loop that reopens a stream after UNAVAILABLE.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_client._base import _UNSET, _ClientBase
from poseaug_client.cameras import CameraLike, CameraOption
from poseaug_client.errors import PoseAugError
from poseaug_client.jobs import (
    DEFAULT_OPS,
    AugmentJob,
    AugmentOptions,
    ImageSizeLike,
    lift_stream_parts,
    prepare_augment,
)
from poseaug_client.progress import ProgressOption, progress_bar
from poseaug_client.results import AugmentChunk, AugmentResult, LiftResult, ModelInfo
from poseaug_client.retry import call_with_retry
from poseaug_client.streaming import ResumableStream

__all__ = ["PoseAugClient"]


class PoseAugClient(_ClientBase):
    """Blocking client for one server or a round-robin set of servers.

    Options (all keyword): timeout, stream_timeout, max_attempts, initial_backoff,
    max_backoff, max_poses_per_call, max_message_bytes, token, token_file, tls, tls_ca,
    tls_cert, tls_key, tls_server_name; see `ClientConfig`. Every failure raises PoseAugError.
    """

    _aio = False

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
        call = self._rpc(method, request)
        return call_with_retry(self._pool, method, call, self._timeout(timeout))

    def health(self, service: str = "", *, timeout: float | None = _UNSET) -> str:
        """grpc.health.v1 status of the server ("" = the whole server), e.g. "SERVING"."""
        try:
            response = self._unary(self._HEALTH, self._health_request(service), timeout)
        except PoseAugError as error:
            self._raise_unknown_service(error, service)
            raise
        return self._health_status(response)

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
        track_ids: object | None = None,
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
        inferred and whether the default camera was used. `track_ids` [N] integers: poses that
        share one are consecutive frames of one person (a tracker's ids); temporal models lift
        each track with windows over its frames, single-frame models ignore them. Batches over
        `max_poses_per_call` are sent as several calls and joined in order (a track cut there
        loses the frames across the cut: use `lift_stream` for long videos). A single pose
        [K, 2] gives a single pose [17, 3].
        """
        result = self.lift_result(
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

    def lift_result(
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
        """`lift` with what the server says about it: LiftResult(poses3d, joint_inferred,
        default_camera, pose_scores, model, model_version)."""
        plan = self._lift_plan(keypoints, format, image_size, scores, model, camera, track_ids)
        with progress_bar(progress, plan.job.count, "lift", "pose") as bar:
            for rows, request in plan.requests():
                plan.answered(self._unary("Lift2Dto3D", request, timeout), rows)
                bar.update(rows)
        return plan.result()

    def augment(
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
        """Augment 3D poses [N, 17, 3]: `count` new poses per source, with their 2D projections.

        Returns (poses3d [N*count, 17, 3], keypoints2d [N*count, 17, 2], params); the result's
        `outside_joint_limits` [N*count] flags poses with a joint angle outside the range of
        motion. By default each body is placed wholly inside `camera`'s image (a Camera, or the
        server's 1000 x 1002 default) and RT turns it at most 30 degrees from upright; see
        AugmentOptions for `placement`, `max_tilt_deg`, `redraw_implausible` and
        `keypoint_format` ("coco17" for COCO-17 keypoints2d). Jobs over
        `max_poses_per_call` outputs go through StreamAugment in chunks of that size (deadline:
        `timeout` per chunk) and are joined; the server numbers noise rows across the job, so
        the result is the same as one unary call with the same seed.
        """
        options = AugmentOptions(placement, max_tilt_deg, redraw_implausible, keypoint_format)
        plan = self._augment_plan(poses3d, count, ops, seed, camera, model, timeout, options)
        with progress_bar(progress, plan.job.outputs, "augment", "pose") as bar:
            if plan.unary:
                result = plan.unary_result(self._unary("Augment", plan.request(), timeout))
                bar.update(plan.job.outputs)
                return result
            for chunk in self._stream_job(plan.job, plan.chunk_size, plan.stream_timeout):
                plan.add(chunk)
                bar.update(len(chunk.poses3d))
        return plan.result()

    # -- streams -------------------------------------------------------------------------

    def lift_stream(
        self,
        batches: Iterable[object],
        format: str | int = "h36m17",
        image_size: ImageSizeLike | None = None,
        model: str | None = None,
        *,
        camera: CameraOption = None,
        lookahead: int = 0,
        timeout: float | None = _UNSET,
        progress: ProgressOption = False,
        total: int | None = None,
    ) -> Iterator[np.ndarray]:
        """Lift a sequence of batches (video frames, file shards) over one StreamLift2Dto3D
        call, yielding [n, 17, 3] per batch in input order while later batches are in flight.

        A batch is an array [n, K, 2] or a mapping with "keypoints" and optional "scores",
        "image_size", "camera" and "track_ids" (see `lift`). With a temporal model the server
        remembers each track's frames for the stream: with `lookahead` 0 every batch is
        answered from its tracks' current and past frames; with L > 0 (at most the model's
        ModelInfo.temporal_lookahead) each answer also uses L later batches and comes once they
        are sent (the last L when the batches end). After UNAVAILABLE the stream is reopened
        and unanswered batches resent (the server's track memory starts afresh).
        """
        total = self._stream_total(batches, total)
        parts = lift_stream_parts(iter(batches), self.config, format, image_size, model, camera)
        stream = self._lift_stream(parts, timeout, lookahead)
        with progress_bar(progress, total, "lift stream", "batch") as bar:
            for poses in self._resumable(stream):
                bar.update(1)
                yield poses

    def augment_stream(
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
    ) -> Iterator[AugmentChunk]:
        """Bulk augmentation over StreamAugment: yields AugmentChunk(offset, poses3d,
        keypoints2d, params) pieces of at most `chunk_size` rows, in row order.

        The server bounds its memory per chunk, so N * count may exceed the unary limit. After
        UNAVAILABLE the job is asked again and rows already delivered are skipped (the same
        seed gives the same rows).
        """
        options = AugmentOptions(placement, max_tilt_deg, redraw_implausible, keypoint_format)
        job = prepare_augment(poses3d, count, ops, seed, camera, model, options)
        with progress_bar(progress, job.outputs, "augment", "pose") as bar:
            for chunk in self._stream_job(job, chunk_size, self._stream_timeout(timeout)):
                bar.update(len(chunk.poses3d))
                yield chunk

    def _stream_job(
        self, job: AugmentJob, chunk_size: int, timeout: float | None
    ) -> Iterator[AugmentChunk]:
        for stream in self._augment_streams(job, chunk_size, timeout):
            yield from self._resumable(stream)

    def _resumable(self, stream: ResumableStream) -> Iterator[Any]:
        """Run a streaming call to its end, reopening it after UNAVAILABLE (see streaming.py)."""
        while True:
            endpoint = self._pool.next()
            call = getattr(endpoint.poseaug, stream.method)(
                stream.requests(),
                timeout=stream.deadline.remaining(),
                metadata=self._pool.metadata,
            )
            try:
                for message in call:
                    yield from stream.received(message)
                break
            except grpc.RpcError as error:
                time.sleep(stream.retries.delay_after(error, endpoint.target))
            finally:
                call.cancel()
        yield from stream.finished()
