"""PoseAugService handlers on grpc.aio: parse, hand work to the lift queue / augment engine, answer.

All handlers run on one asyncio event loop. A lift request is parsed on the loop (or in the
worker pool when it is large) and handed to the lift queue (lift_queue.py), which merges it
with other callers' in its model's DynamicBatcher; StreamLift2Dto3D reads its messages ahead
through a window (lift_stream.py). Augment runs its ONNX Runtime work in the worker pool.

Every handler is wrapped by `calls.instrumented` (ServiceError to gRPC status, metrics) and
keeps its caller's deadline and cancellation in a `calls.CallState`. What a call makes the
server keep (track state, owed answers, queued work, responses) is reserved from the memory
budget (memory_budget.py) before it is taken, and given back when the call ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from poseaug.v1 import poseaug_pb2, poseaug_pb2_grpc
from poseaug_service.augmentation import (
    MAX_STREAM_ROWS,
    AugmentEngine,
    AugmentJob,
    check_chunk_fits,
    check_fits_one_message,
    parse_augment,
    stream_chunk_rows,
)
from poseaug_service.calls import CallState, instrumented
from poseaug_service.config import ServerConfig
from poseaug_service.errors import CancelledError, InvalidArgumentError
from poseaug_service.lift_queue import LiftQueue, Submitted
from poseaug_service.lift_stream import ReadAhead
from poseaug_service.lifting import (
    LiftInput,
    lift_response,
    parse_lift,
    resolve_model,
    response_bytes,
)
from poseaug_service.limits import INLINE_PARSE_BYTES
from poseaug_service.memory_budget import ByteBudget, Holding
from poseaug_service.metrics import Metrics
from poseaug_service.model_info import model_info
from poseaug_service.repository import ModelRepository
from poseaug_service.stream_tracks import Owed, StreamTracks
from poseaug_service.tensors import require_finite_result
from poseaug_service.track_windows import TrackChunks, lifter_inputs


@dataclass(eq=False)
class _Prepared:
    """A stream message, prepared: the answers it makes due (each with its window-model work
    for the poses no step answered, if any), and its step runs, released once those answers
    are built."""

    answers: list[tuple[Owed, Submitted | None]]
    steps: list[Submitted]


def _merge(owed: Owed, window_poses: np.ndarray) -> np.ndarray:
    """A stream message's poses: the steps' answers with the window model's for the rest."""
    if owed.pose3d is None:
        return window_poses
    owed.pose3d[owed.missing()] = window_poses
    return owed.pose3d


