"""What every PoseAugService handler shares: the decorator that maps errors to gRPC status
codes and records metrics, and the per-call state worker threads consult (has the caller
gone, how long is left)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable

import grpc

from poseaug_service.errors import (
    CancelledError,
    DeadlineExceededError,
    ServiceError,
    UnavailableError,
)

log = logging.getLogger("poseaug_service.servicer")

_NO_DEADLINE = 1e7


def end_stream(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> None:
    """End a streaming call with `code`: set on the context, for the handler to return.
    `context.abort` from a stream whose caller was still sending made some callers see
    INTERNAL ("Internal error from Core") instead of the code."""
    context.set_code(code)
    context.set_details(details)


def instrumented(method: str) -> Callable:
    """Map errors to status codes and record metrics, for unary and server-streaming handlers.
    Once the server is closing, new calls are refused with UNAVAILABLE (clients retry that on
    another replica) while calls already in flight finish."""

    def decorate(fn: Callable) -> Callable:
        def begin(self) -> float:
            self.metrics.call_metrics(method).inflight.inc()
            self.active_calls += 1
            if self.closing:
                raise UnavailableError("", "server is shutting down; retry elsewhere")
            return time.perf_counter()

        def finish(self, code: grpc.StatusCode, started: float) -> None:
            calls = self.metrics.call_metrics(method)
            calls.inflight.dec()
            self.active_calls -= 1
            if code == grpc.StatusCode.OK:
                calls.ok.inc()
            else:
                self.metrics.requests.labels(method, code.name).inc()
                self.metrics.errors.labels(method, code.name).inc()
            calls.latency.observe(time.perf_counter() - started)

        def classify(exc: BaseException) -> grpc.StatusCode:
            if isinstance(exc, ServiceError):
                return exc.code
            log.exception("%s failed", method, exc_info=exc)
            return grpc.StatusCode.INTERNAL

        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def stream_wrapper(self, request, context):
                started = time.perf_counter()
                try:
                    started = begin(self)
                    async for item in fn(self, request, context):
                        yield item
                except (asyncio.CancelledError, GeneratorExit):
                    finish(self, grpc.StatusCode.CANCELLED, started)
                    raise
                except Exception as exc:
                    code = classify(exc)
                    finish(self, code, started)
                    end_stream(context, code, str(exc))
                else:
                    finish(self, grpc.StatusCode.OK, started)

            return stream_wrapper

        @functools.wraps(fn)
        async def unary_wrapper(self, request, context):
            started = time.perf_counter()
            try:
                started = begin(self)
                response = await fn(self, request, context)
            except asyncio.CancelledError:
                finish(self, grpc.StatusCode.CANCELLED, started)
                raise
            except Exception as exc:
                code = classify(exc)
                finish(self, code, started)
                await context.abort(code, str(exc))
            else:
                finish(self, grpc.StatusCode.OK, started)
                return response

        return unary_wrapper

    return decorate


class CallState:
    """What worker threads may ask about a call: has its caller gone? Set from the loop."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        remaining = context.time_remaining()
        self.deadline = (
            None
            if remaining is None or remaining > _NO_DEADLINE
            else time.perf_counter() + max(remaining, 0.0)
        )
        self.cancelled = False

    def time_left(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.perf_counter())

    def is_active(self) -> bool:
        return not self.cancelled and (self.deadline is None or time.perf_counter() < self.deadline)

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def as_status(self, exc: CancelledError) -> ServiceError:
        """Work dropped because the deadline passed is DEADLINE_EXCEEDED, not CANCELLED."""
        if self.past_deadline():
            return DeadlineExceededError("", "deadline exceeded before the work finished")
        return exc
