"""StreamLift2Dto3D's read-ahead window and the busy-host lifter session, without a server."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from poseaug_service.errors import InvalidArgumentError
from poseaug_service.lift_stream import ReadAhead
from poseaug_service.sessions import LoadedModel


async def _messages(n: int):
    for k in range(n):
        yield f"message {k}"


def _window(n: int, bad: int | None = None, size: int = 8):
    call, dropped = SimpleNamespace(cancelled=False), []

    async def prepare(message: str, k: int) -> str:
        if k == bad:
            raise InvalidArgumentError(f"request[{k}].keypoints", "bad")
        return f"{message} as {k}"

    return ReadAhead(_messages(n), prepare, dropped.append, call, size), call, dropped


def test_answers_go_out_in_message_order_and_the_call_ends() -> None:
    async def main():
        window, call, dropped = _window(5)
        async with window:
            items = [item async for item in window]
        return items, call, dropped

    items, call, dropped = asyncio.run(main())
    assert items == [f"message {k} as {k}" for k in range(5)]
    assert call.cancelled and dropped == []


def test_a_bad_message_ends_the_stream_after_the_answers_before_it() -> None:
    async def main():
        window, _call, _dropped = _window(5, bad=2)
        got = []
        with pytest.raises(InvalidArgumentError) as info:
            async with window:
                async for item in window:
                    got.append(item)
        return got, info.value

    got, error = asyncio.run(main())
    assert got == ["message 0 as 0", "message 1 as 1"]
    assert error.field == "request[2].keypoints"


def test_a_stream_that_ends_early_drops_what_was_read_ahead() -> None:
    async def main():
        window, call, dropped = _window(10, size=3)
        async with window:
            first = await anext(window)
            while len(dropped) + window._window.qsize() < 3:  # let the reader fill the window
                await asyncio.sleep(0)
        return first, call, dropped

    first, call, dropped = asyncio.run(main())
    assert first == "message 0 as 0"
    # 1-3 waited in the window; 4 was prepared and waiting for room when the stream ended.
    assert call.cancelled and dropped == [f"message {k} as {k}" for k in (1, 2, 3, 4)]


class _Session:
    def __init__(self, value: float) -> None:
        self.value = value

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        assert outputs == ["pose3d"] and list(feeds) == ["keypoints"]
        return [np.full((len(feeds["keypoints"]), 17, 3), self.value, np.float32)]


def test_busy_host_runs_fall_back_to_the_normal_lifter_session() -> None:
    x = np.zeros((2, 17, 2), np.float32)
    alone = LoadedModel(bundle=None, lifter=_Session(1.0), augmentor=None)  # type: ignore[arg-type]
    assert alone.run_lifter(x)[0, 0, 0] == alone.run_lifter_busy(x)[0, 0, 0] == 1.0
    both = LoadedModel(
        bundle=None,  # type: ignore[arg-type]
        lifter=_Session(1.0),  # type: ignore[arg-type]
        augmentor=None,
        lifter_busy=_Session(2.0),  # type: ignore[arg-type]
    )
    assert both.run_lifter(x)[0, 0, 0] == 1.0
    assert both.run_lifter_busy(x)[0, 0, 0] == 2.0
