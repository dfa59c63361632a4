"""The batcher's hold rule, its busy-host runs and the loop waker, without a server.

A worker holds queued requests for more only while a caller it already served has not
released its request (it is being answered and comes straight back on a busy server); a lone
caller, or one whose fellow callers are all queued, runs at once. The run functions here are
plain numpy maps: the batcher is generic over what it runs (the servers' tests run it on ONNX
Runtime).
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from poseaug_service.batcher import BatcherRegistry, DynamicBatcher
from poseaug_service.errors import UnavailableError
from poseaug_service.loop_waker import LoopWaker
from tests.support.batching import BlockingBatcher

LONG = 20.0  # a max delay no passing test waits for


class Recorder:
    """run(x) = 2x, recording each run's size and which function ran it."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def fn(self, name: str):
        def run(x: np.ndarray) -> np.ndarray:
            with self.lock:
                self.runs.append((name, len(x)))
            return 2 * x

        return run


def rows(n: int, value: float) -> np.ndarray:
    return np.full((n, 17, 2), value, np.float32)


def test_a_lone_caller_is_not_held_back() -> None:
    rec = Recorder()
    batcher = BlockingBatcher(rec.fn("run"), max_batch=64, max_delay_s=LONG, max_queue=8)
    try:
        start = time.perf_counter()
        out = batcher.run(rows(3, 1.0))
        assert time.perf_counter() - start < LONG / 4
    finally:
        batcher.close()
    np.testing.assert_array_equal(out, rows(3, 2.0))
    assert rec.runs == [("run", 3)]


def test_queued_requests_wait_for_a_caller_being_answered_then_run_together() -> None:
    rec = Recorder()
    batcher = BlockingBatcher(rec.fn("run"), max_batch=64, max_delay_s=LONG, max_queue=8)
    try:
        first = batcher.submit(rows(1, 1.0))
        assert first.done.wait(5), "a lone caller runs at once"
        # `first` is answered but not released: its caller may come straight back, so the
        # next requests are held for it...
        second = batcher.submit(rows(1, 2.0))
        third = batcher.submit(rows(2, 3.0))
        assert not second.done.wait(0.5)
        assert rec.runs == [("run", 1)]
        # ...until it is released: nobody else can join, so they run at once, together.
        start = time.perf_counter()
        batcher.release(first)
        assert second.done.wait(5) and third.done.wait(5)
        assert time.perf_counter() - start < LONG / 4
        np.testing.assert_array_equal(batcher.wait(second), rows(1, 4.0))
        np.testing.assert_array_equal(batcher.wait(third), rows(2, 6.0))
    finally:
        batcher.close()
    assert rec.runs == [("run", 1), ("run", 3)]


def test_the_hold_ends_at_the_max_delay() -> None:
    rec = Recorder()
    batcher = BlockingBatcher(rec.fn("run"), max_batch=64, max_delay_s=0.3, max_queue=8)
    try:
        first = batcher.submit(rows(1, 1.0))
        assert first.done.wait(5)
        start = time.perf_counter()
        second = batcher.submit(rows(1, 1.0))
        assert second.done.wait(5), "an unreleased caller holds a batch for max_delay at most"
        assert 0.25 <= time.perf_counter() - start < 3
    finally:
        batcher.release(first)
        batcher.close()


def test_cancel_and_release_are_idempotent_and_free_the_hold() -> None:
    rec = Recorder()
    batcher = BlockingBatcher(rec.fn("run"), max_batch=64, max_delay_s=LONG, max_queue=8)
    try:
        first = batcher.submit(rows(1, 1.0))
        assert first.done.wait(5)
        batcher.release(first)
        batcher.release(first)
        gone = batcher.submit(rows(1, 1.0))
        batcher.cancel(gone)  # a caller that left is released with its request
        batcher.cancel(gone)
        start = time.perf_counter()
        out = batcher.run(rows(1, 5.0))
        assert time.perf_counter() - start < LONG / 4
        np.testing.assert_array_equal(out, rows(1, 10.0))
    finally:
        batcher.close()


