"""PoseAugService handlers: parse, hand work to the batcher / augment engine, answer.

Every handler is wrapped by `_instrumented`, which turns ServiceError into the matching gRPC
status (message naming the field) and records requests, errors, latency and in-flight calls.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

import grpc

from poseaug.v1 import poseaug_pb2, poseaug_pb2_grpc
from poseaug_service.augmentation import (
    DEFAULT_CHUNK,
    MAX_CHUNK,
    MAX_STREAM_ROWS,
    AugmentEngine,
    AugmentJob,
    parse_augment,
)
from poseaug_service.batcher import DynamicBatcher
from poseaug_service.config import ServerConfig
from poseaug_service.errors import (
    CancelledError,
    DeadlineExceededError,
    InvalidArgumentError,
    ServiceError,
)
from poseaug_service.keypoint_formats import H36M_JOINT_NAMES, H36M_PARENTS, INPUT_FORMATS
from poseaug_service.lifting import LiftInput, lift_response, parse_lift, resolve_model
from poseaug_service.metrics import Metrics
from poseaug_service.runtime import LoadedModel, ModelRepository
from poseaug_service.tensors import require_finite_result

log = logging.getLogger(__name__)

# Lift messages of one stream being processed at once (validated and queued ahead).
STREAM_WINDOW = 8
# Rows per augmentor run.
AUGMENT_SUB_CHUNK = 8192
_NO_DEADLINE = 1e7


def _instrumented(method: str) -> Callable:
    """Map errors to status codes and record metrics, for unary and server-streaming handlers."""

    def decorate(fn: Callable) -> Callable:
        def finish(self, context, code: grpc.StatusCode, started: float, exc=None) -> None:
            m: Metrics = self.metrics
            m.inflight.dec()
            m.requests.labels(method, code.name).inc()
            if code != grpc.StatusCode.OK:
                m.errors.labels(method, code.name).inc()
            m.latency.labels(method).observe(time.perf_counter() - started)
            if exc is not None:
                context.abort(code, str(exc))

        def classify(exc: BaseException) -> grpc.StatusCode:
            if isinstance(exc, ServiceError):
                return exc.code
            log.exception("%s failed", method, exc_info=exc)
            return grpc.StatusCode.INTERNAL

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def stream_wrapper(self, request, context):
                started = time.perf_counter()
                self.metrics.inflight.inc()
                try:
                    yield from fn(self, request, context)
                except GeneratorExit:
                    finish(self, context, grpc.StatusCode.CANCELLED, started)
                    raise
                except Exception as exc:
                    finish(self, context, classify(exc), started, exc)
                else:
                    finish(self, context, grpc.StatusCode.OK, started)

            return stream_wrapper

        @functools.wraps(fn)
        def unary_wrapper(self, request, context):
            started = time.perf_counter()
            self.metrics.inflight.inc()
            try:
                response = fn(self, request, context)
            except Exception as exc:
                finish(self, context, classify(exc), started, exc)
            else:
                finish(self, context, grpc.StatusCode.OK, started)
                return response

        return unary_wrapper

    return decorate


def _time_left(context: grpc.ServicerContext) -> float | None:
    """Seconds to the caller's deadline; None without one (gRPC reports a huge number)."""
    remaining = context.time_remaining()
    return None if remaining is None or remaining > _NO_DEADLINE else max(remaining, 0.0)


@contextlib.contextmanager
def _deadline_as_status(context: grpc.ServicerContext) -> Iterator[None]:
    """Work dropped because the deadline passed is DEADLINE_EXCEEDED, not CANCELLED."""
    try:
        yield
    except CancelledError:
        left = _time_left(context)
        if left is not None and left <= 0:
            raise DeadlineExceededError("", "deadline exceeded before the work finished") from None
        raise


def _is_active(context: grpc.ServicerContext) -> Callable[[], bool]:
    def active() -> bool:
        remaining = _time_left(context)
        return context.is_active() and (remaining is None or remaining > 0)

    return active


