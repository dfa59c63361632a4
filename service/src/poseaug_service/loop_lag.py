"""How late the event loop runs: every RPC is handled on one loop, so anything that holds it
(a big parse, a slow callback) delays every call at once. A task asks to wake every
`interval_s` and records how much later than asked it woke; operators see a freeze in
`poseaug_event_loop_lag_seconds` (the last lag, and a histogram) instead of guessing from
latencies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

INTERVAL_S = 0.1


class LoopLagMonitor:
    """Samples the loop's lateness on the loop it is started on."""

    def __init__(self, record: Callable[[float], None], interval_s: float = INTERVAL_S) -> None:
        self._record = record
        self._interval = interval_s
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            self._record(max(0.0, loop.time() - due))