class PoseAugServicer(poseaug_pb2_grpc.PoseAugServiceServicer):
    """The PoseAugService implementation over a loaded ModelRepository."""

    def __init__(
        self, config: ServerConfig, repo: ModelRepository, metrics: Metrics, budget: ByteBudget
    ) -> None:
        self.config = config
        self.repo = repo
        self.metrics = metrics
        self.budget = budget
        self.active_calls = 0  # PoseAugService calls being handled (touched on the loop only)
        self.closing = False  # set by the server's graceful stop: new calls get UNAVAILABLE
        # Built on the serving loop.
        self.lifts = LiftQueue(config, metrics, list(repo.models), budget)
        augment_batch = metrics.batch_size
        self.augment = AugmentEngine(
            max_jobs=config.max_queue,
            slots=config.batch_workers,
            sub_chunk=config.augment_run_rows,
            on_run=lambda model, n: augment_batch.labels(model=model, kind="augment").observe(n),
        )
        # Blocking work off the event loop: large parses and answers, augmentor runs.
        self.pool = ThreadPoolExecutor(
            max_workers=config.grpc_workers, thread_name_prefix="poseaug-work"
        )

    @property
    def _message_limit(self) -> int:
        """Largest response payload we build: the message limit less room for framing."""
        return self.config.max_message_bytes * 15 // 16

    def close(self) -> None:
        self.lifts.close()
        self.pool.shutdown(wait=True)

    async def _blocking(self, size: int, fn: Callable, *args):
        """fn(*args) inline when the payload is small, else in the worker pool."""
        if size <= INLINE_PARSE_BYTES:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    # --- lifting ---------------------------------------------------------------------------
    async def _lift_answer(
        self,
        parsed: LiftInput,
        submitted: Submitted,
        call: CallState,
        holding: Holding,
        method: str,
        field: str,
        finish: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        """Await a submitted request's poses (`finish` puts them in request order, where they
        are not) and build its response (its bytes held in `holding` until the caller gives
        them back); the request is released either way (its caller will not come back with
        it)."""
        try:
            pose3d = await self.lifts.collect(submitted, call)
            if finish is not None:
                pose3d = finish(pose3d)
            return await self._respond(parsed, pose3d, holding, method, field)
        finally:
            submitted.release()

    async def _respond(
        self, parsed: LiftInput, pose3d: np.ndarray, holding: Holding, method: str, field: str
    ):
        holding.grow(response_bytes(len(pose3d)), "responses")
        return await self._blocking(pose3d.nbytes, self._answer, parsed, pose3d, method, field)

    def _answer(self, parsed: LiftInput, pose3d: np.ndarray, method: str, field: str):
        require_finite_result(pose3d, field)
        self.metrics.call_metrics(method).poses.inc(len(pose3d))
        return lift_response(parsed, pose3d)

    async def _parse_lift(self, request, prefix: str = "") -> LiftInput:
        return await self._blocking(
            len(request.keypoints.data),
            parse_lift,
            request,
            self.repo,
            self.config.max_poses_per_request,
            prefix,
        )

    @instrumented("Lift2Dto3D")
    async def Lift2Dto3D(self, request, context):  # noqa: N802 (gRPC method name)
        call = CallState(context)
        parsed = await self._parse_lift(request)
        inputs = await self._blocking(len(request.keypoints.data), lifter_inputs, parsed)
        holding = Holding(self.budget)
        try:
            submitted = self.lifts.submit(parsed, call, inputs)
            finish = inputs.poses if isinstance(inputs, TrackChunks) else None
            return await self._lift_answer(
                parsed, submitted, call, holding, "Lift2Dto3D", "keypoints.data", finish
            )
        finally:
            holding.close()

    @instrumented("StreamLift2Dto3D")
    async def StreamLift2Dto3D(self, request_iterator, context):  # noqa: N802 (gRPC method name)
        """Messages are validated and queued ahead (lift_stream.py); answers go out in order,
        each as soon as the stream's lookahead allows (stream_tracks.py), the rest when the
        client closes its side. Where the model's step form serves the stream, each message's
        steps run (batched with other streams') before the next message is taken up, since
        its tracks' states must be up to date. The stream's track state and owed messages are
        reserved from the memory budget before a message is recorded (`holding`)."""
        call = CallState(context)
        config = self.config
        tracks: StreamTracks | None = None
        holding = Holding(self.budget)
        owed_bytes: dict[int, int] = {}  # message -> bytes held for it until it is answered

        def due(owed_list: list[Owed]) -> list[tuple[Owed, Any]]:
            """Messages now answerable, with the window-model input of their poses no step
            answered (None if none; per-pose Python work: in the worker pool for big messages,
            like parsing)."""
            assert tracks is not None
            return [(o, tracks.windows(o) if len(o.missing()) else None) for o in owed_list]

        def submit(owed: Owed, inputs: Any) -> tuple[Owed, Submitted | None]:
            return owed, None if inputs is None else self.lifts.submit(owed.parsed, call, inputs)

        def answered(owed: Owed) -> None:
            holding.shrink(owed_bytes.pop(owed.index, 0), "owed")

        async def run_steps(parsed: LiftInput, prefix: str, size: int) -> list[Submitted]:
            """Record the message; run its steps, one after the other, keeping their results."""
            assert tracks is not None
            done: list[Submitted] = []
            try:
                for run in await self._blocking(size, tracks.add, parsed, prefix):
                    rows = await self._blocking(size, run.inputs)
                    submitted = self.lifts.submit_steps(parsed.model, call, rows)
                    done.append(submitted)
                    outputs = await self.lifts.collect(submitted, call)
                    await self._blocking(size, tracks.stepped, run, outputs)
            except BaseException:
                for submitted in done:
                    submitted.release()
                raise
            return done

        async def prepare(message, k: int) -> _Prepared:
            nonlocal tracks
            if tracks is None:
                tracks = StreamTracks(
                    message.lookahead, config.max_stream_tracks, config.track_idle_s
                )
            elif message.lookahead not in (0, tracks.lookahead):
                raise InvalidArgumentError(
                    "lookahead",
                    f"message {k} asks for {message.lookahead}; the stream's first message set "
                    f"{tracks.lookahead} (later messages send 0 or the same)",
                )
            parsed = await self._parse_lift(message.request, prefix=f"request[{k}].")
            most = parsed.model.temporal_lookahead
            if tracks.lookahead > most:
                raise InvalidArgumentError(
                    "lookahead",
                    f"{tracks.lookahead} frames is more than model {parsed.model.name} can use "
                    f"(0..{most})",
                )
            size = len(message.request.keypoints.data)
            # What recording the message may add, reserved before it is recorded.
            grows, keeps = await self._blocking(size, tracks.growth_bound, parsed)
            holding.grow(grows, "tracks")
            holding.grow(keeps, "owed")
            owed_bytes[k] = keeps
            steps = await run_steps(parsed, f"request[{k}].", size)
            ready, held = await self._blocking(size, lambda: (due(tracks.ready()), tracks.nbytes))
            holding.resize(held, "tracks")
            return _Prepared([submit(owed, inputs) for owed, inputs in ready], steps)

        def drop(item: _Prepared) -> None:
            for owed, submitted in item.answers:
                answered(owed)
                if submitted is not None:
                    submitted.cancel()
            for submitted in item.steps:
                submitted.release()

        async def answer(owed: Owed, submitted: Submitted | None):
            method, field = "StreamLift2Dto3D", "request.keypoints.data"
            if submitted is None:  # every pose answered by a step
                response = await self._respond(owed.parsed, owed.pose3d, holding, method, field)
            else:
                response = await self._lift_answer(
                    owed.parsed,
                    submitted,
                    call,
                    holding,
                    method,
                    field,
                    lambda poses: _merge(owed, poses),
                )
            return poseaug_pb2.StreamLift2Dto3DResponse(response=response, request_index=owed.index)

        try:
            async with ReadAhead(request_iterator, prepare, drop, call) as window:
                async for item in window:
                    try:  # the steps are released once their answers are built (as lift requests)
                        responses = [await answer(*answer_of) for answer_of in item.answers]
                    finally:
                        for submitted in item.steps:
                            submitted.release()
                    for (owed, _), response in zip(item.answers, responses, strict=True):
                        yield response
                        answered(owed)
                    holding.resize(0, "responses")  # sent
                # The client closed its side: the answers still owed (lookahead) go out now.
                for owed, inputs in due(tracks.flush()) if tracks is not None else []:
                    yield await answer(*submit(owed, inputs))
                    answered(owed)
                    holding.resize(0, "responses")
        finally:
            if tracks is not None:
                tracks.close()
            holding.close()

    # --- augmentation ----------------------------------------------------------------------
    def _augment_rows(self, job: AugmentJob, start: int, stop: int, call: CallState, method: str):
        """Runs in the worker pool: augmentor runs, checks and the response message."""
        try:
            out = self.augment.compute(job, start, stop, call.is_active)
        except CancelledError as exc:
            raise call.as_status(exc) from None
        require_finite_result(out, "poses3d.data")
        self.metrics.call_metrics(method).poses.inc(stop - start)
        return job.response(out)

    async def _in_pool(self, call: CallState, fn: Callable, *args):
        """fn(*args) in the worker pool; a caller who leaves stops it at its next sub-chunk."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        except asyncio.CancelledError:
            call.cancelled = True
            raise

    @instrumented("Augment")
    async def Augment(self, request, context):  # noqa: N802 (gRPC method name)
        call = CallState(context)
        job = await self._blocking(
            len(request.poses3d.data),
            parse_augment,
            request,
            self.repo,
            self.config.max_poses_per_request,
        )
        check_fits_one_message(job, self._message_limit, self.config.max_message_mb)
        holding = Holding(self.budget)
        try:
            with self.augment.admitted():
                # Its rows as arrays, then as the response message.
                holding.grow(2 * job.response_bytes(job.total), "responses")
                return await self._in_pool(
                    call, self._augment_rows, job, 0, job.total, call, "Augment"
                )
        finally:
            holding.close()

    @instrumented("StreamAugment")
    async def StreamAugment(self, request, context):  # noqa: N802 (gRPC method name)
        call = CallState(context)
        chunk = stream_chunk_rows(request.chunk_size)
        job = await self._blocking(
            len(request.request.poses3d.data),
            parse_augment,
            request.request,
            self.repo,
            MAX_STREAM_ROWS,
            "request.",
        )
        check_chunk_fits(job, chunk, self._message_limit, self.config.max_message_mb)
        holding = Holding(self.budget)

        def chunk_bytes(start: int) -> int:
            """A chunk's rows as arrays, then as its response message."""
            return 2 * job.response_bytes(min(job.total, start + chunk) - start)

        def rows(start: int) -> asyncio.Future:
            holding.grow(chunk_bytes(start), "responses")  # before it is computed
            stop = min(job.total, start + chunk)
            return asyncio.ensure_future(
                self._in_pool(call, self._augment_rows, job, start, stop, call, "StreamAugment")
            )

        try:
            with self.augment.admitted():
                # One chunk ahead: the next chunk is computed while this one is sent.
                starts = range(0, job.total, chunk)
                if not starts:
                    return
                pending = rows(starts[0])
                try:
                    for k, start in enumerate(starts):
                        response = await pending
                        if k + 1 < len(starts):
                            pending = rows(starts[k + 1])
                        yield poseaug_pb2.StreamAugmentResponse(chunk=response, offset=start)
                        holding.shrink(chunk_bytes(start), "responses")  # sent
                finally:
                    pending.cancel()
        finally:
            holding.close()

    # --- model info ------------------------------------------------------------------------
    @instrumented("ListModels")
    async def ListModels(self, request, context):  # noqa: N802 (gRPC method name)
        state = self.repo.state
        return poseaug_pb2.ListModelsResponse(
            models=[model_info(m, state.default_name) for m in state.models.values()],
            default_model=state.default_name,
            refused=[
                poseaug_pb2.RefusedBundle(name=name, reason=reason)
                for name, reason in sorted(state.refused.items())
            ],
        )

    @instrumented("GetModelInfo")
    async def GetModelInfo(self, request, context):  # noqa: N802 (gRPC method name)
        state = self.repo.state
        model = resolve_model(state, request.model)
        return poseaug_pb2.GetModelInfoResponse(model=model_info(model, state.default_name))
