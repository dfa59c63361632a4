"""Dynamic batching: many callers' poses merged into one ONNX Runtime run.

Callers `submit` a request of n rows, wait on it, and `release` it once they have answered
their own caller; worker threads own every session run. A worker takes requests from the queue
head until it has `max_batch` rows. It holds them for more (at most `max_delay_s` after the
oldest arrived) only while more are on their way: a caller it has already served is still
being answered (on a busy server those callers come straight back with their next request, so
waiting for them is what lets batches grow), or a burst of callers is still arriving (the last
request came under a millisecond ago and found other callers in flight). A lone caller is
never held back. A request larger than the room left is split: its remaining rows go to
the back of the queue, so a bulk request is processed in `max_batch` chunks while small
requests keep getting turns. The queue holds at most `max_queue` requests; beyond that `submit`
raises ResourceExhaustedError instead of growing. Requests whose caller has gone (cancelled,
deadline passed) are dropped before they run.

A request brings its own `run` (the session of the model version it was parsed with): a batch
only merges requests with the same `run` and rows of the same shape, so a model reload never
mixes versions in one run and in-flight requests finish on the sessions they started with. A
row counts as `row_cost` rows towards `max_batch` (a stretch of a track for a whole-track run
holds that many frames), so a run's size stays bounded whatever its rows hold. It may also bring a
`run_busy`, the same model for a busy host (on CPU: a session with fewer threads, which leaves
a core to the event loop that answers the other callers); batches run on it while callers
other than the batch's own are in flight.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from poseaug_service.errors import (
    CancelledError,
    ResourceExhaustedError,
    ServiceError,
    UnavailableError,
)

log = logging.getLogger(__name__)

RunFn = Callable[[np.ndarray], np.ndarray]

# Requests of a burst of callers reach the batcher one event-loop turn (parse and queue, about
# 0.1-0.5 ms on a loaded 2-core host) apart: a gap this long means the burst is over.
BURST_GAP_S = 0.001


@dataclass
class BatchStats:
    """Hooks for metrics: called with each run's size and each request's queue delay."""

    on_batch: Callable[[int], None] = lambda n: None
    on_queue_delay: Callable[[float], None] = lambda s: None
    on_depth: Callable[[int], None] = lambda d: None


@dataclass(eq=False)
class Pending:
    """One caller's request travelling through the batcher."""

    inputs: np.ndarray
    is_active: Callable[[], bool]
    run: RunFn
    enqueued_at: float = field(default_factory=time.perf_counter)
    outputs: np.ndarray | None = None
    next_row: int = 0
    done_rows: int = 0
    started: bool = False
    cancelled: bool = False
    error: ServiceError | BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    on_done: Callable[[], None] | None = None  # e.g. wakes an asyncio handler
    run_busy: RunFn | None = None  # `run` for a busy host, when the model has one
    released: bool = False  # the caller has answered its own caller (see `release`)
    row_cost: int = 1  # rows of max_batch one row counts as

    @property
    def rows(self) -> int:
        return self.inputs.shape[0]

    def finish(self) -> None:
        """Mark the request answered (outputs or error set) and wake whoever waits on it."""
        self.done.set()
        if self.on_done is not None:
            self.on_done()


