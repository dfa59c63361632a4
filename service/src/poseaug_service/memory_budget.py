"""The server-wide memory budget (`--max-inflight-mb`): every byte the server keeps for its
callers counts in it, by part, so that callers it admits cannot take its memory past the flag.

Parts (MEMORY_PARTS): `requests`, request messages being parsed and handled (PARSE_COST x their
size); `tracks`, StreamLift2Dto3D track frames and layer state (StreamTracks.nbytes); `owed`,
stream messages whose answers are still owed (lookahead, read-ahead); `queued`, lift work
waiting in or running through a batcher (inputs and outputs, step runs included); `responses`,
response messages being built and sent (lift and Augment). A call reserves bytes *before* it
takes them; a reservation that would pass the limit is refused with RESOURCE_EXHAUSTED naming
its part, and nothing is taken. Each part's bytes in use are a Prometheus gauge.

Reservations are made and given back on the event loop, except where a worker thread gives
back; a lock keeps the counts exact either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from poseaug_service.errors import ResourceExhaustedError

__all__ = ["MEMORY_PARTS", "ByteBudget", "Holding"]

MIB = 1024 * 1024
# What each part holds, for refusal messages and the metric's help.
MEMORY_PARTS = {
    "requests": "request messages being parsed and handled",
    "tracks": "stream track frames and layer state",
    "owed": "stream messages whose answers are owed",
    "queued": "lift work queued or running",
    "responses": "responses being built and sent",
}


class ByteBudget:
    """Bytes held for callers, server-wide and by part; `limit` bounds their sum."""

    def __init__(self, limit: int, on_refuse: Callable[[str], None] = lambda part: None) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0  # the most in use since the last `high_water`
        self.parts = dict.fromkeys(MEMORY_PARTS, 0)
        self.on_refuse = on_refuse
        self._lock = threading.Lock()

    def take(self, n: int, part: str = "requests") -> bool:
        """Reserve n bytes for `part`; False (nothing reserved) when that would pass the limit."""
        with self._lock:
            if n > 0 and self.used + n > self.limit:
                refused = True
            else:
                self.used += n
                self.parts[part] += n
                self.peak = max(self.peak, self.used)
                refused = False
        if refused:
            self.on_refuse(part)
        return not refused

    def give(self, n: int, part: str = "requests") -> None:
        with self._lock:
            self.used -= n
            self.parts[part] -= n

    def high_water(self) -> int:
        """The most in use since the last call (the allocator's trimmer asks)."""
        with self._lock:
            peak, self.peak = self.peak, self.used
        return peak

    def reserve(self, n: int, part: str) -> None:
        """take(n, part), or ResourceExhaustedError saying which part found no room."""
        if not self.take(n, part):
            raise ResourceExhaustedError("", self.refusal(n, part))

    def refusal(self, n: int, part: str) -> str:
        in_use = ", ".join(f"{p} {b / MIB:.0f}" for p, b in self.parts.items() if b)
        return (
            f"server memory budget full: {part} ({MEMORY_PARTS[part]}) needs {n / MIB:.1f} MiB "
            f"more, {self.used / MIB:.0f} of --max-inflight-mb {self.limit // MIB} MiB in use "
            f"({in_use or 'none'}); retry later"
        )


class Holding:
    """What one call holds of the budget, by part: grown and shrunk as its state changes,
    all given back by `close` (once its call has ended)."""

    def __init__(self, budget: ByteBudget) -> None:
        self.budget = budget
        self.held = dict.fromkeys(MEMORY_PARTS, 0)

    def grow(self, n: int, part: str) -> None:
        """Reserve n more bytes for `part` (ResourceExhaustedError when there is no room)."""
        if n > 0:
            self.budget.reserve(n, part)
            self.held[part] += n

    def shrink(self, n: int, part: str) -> None:
        n = min(n, self.held[part])
        if n > 0:
            self.held[part] -= n
            self.budget.give(n, part)

    def resize(self, n: int, part: str) -> None:
        """Hold exactly n bytes for `part`: grows (may refuse) or shrinks."""
        delta = n - self.held[part]
        if delta > 0:
            self.grow(delta, part)
        else:
            self.shrink(-delta, part)

    def close(self) -> None:
        for part, n in self.held.items():
            self.shrink(n, part)