class PoseAugServicer(poseaug_pb2_grpc.PoseAugServiceServicer):
    """The PoseAugService implementation over a loaded ModelRepository."""

    def __init__(self, config: ServerConfig, repo: ModelRepository, metrics: Metrics) -> None:
        self.config = config
        self.repo = repo
        self.metrics = metrics
        self.batchers: dict[str, DynamicBatcher] = {}
        self._batchers_lock = threading.Lock()
        for name in repo.models:
            self._batcher(name)
        augment_batch = metrics.batch_size
        self.augment = AugmentEngine(
            max_jobs=config.max_queue,
            slots=config.batch_workers,
            sub_chunk=min(AUGMENT_SUB_CHUNK, max(config.max_batch, 256)),
            on_run=lambda model, n: augment_batch.labels(model=model, kind="augment").observe(n),
        )

    @property
    def _message_limit(self) -> int:
        """Largest response payload we build: the message limit less room for framing."""
        return self.config.max_message_bytes * 15 // 16

    def close(self) -> None:
        with self._batchers_lock:
            batchers = list(self.batchers.values())
        for batcher in batchers:
            batcher.close()

    def _batcher(self, name: str) -> DynamicBatcher:
        """The lift batcher of a model name, created on first use (a reload may add names).

        One batcher serves every version of a name; each request carries its version's
        session, so batches never mix versions."""
        batcher = self.batchers.get(name)
        if batcher is not None:
            return batcher
        with self._batchers_lock:
            if name not in self.batchers:
                config = self.config
                self.batchers[name] = DynamicBatcher(
                    run=_unbound_run,
                    max_batch=config.max_batch,
                    max_delay_s=config.max_queue_delay_us / 1e6,
                    max_queue=config.max_queue,
                    workers=config.batch_workers,
                    stats=self.metrics.batch_stats(name),
                    name=f"lift-{name}",
                )
            return self.batchers[name]

    # --- lifting ---------------------------------------------------------------------------
    def _submit(self, parsed: LiftInput, context: grpc.ServicerContext):
        batcher = self._batcher(parsed.model.name)
        pending = batcher.submit(parsed.keypoints, _is_active(context), run=parsed.model.run_lifter)
        return batcher, pending

    def _collect(self, batcher, pending, context: grpc.ServicerContext):
        with _deadline_as_status(context):
            return batcher.wait(pending, _time_left(context))

    @_instrumented("Lift2Dto3D")
    def Lift2Dto3D(self, request, context):  # noqa: N802 (gRPC method name)
        parsed = parse_lift(request, self.repo, self.config.max_poses_per_request)
        batcher, pending = self._submit(parsed, context)
        context.add_callback(lambda: batcher.cancel(pending))
        pose3d = self._collect(batcher, pending, context)
        require_finite_result(pose3d, "keypoints.data")
        self.metrics.poses.labels("Lift2Dto3D").inc(len(pose3d))
        return lift_response(parsed, pose3d)

    @_instrumented("StreamLift2Dto3D")
    def StreamLift2Dto3D(self, request_iterator, context):  # noqa: N802 (gRPC method name)
        """A reader thread validates and queues messages ahead; answers go out in order."""
        window: queue.Queue = queue.Queue(maxsize=STREAM_WINDOW)
        stop = threading.Event()
        context.add_callback(stop.set)

        def read() -> None:
            try:
                for k, msg in enumerate(request_iterator):
                    if stop.is_set():
                        return
                    try:
                        parsed = parse_lift(
                            msg.request,
                            self.repo,
                            self.config.max_poses_per_request,
                            prefix=f"request[{k}].",
                        )
                        item = (parsed, *self._submit(parsed, context))
                    except ServiceError as exc:
                        window.put(exc)
                        return
                    window.put(item)
            except ServiceError as exc:  # a message that did not parse (see wire.py)
                window.put(exc)
                return
            except Exception as exc:  # the stream broke (cancelled or transport error)
                window.put(CancelledError("", f"request stream ended: {exc}"))
                return
            window.put(None)

        reader = threading.Thread(target=read, name="stream-lift-reader", daemon=True)
        reader.start()
        try:
            while True:
                item = window.get()
                if item is None:
                    return
                if isinstance(item, ServiceError):
                    raise item
                parsed, batcher, pending = item
                pose3d = self._collect(batcher, pending, context)
                require_finite_result(pose3d, "request.keypoints.data")
                self.metrics.poses.labels("StreamLift2Dto3D").inc(len(pose3d))
                yield poseaug_pb2.StreamLift2Dto3DResponse(response=lift_response(parsed, pose3d))
        finally:
            stop.set()
            while True:  # release queued work of a stream that ended early
                try:
                    item = window.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, tuple):
                    item[1].cancel(item[2])

    # --- augmentation ----------------------------------------------------------------------
    def _augment_rows(self, job: AugmentJob, start: int, stop: int, context, method: str):
        with _deadline_as_status(context):
            out = self.augment.compute(job, start, stop, _is_active(context))
        require_finite_result(out, "poses3d.data")
        self.metrics.poses.labels(method).inc(stop - start)
        return job.response(out)

    @_instrumented("Augment")
    def Augment(self, request, context):  # noqa: N802 (gRPC method name)
        job = parse_augment(request, self.repo, self.config.max_poses_per_request)
        if job.response_bytes(job.total) > self._message_limit:
            raise InvalidArgumentError(
                "count",
                f"the response for N * count = {job.total} poses would be about "
                f"{job.response_bytes(job.total) >> 20} MiB, over the server's "
                f"{self.config.max_message_mb} MiB message limit; use StreamAugment",
            )
        with self.augment.admitted():
            return self._augment_rows(job, 0, job.total, context, "Augment")

    @_instrumented("StreamAugment")
    def StreamAugment(self, request, context):  # noqa: N802 (gRPC method name)
        if request.chunk_size > MAX_CHUNK:
            raise InvalidArgumentError(
                "chunk_size", f"must be 0..{MAX_CHUNK}, got {request.chunk_size}"
            )
        chunk = request.chunk_size or DEFAULT_CHUNK
        job = parse_augment(request.request, self.repo, MAX_STREAM_ROWS, prefix="request.")
        largest = job.response_bytes(min(chunk, job.total))
        if largest > self._message_limit:
            raise InvalidArgumentError(
                "chunk_size",
                f"a chunk of {chunk} poses would be about {largest >> 20} MiB, "
                f"over the server's {self.config.max_message_mb} MiB message limit",
            )
        with self.augment.admitted():
            for start in range(0, job.total, chunk):
                stop = min(job.total, start + chunk)
                response = self._augment_rows(job, start, stop, context, "StreamAugment")
                yield poseaug_pb2.StreamAugmentResponse(chunk=response, offset=start)

    # --- model info ------------------------------------------------------------------------
    def _info(self, model: LoadedModel, default_name: str) -> poseaug_pb2.ModelInfo:
        manifest = model.bundle.manifest
        joints = manifest.get("joints") or {}
        metrics = {
            k: float(v)
            for k, v in (manifest.get("metrics") or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        return poseaug_pb2.ModelInfo(
            name=model.name,
            version=model.version,
            is_default=model.name == default_name,
            joint_names=joints.get("names") or H36M_JOINT_NAMES,
            joint_parents=joints.get("parents") or H36M_PARENTS,
            input_formats=INPUT_FORMATS,
            providers=model.providers,
            has_augmentor=model.augmentor is not None,
            metrics=metrics,
            manifest_json=model.bundle.manifest_text or json.dumps(manifest),
        )

    @_instrumented("ListModels")
    def ListModels(self, request, context):  # noqa: N802 (gRPC method name)
        state = self.repo.state
        return poseaug_pb2.ListModelsResponse(
            models=[self._info(m, state.default_name) for m in state.models.values()],
            default_model=state.default_name,
        )

    @_instrumented("GetModelInfo")
    def GetModelInfo(self, request, context):  # noqa: N802 (gRPC method name)
        state = self.repo.state
        model = resolve_model(state, request.model)
        return poseaug_pb2.GetModelInfoResponse(model=self._info(model, state.default_name))


def _unbound_run(x):
    raise RuntimeError("every lift request brings its model version's session")