def test_a_run_holds_rows_of_one_shape_and_counts_each_row_s_cost() -> None:
    """Rows of another shape (a whole-track request's stretches of another length) start the
    next run; a row of cost c counts c rows against max_batch, and one that does not fit the
    room left waits for the next run."""
    rec = Recorder()
    batcher = BlockingBatcher(rec.fn("run"), max_batch=8, max_delay_s=LONG, max_queue=8)
    try:
        first = batcher.submit(rows(1, 1.0))
        assert first.done.wait(5)  # not released: what comes next is held for it
        small = batcher.submit(rows(2, 1.0))
        costly = batcher.submit(rows(4, 2.0), row_cost=3)
        other_shape = batcher.submit(np.ones((1, 3, 17, 2), np.float32))
        batcher.release(first)
        # (each answered caller is released before the next run, which would wait for it)
        np.testing.assert_array_equal(batcher.wait(small, 5), rows(2, 2.0))
        assert batcher.wait(other_shape, 5).shape == (1, 3, 17, 2)
        np.testing.assert_array_equal(batcher.wait(costly, 5), rows(4, 4.0))
    finally:
        batcher.close()
    # 2 rows + 2 of cost 3 fill 8; the other shape runs alone; the costly rest after it.
    assert rec.runs == [("run", 1), ("run", 4), ("run", 1), ("run", 2)]


def test_busy_runs_only_while_other_callers_are_in_flight() -> None:
    rec = Recorder()
    idle, busy = rec.fn("idle"), rec.fn("busy")
    batcher = BlockingBatcher(idle, max_batch=64, max_delay_s=0.0, max_queue=8)
    try:
        alone = batcher.submit(rows(2, 1.0), run=idle, run_busy=busy)
        np.testing.assert_array_equal(batcher.wait(alone), rows(2, 2.0))
        other = batcher.submit(rows(1, 1.0), run=idle, run_busy=busy)
        assert other.done.wait(5)  # answered, not released: still in flight
        crowded = batcher.submit(rows(4, 1.0), run=idle, run_busy=busy)
        np.testing.assert_array_equal(batcher.wait(crowded), rows(4, 2.0))
        plain = batcher.submit(rows(1, 1.0), run=idle)  # no busy variant: always `run`
        np.testing.assert_array_equal(batcher.wait(plain), rows(1, 2.0))
        batcher.release(other)
    finally:
        batcher.close()
    assert rec.runs == [("idle", 2), ("idle", 1), ("busy", 4), ("idle", 1)]


def test_loop_waker_resolves_every_future_from_worker_threads() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        waker = LoopWaker(loop)
        wakeups = 0
        real = loop.call_soon_threadsafe

        def counting(*args, **kwargs):
            nonlocal wakeups
            wakeups += 1
            return real(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        futures = [loop.create_future() for _ in range(200)]
        gate = threading.Event()

        def worker(part: list[asyncio.Future]) -> None:
            gate.wait()
            for f in part:
                waker.resolve(f)

        threads = [threading.Thread(target=worker, args=(futures[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        gate.set()
        for t in threads:
            t.join()
        await asyncio.wait_for(asyncio.gather(*futures), 5)
        return wakeups

    wakeups = asyncio.run(main())
    # The loop was blocked in join() while all 200 were resolved: one wake-up drained them.
    assert wakeups == 1


def test_loop_waker_after_the_loop_closed_does_not_raise() -> None:
    loop = asyncio.new_event_loop()
    waker = LoopWaker(loop)
    future = loop.create_future()
    loop.close()
    waker.resolve(future)  # the caller is gone; nothing to wake
    assert not future.done()


def test_the_registry_makes_one_batcher_per_name_and_closes_them_all() -> None:
    made: list[str] = []

    def make(name: str) -> DynamicBatcher:
        made.append(name)
        return DynamicBatcher(max_batch=8, max_delay_s=0.0, max_queue=8, name=name)

    registry = BatcherRegistry(make)
    first = registry.get("a")
    assert registry.get("a") is first
    second = registry.get("b")
    assert made == ["a", "b"]
    registry.close()
    for batcher in (first, second):
        with pytest.raises(UnavailableError):
            batcher.submit(rows(1, 1.0), run=lambda x: x)
