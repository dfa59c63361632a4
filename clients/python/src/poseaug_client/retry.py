"""Deadlines and retries: UNAVAILABLE (server down, restarting, unreachable) is retried with
exponential backoff; every other status is final, since repeating it cannot help."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import grpc

from poseaug_client.channel import Endpoint, EndpointPool
from poseaug_client.config import ClientConfig
from poseaug_client.errors import PoseAugError

__all__ = [
    "Deadline",
    "Retries",
    "acall_with_retry",
    "backoff_delays",
    "call_with_retry",
    "final_error",
    "should_retry",
]

log = logging.getLogger("poseaug_client")
T = TypeVar("T")


def backoff_delays(config: ClientConfig) -> Iterator[float]:
    """Sleep before each retry: initial * multiplier**k, capped, with 20% jitter downwards."""
    delay = config.initial_backoff
    while True:
        yield delay * random.uniform(0.8, 1.0)
        delay = min(config.max_backoff, delay * config.backoff_multiplier)


class Deadline:
    """Time left of one call's deadline, shared by its attempts."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        return None if self.end is None else self.end - time.monotonic()

    def expired_error(self, method: str, last: grpc.RpcError | None) -> PoseAugError:
        why = f"; last error: {last.code().name}: {last.details()}" if last is not None else ""
        return PoseAugError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"{method}: no answer within the {self.timeout:g} s deadline{why}",
        )


def should_retry(
    error: grpc.RpcError, attempt: int, config: ClientConfig, deadline: Deadline
) -> bool:
    """Retry UNAVAILABLE only, while attempts and time are left."""
    if error.code() != grpc.StatusCode.UNAVAILABLE or attempt >= config.max_attempts:
        return False
    left = deadline.remaining()
    return left is None or left > 0


def final_error(error: grpc.RpcError, deadline: Deadline, method: str) -> PoseAugError:
    """The PoseAugError for a failure that is not retried. A CANCELLED we did not ask for,
    arriving after our deadline passed, is reported as DEADLINE_EXCEEDED: a server may cancel
    work whose deadline it saw pass before the client's own timer fired."""
    if error.code() == grpc.StatusCode.CANCELLED and _expired(deadline):
        return deadline.expired_error(method, error)
    return PoseAugError.from_rpc_error(error)


def _log_retry(
    method: str, target: str, error: grpc.RpcError, attempt: int, delay: float, n: int
) -> None:
    log.warning(
        "%s to %s: UNAVAILABLE (%s); attempt %d/%d, retrying in %.2f s",
        method,
        target,
        error.details(),
        attempt,
        n,
        delay,
    )


class Retries:
    """Retry bookkeeping of one call across its attempts, written once for both clients.

    A unary call (`bounded`) never sleeps past its deadline. In a resumable stream, progress
    (an answer received) resets both the attempt count and the backoff, so a long stream
    survives many separate outages."""

    def __init__(
        self, config: ClientConfig, deadline: Deadline, method: str, *, bounded: bool = False
    ) -> None:
        self.config = config
        self.deadline = deadline
        self.method = method
        self.attempt = 1
        self._bounded = bounded
        self._delays = backoff_delays(config)

    def progressed(self) -> None:
        self.attempt = 1

    def delay_after(self, error: grpc.RpcError, target: str) -> float:
        """Seconds to wait before the next attempt, or raise the final PoseAugError."""
        if not should_retry(error, self.attempt, self.config, self.deadline):
            raise final_error(error, self.deadline, self.method) from None
        if self.attempt == 1:  # first failure since progress: backoff starts over
            self._delays = backoff_delays(self.config)
        delay = next(self._delays)
        if self._bounded:
            delay = _bounded(delay, self.deadline)
        _log_retry(self.method, target, error, self.attempt, delay, self.config.max_attempts)
        self.attempt += 1
        return delay

    def check_deadline(self, error: grpc.RpcError) -> None:
        """After a unary call's backoff: DEADLINE_EXCEEDED if no time is left for another try."""
        if _expired(self.deadline):
            raise self.deadline.expired_error(self.method, error) from None


def call_with_retry(
    pool: EndpointPool,
    method: str,
    call: Callable[[Endpoint, float | None], T],
    timeout: float | None,
) -> T:
    """Run `call(endpoint, seconds_left)` until it succeeds or fails for good."""
    retries = Retries(pool.config, Deadline(timeout), method, bounded=True)
    while True:
        endpoint = pool.next()
        try:
            return call(endpoint, retries.deadline.remaining())
        except grpc.RpcError as error:
            time.sleep(retries.delay_after(error, endpoint.target))
            retries.check_deadline(error)


async def acall_with_retry(
    pool: EndpointPool,
    method: str,
    call: Callable[[Endpoint, float | None], Awaitable[T]],
    timeout: float | None,
) -> T:
    """The asyncio form of `call_with_retry`."""
    retries = Retries(pool.config, Deadline(timeout), method, bounded=True)
    while True:
        endpoint = pool.next()
        try:
            return await call(endpoint, retries.deadline.remaining())
        except grpc.RpcError as error:
            await asyncio.sleep(retries.delay_after(error, endpoint.target))
            retries.check_deadline(error)


def _bounded(delay: float, deadline: Deadline) -> float:
    left = deadline.remaining()
    return delay if left is None else max(0.0, min(delay, left))


def _expired(deadline: Deadline) -> bool:
    left = deadline.remaining()
    return left is not None and left <= 0