class DynamicBatcher:
    """Queue + worker threads; each request brings the `run` function it is computed with
    (for example its model version's ORT lifter session)."""

    def __init__(
        self,
        max_batch: int,
        max_delay_s: float,
        max_queue: int,
        workers: int = 1,
        stats: BatchStats | None = None,
        name: str = "batcher",
    ) -> None:
        self._max_batch = max_batch
        self._max_delay = max_delay_s
        self._max_queue = max_queue
        self._stats = stats or BatchStats()
        self._queue: collections.deque[Pending] = collections.deque()
        self._queued_rows = 0  # queued rows, each counted `row_cost` times
        self._unreleased = 0  # requests submitted whose callers have not released them yet
        self._running = 0  # requests in the runs of all workers
        self._last_arrival = -float("inf")  # perf_counter() of the latest submit
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    # --- caller side -------------------------------------------------------------------
    def submit(
        self,
        inputs: np.ndarray,
        is_active: Callable[[], bool] = lambda: True,
        *,
        run: RunFn,
        on_done: Callable[[], None] | None = None,
        run_busy: RunFn | None = None,
        row_cost: int = 1,
    ) -> Pending:
        """Queue `inputs` [n, ...] for `run`; raises
        ResourceExhaustedError when the queue is full. `on_done` is called once, from the
        thread that answers the request (a worker, or the caller of `cancel`). The caller
        must `release` the request when it is done with it."""
        pending = Pending(
            inputs=inputs,
            is_active=is_active,
            run=run,
            on_done=on_done,
            run_busy=run_busy,
            row_cost=row_cost,
        )
        with self._cond:
            if self._closed:
                raise UnavailableError("", "server is shutting down")
            if len(self._queue) >= self._max_queue:
                raise ResourceExhaustedError(
                    "", f"server queue is full ({self._max_queue} pending requests); retry later"
                )
            self._queue.append(pending)
            self._queued_rows += pending.rows * row_cost
            self._unreleased += 1
            self._last_arrival = pending.enqueued_at
            self._stats.on_depth(len(self._queue))
            self._cond.notify()
        return pending

    def release(self, pending: Pending) -> None:
        """The caller has answered its own caller: it will not come back with this request.
        Until then a worker may hold a batch for it (see the module docstring). Idempotent."""
        with self._cond:
            self._release(pending)

    def _release(self, pending: Pending) -> None:
        if not pending.released:
            pending.released = True
            self._unreleased -= 1
            self._cond.notify_all()  # a worker holding a batch for this caller decides again

    def cancel(self, pending: Pending) -> None:
        """Drop the rest of a request (its caller went away, so it is released too); safe to
        call at any time."""
        with self._cond:
            self._release(pending)
            if pending.done.is_set():
                return
            pending.cancelled = True
            pending.error = CancelledError("", "call cancelled or deadline exceeded")
            pending.finish()

    def close(self) -> None:
        """Stop the workers after the queue drains; later submits get UNAVAILABLE."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()

    # --- worker side -------------------------------------------------------------------
    def _take_batch(self) -> list[tuple[Pending, int, int]] | None:
        """Under the lock: wait for work, then cut up to max_batch rows from the queue head."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            if self._max_delay > 0:
                deadline = self._queue[0].enqueued_at + self._max_delay
                while self._queued_rows < self._max_batch and not self._closed:
                    now = time.perf_counter()
                    until = self._hold_until(now, deadline)
                    if until <= now:
                        break
                    self._cond.wait(until - now)
            parts: list[tuple[Pending, int, int]] = []
            room = self._max_batch
            now = time.perf_counter()
            while room > 0 and self._queue:
                p = self._queue.popleft()
                fit = room // p.row_cost
                if parts and not p.cancelled and (not fit or not _same_run(p, parts[0][0])):
                    self._queue.appendleft(p)  # another model version or row shape, or a row
                    break  # too large for the room left: it starts the next run
                start = p.next_row
                left = p.rows - start
                if p.cancelled or not p.is_active():
                    self._queued_rows -= left * p.row_cost
                    self._release(p)
                    if not p.cancelled:
                        p.cancelled = True
                        p.error = CancelledError("", "call cancelled or deadline exceeded")
                        p.finish()
                    continue
                if not p.started:
                    p.started = True
                    self._stats.on_queue_delay(now - p.enqueued_at)
                take = min(left, max(fit, 1))  # one row at least, whatever it costs
                p.next_row = start + take
                self._queued_rows -= take * p.row_cost
                room -= take * p.row_cost
                parts.append((p, start, start + take))
                if p.next_row < p.rows:
                    self._queue.append(p)  # the rest waits its turn behind other callers
            self._stats.on_depth(len(self._queue))
            self._running += len(parts)
            return parts

    def _hold_until(self, now: float, deadline: float) -> float:
        """Under the lock: until when the queued requests are worth holding for more callers
        (`now` or earlier: run them now). Two kinds of caller are worth it: one served before
        and still being answered (neither queued nor running), who comes straight back on a
        busy server; and the rest of a burst still reaching the batcher, one event-loop turn at
        a time, while the last request arrived under BURST_GAP_S ago and found another caller
        in flight. Never past `deadline`."""
        if self._unreleased > len(self._queue) + self._running:
            return deadline
        if self._unreleased > 1:
            return min(deadline, self._last_arrival + BURST_GAP_S)
        return now

    def _work(self) -> None:
        while True:
            parts = self._take_batch()
            if parts is None:
                return
            if not parts:
                continue
            try:
                if len(parts) == 1:
                    p, a, b = parts[0]
                    x = p.inputs[a:b]
                else:
                    x = np.concatenate([p.inputs[a:b] for p, a, b in parts])
                y = self._run_for(parts)(np.ascontiguousarray(x))
                self._stats.on_batch(len(x))
            except Exception as exc:  # a failed run fails exactly the callers in it
                log.exception("batch run failed")
                with self._cond:
                    self._running -= len(parts)
                    for p, _, _ in parts:
                        if not p.done.is_set():
                            p.error = exc
                            p.cancelled = True
                            p.finish()
                continue
            self._scatter(parts, y)
            with self._cond:
                self._running -= len(parts)

    def _run_for(self, parts: list[tuple[Pending, int, int]]) -> RunFn:
        """The batch's `run_busy` while other callers are in flight, else its `run`."""
        first = parts[0][0]
        if first.run_busy is not None and self._unreleased > len(parts):
            return first.run_busy
        return first.run

    def _scatter(self, parts: list[tuple[Pending, int, int]], y: np.ndarray) -> None:
        offset = 0
        for p, a, b in parts:
            n = b - a
            piece = y[offset : offset + n]
            offset += n
            if p.cancelled:
                continue
            if a == 0 and n == p.rows:
                p.outputs = piece
            else:
                if p.outputs is None:
                    with self._cond:
                        if p.outputs is None:
                            p.outputs = np.empty((p.rows, *y.shape[1:]), dtype=y.dtype)
                p.outputs[a:b] = piece
            with self._cond:
                p.done_rows += n
                finished = p.done_rows == p.rows
            if finished:
                p.finish()


def _same_run(p: Pending, first: Pending) -> bool:
    """Whether `p`'s rows can share a run with `first`'s: the same sessions, the same shape."""
    return p.run == first.run and p.inputs.shape[1:] == first.inputs.shape[1:]


class BatcherRegistry:
    """One DynamicBatcher per model name, made by `make(name)` on first use (a reload may add
    names). One batcher serves every version of a name; each request brings its version's
    `run`, so batches never mix versions."""

    def __init__(self, make: Callable[[str], DynamicBatcher]) -> None:
        self._make = make
        self._batchers: dict[str, DynamicBatcher] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> DynamicBatcher:
        batcher = self._batchers.get(name)
        if batcher is not None:
            return batcher
        with self._lock:
            if name not in self._batchers:
                self._batchers[name] = self._make(name)
            return self._batchers[name]

    def close(self) -> None:
        with self._lock:
            batchers = list(self._batchers.values())
        for batcher in batchers:
            batcher.close()
