"""StreamLift2Dto3D's read-ahead window: a reader task parses and queues up to `size` messages
ahead of the answers, which go out in message order.

A message that does not parse ends the stream with its error once the answers before it have
gone out; a request stream that breaks ends it as cancelled. When the stream ends, early or
not, the call is marked cancelled (the batchers drop its queued work), the reader task is
stopped and waited for (so nothing it holds outlives the stream, and no read of the request
stream is still pending when the call ends) and every request still in the window is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

from poseaug_service.calls import CallState
from poseaug_service.errors import CancelledError, ServiceError

__all__ = ["STREAM_WINDOW", "ReadAhead"]

#: Lift messages of one stream being processed at once (validated and queued ahead).
STREAM_WINDOW = 8

T = TypeVar("T")


class ReadAhead(Generic[T]):
    """`async with ReadAhead(messages, prepare, drop, call) as window: async for item in
    window` gives `await prepare(message, k)` for message k, in order; `drop(item)` releases
    an item the stream ended before handing out."""

    def __init__(
        self,
        messages: AsyncIterator[Any],
        prepare: Callable[[Any, int], Awaitable[T]],
        drop: Callable[[T], None],
        call: CallState,
        size: int = STREAM_WINDOW,
    ) -> None:
        self._messages = messages
        self._prepare = prepare
        self._drop = drop
        self._call = call
        self._window: asyncio.Queue = asyncio.Queue(maxsize=size)
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> ReadAhead[T]:
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._call.cancelled = True
        if self._reader is not None:
            self._reader.cancel()
        self._drop_window()  # release queued work of a stream that ended early
        if self._reader is not None:
            await asyncio.wait([self._reader])  # it drops what it was preparing
        self._drop_window()

    def _drop_window(self) -> None:
        while not self._window.empty():
            entry = self._window.get_nowait()
            if isinstance(entry, _Item):
                self._drop(entry.value)

    def __aiter__(self) -> ReadAhead[T]:
        return self

    async def __anext__(self) -> T:
        entry = await self._window.get()
        if entry is None:
            raise StopAsyncIteration
        if isinstance(entry, ServiceError):
            raise entry
        return entry.value

    async def _read(self) -> None:
        try:
            await self._read_messages()
        finally:  # at once, not when collected: the request reader's budget bytes go back
            close = getattr(self._messages, "aclose", None)
            if close is not None:
                await close()

    async def _read_messages(self) -> None:
        window = self._window
        k = 0
        try:
            async for message in self._messages:
                try:
                    item = _Item(await self._prepare(message, k))
                except ServiceError as exc:
                    await window.put(exc)
                    return
                try:
                    await window.put(item)
                except asyncio.CancelledError:  # the stream ended while the window was full
                    self._drop(item.value)
                    raise
                k += 1
        except ServiceError as exc:  # a message that did not parse (see request_reader.py)
            await window.put(exc)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stream broke (cancelled or transport error)
            await window.put(CancelledError("", f"request stream ended: {exc}"))
            return
        await window.put(None)


class _Item(Generic[T]):
    """A prepared message in the window (told apart from the end marker and errors)."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value
