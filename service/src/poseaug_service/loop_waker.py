"""Resolve asyncio futures from batch worker threads with one event-loop wake-up per burst.

A batch of n callers finishes at once. `loop.call_soon_threadsafe` per caller would wake the
loop n times (a self-pipe write and an epoll return each, on the stock loop) and hand the GIL
back and forth with the worker; the waker queues the futures and wakes the loop only when its
queue goes from empty to non-empty, so the loop resolves the whole batch in one turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class LoopWaker:
    """Thread-safe `resolve(future)` for futures of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._ready: list[asyncio.Future] = []

    def resolve(self, future: asyncio.Future) -> None:
        """Called from any thread: `future` gets result None on the loop, soon."""
        with self._lock:
            self._ready.append(future)
            wake = len(self._ready) == 1
        if wake:
            # A closed loop (RuntimeError) has nobody waiting on its futures any more.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for future in ready:
            if not future.done():
                future.set_result(None)
