"""glibc malloc settings and trimming: memory that callers made the server take goes back to
the system once they are done with it.

After a burst of streams the server's objects are freed (the memory budget returns to zero),
but glibc keeps the freed memory: in the arena of every thread that allocated it (up to 8 per
core, each grown by whichever burst passed through it), and in heaps whose top is pinned by a
few live chunks. So RSS stayed near the burst's peak and ratcheted up with each burst. Here:
- `configure` (at start-up, before the server's threads exist) bounds the arenas
  (M_ARENA_MAX, unless MALLOC_ARENA_MAX is set) and fixes the mmap threshold (M_MMAP_THRESHOLD),
  so that large blocks (numpy arrays of requests and responses, track state rings) are mapped
  on their own and unmapped when freed, instead of the dynamic threshold growing after the
  first big free and sending later ones into the heaps;
- `trim` (malloc_trim) hands freed pages of every arena back to the system;
- `Trimmer` calls it off the event loop when there is something to give back: after the
  memory budget in use has dropped by TRIM_AFTER_BYTES since the last trim (streams ended);
  while the budget is nearly empty and RSS has grown by TRIM_AFTER_BYTES since the last trim
  (what calls freed after the budget had emptied, such as a large answer sent late), at most
  every SETTLE_TRIM_S; and once the server has gone idle after calls.
On a C library without these functions (musl, macOS) every call here does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

__all__ = ["ARENA_MAX", "MMAP_THRESHOLD", "Trimmer", "available", "configure", "trim"]

# mallopt parameters (malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Arenas in all: the event loop, the parse thread, the batch workers and the worker pool share
# them (glibc's default is 8 per core, each keeping what a burst left in it).
ARENA_MAX = 4
# Blocks from this size on are mmapped and unmapped when freed (glibc starts at 128 KiB but
# raises it up to 32 MiB after the first big block is freed). Not lower: every mapped block
# is fresh zeroed pages, and Augment's and bulk lifting's working arrays (1-10 MiB) cost 35%
# more per pose at 256 KiB; smaller blocks' freed pages go back through `trim`.
MMAP_THRESHOLD = 16 * 1024 * 1024
# Trim once the memory budget in use has dropped this much since the last trim.
TRIM_AFTER_BYTES = 32 * 1024 * 1024
TRIM_CHECK_S = 0.25  # how often the trimmer looks at the budget (seconds)
# While the budget holds at most LOW_BUDGET_BYTES, trim at most this often when RSS has grown.
SETTLE_TRIM_S = 5.0
LOW_BUDGET_BYTES = 16 * 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    return libc


_LIBC = _libc()


def available() -> bool:
    """Whether the C library is glibc (mallopt and malloc_trim exist)."""
    return _LIBC is not None


def configure(arena_max: int = ARENA_MAX, mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Bound the malloc arenas and fix the mmap threshold (see module docstring); call it
    before threads start. MALLOC_ARENA_MAX in the environment wins. True when applied."""
    if _LIBC is None:
        return False
    ok = True
    if "MALLOC_ARENA_MAX" not in os.environ:
        ok = _LIBC.mallopt(_M_ARENA_MAX, arena_max) == 1
    ok = _LIBC.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1 and ok
    return ok


def rss_bytes() -> int:
    """This process's resident set size (/proc/self/statm; 0 where there is none)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0


def trim() -> bool:
    """Give freed heap memory of every arena back to the system (malloc_trim(0)); True when
    some was. Blocks for a few milliseconds on a large heap: call it off the event loop."""
    if _LIBC is None:
        return False
    return _LIBC.malloc_trim(0) == 1


class Trimmer:
    """Trims, in a thread, when the memory budget in use (`used()`) is TRIM_AFTER_BYTES below
    its peak since the last trim (`high_water()`, which restarts the peak); when the budget is
    nearly empty and `rss()` has grown TRIM_AFTER_BYTES since the last trim (at most every
    SETTLE_TRIM_S); or when the server has gone idle (`idle()`) since calls were last seen.
    Start and stop it on the serving loop."""

    def __init__(
        self,
        used: Callable[[], int],
        high_water: Callable[[], int],
        idle: Callable[[], bool],
        interval_s: float = TRIM_CHECK_S,
        rss: Callable[[], int] = rss_bytes,
        settle_s: float = SETTLE_TRIM_S,
    ) -> None:
        self._used = used
        self._high_water = high_water
        self._idle = idle
        self._interval = interval_s
        self._rss = rss
        self._settle = settle_s
        self._task: asyncio.Task | None = None
        self.trims = 0

    def start(self) -> None:
        if available():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="malloc-trim")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        peak, busy, rss, last = 0, False, self._rss(), loop.time()
        while True:
            await asyncio.sleep(self._interval)
            peak = max(peak, self._high_water())
            used, idle = self._used(), self._idle()
            busy = busy or not idle
            settle = (
                used <= LOW_BUDGET_BYTES
                and self._rss() - rss >= TRIM_AFTER_BYTES
                and loop.time() - last >= self._settle
            )
            if not (peak - used >= TRIM_AFTER_BYTES or settle or (busy and idle)):
                continue
            await asyncio.to_thread(trim)
            self.trims += 1
            peak, busy, rss, last = self._high_water(), False, self._rss(), loop.time()
