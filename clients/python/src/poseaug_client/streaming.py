"""Bookkeeping of the streaming calls that survive reconnects, written once for both clients.

A `ResumableStream` says what to send each time its call is (re)opened, what each answer
delivers and what is still owed when the call ends; the clients' transport loop (blocking or
asyncio) only opens calls, reads them and sleeps between attempts.

StreamLift2Dto3D: the request iterator is read by grpc (a thread for the sync client, a task
for asyncio) while the caller reads responses. Every message sent but not yet answered stays
in `pending`; after UNAVAILABLE the client opens a new stream whose feed first resends those,
then goes on with the caller's batches, so no batch is lost or lifted twice in the output.
StreamAugment: the job is asked again and rows already delivered are skipped.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_client.checks import stream_chunk, stream_ended_early, unanswered_error
from poseaug_client.config import ClientConfig
from poseaug_client.errors import PoseAugError
from poseaug_client.formats import NUM_JOINTS
from poseaug_client.jobs import StreamPart as Part
from poseaug_client.results import AugmentChunk, lift_poses
from poseaug_client.retry import Deadline, Retries

__all__ = [
    "AugmentStream",
    "LiftAssembler",
    "LiftFeed",
    "LiftStream",
    "Part",
    "ResumableStream",
]

Request = poseaug_pb2.Lift2Dto3DRequest


class LiftFeed:
    """Stream messages for one attempt at a time; remembers what is unanswered."""

    def __init__(self, lookahead: int = 0) -> None:
        self.lookahead = lookahead  # sent on every message (the server reads the first)
        self.pending: OrderedDict[str, Request] = OrderedDict()
        self.local: list[Part] = []  # empty batches, answered without the server
        self.error: BaseException | None = None
        self.exhausted = False
        self._generation = 0
        self._lock = threading.Lock()
        self._pull: asyncio.Future | None = None  # an async pull that outlived its attempt

    def new_attempt(self) -> int:
        with self._lock:
            self._generation += 1
            return self._generation

    def _next_unsent(self, generation: int, sent: set[str]) -> tuple[bool, Request | None]:
        """(done, request): done when the attempt is stale or nothing is left to send, else the
        next pending message this attempt has not sent yet (None: pull a new part)."""
        with self._lock:
            if generation != self._generation:
                return True, None
            for request_id, request in self.pending.items():
                if request_id not in sent:
                    return False, request
            return self.exhausted, None

    def _accept(self, part: Part) -> Request | None:
        request = part[4]
        with self._lock:
            if request is None:
                self.local.append(part)
                return None
            self.pending[request.request_id] = request
            return request

    def _end(self, error: Exception | None = None) -> None:
        """The caller's batches are over (`error`: reading them failed; it is surfaced to the
        caller after the stream)."""
        self.exhausted = True
        if error is not None:
            self.error = error

    def take_local(self) -> list[Part]:
        """Empty batches met so far (the caller answers them itself)."""
        with self._lock:
            local, self.local = self.local, []
            return local

    def answered(self, request_id: str) -> None:
        with self._lock:
            self.pending.pop(request_id, None)

    def requests(
        self, parts: Iterator[Part], pull_lock: threading.Lock
    ) -> Iterator[poseaug_pb2.StreamLift2Dto3DRequest]:
        """Messages of one attempt: unanswered ones first, then new ones from `parts`."""
        generation, sent = self.new_attempt(), set()
        while True:
            with pull_lock:
                done, request = self._next_unsent(generation, sent)
                if done:
                    return
                if request is None:
                    try:
                        request = self._accept(next(parts))
                    except StopIteration:
                        self._end()
                        return
                    except Exception as exc:
                        self._end(exc)
                        return
            if request is not None:
                sent.add(request.request_id)
                yield poseaug_pb2.StreamLift2Dto3DRequest(request=request, lookahead=self.lookahead)

    async def arequests(
        self, parts: AsyncIterator[Part], pull_lock: asyncio.Lock
    ) -> AsyncIterator[poseaug_pb2.StreamLift2Dto3DRequest]:
        """The asyncio form of `requests`."""
        generation, sent = self.new_attempt(), set()
        while True:
            async with pull_lock:
                done, request = self._next_unsent(generation, sent)
                if done:
                    return
                if request is None:
                    if self._pull is None:
                        self._pull = asyncio.ensure_future(anext(parts))
                    try:
                        # Shielded: if grpc cancels this attempt mid-pull, the batch is not
                        # lost; the next attempt awaits the same pull.
                        item = await asyncio.shield(self._pull)
                        self._pull = None
                        request = self._accept(item)
                    except StopAsyncIteration:
                        self._pull = None
                        self._end()
                        return
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        self._pull = None
                        self._end(exc)
                        return
            if request is not None:
                sent.add(request.request_id)
                yield poseaug_pb2.StreamLift2Dto3DRequest(request=request, lookahead=self.lookahead)


class LiftAssembler:
    """Joins the parts of each batch and releases whole batches in input order."""

    def __init__(self) -> None:
        self._parts: dict[int, dict[int, np.ndarray]] = {}
        self._sizes: dict[int, int] = {}
        self._next = 0

    def add_local(self, part: Part) -> None:
        index = part[0]
        self._parts[index] = {0: np.zeros((0, NUM_JOINTS, 3), np.float32)}
        self._sizes[index] = 1

    def add(self, request_id: str, poses: np.ndarray) -> None:
        try:
            index, part, parts = (int(x) for x in request_id.split(":"))
        except ValueError:
            raise PoseAugError(
                grpc.StatusCode.INTERNAL,
                f"request_id: server answered {request_id!r}, not a request of this stream",
            ) from None
        self._parts.setdefault(index, {})[part] = poses
        self._sizes[index] = parts

    def ready(self) -> Iterator[np.ndarray]:
        """Whole batches that can be delivered now, in order."""
        while self._next in self._parts and len(self._parts[self._next]) == self._sizes[self._next]:
            pieces = self._parts.pop(self._next)
            del self._sizes[self._next]
            self._next += 1
            yield (
                pieces[0]
                if len(pieces) == 1
                else np.concatenate([pieces[i] for i in sorted(pieces)])
            )


class ResumableStream:
    """One streaming call's state across its attempts: `requests()` is what a new attempt
    sends, `received(message)` what an answer delivers, `finished()` what is left (or owed)
    when a call ends without error; `retries` says whether and when to reopen it."""

    method: str

    def __init__(self, config: ClientConfig, timeout: float | None) -> None:
        self.deadline = Deadline(timeout)
        self.retries = Retries(config, self.deadline, self.method)

    def requests(self) -> Any:
        raise NotImplementedError

    def received(self, message: Any) -> Iterator[Any]:
        raise NotImplementedError

    def finished(self) -> Iterator[Any]:
        raise NotImplementedError


class LiftStream(ResumableStream):
    """StreamLift2Dto3D over batches' parts: yields [n, 17, 3] per batch in input order."""

    method = "StreamLift2Dto3D"

    def __init__(
        self,
        config: ClientConfig,
        parts: Iterator[Part] | AsyncIterator[Part],
        timeout: float | None,
        *,
        aio: bool,
        lookahead: int = 0,
    ) -> None:
        super().__init__(config, timeout)
        self._parts = parts
        self._aio = aio
        self._feed, self._assembler = LiftFeed(lookahead), LiftAssembler()
        self._pull_lock = asyncio.Lock() if aio else threading.Lock()

    def requests(self) -> Iterator[Any] | AsyncIterator[Any]:
        if self._aio:
            return self._feed.arequests(self._parts, self._pull_lock)  # type: ignore[arg-type]
        return self._feed.requests(self._parts, self._pull_lock)  # type: ignore[arg-type]

    def _answer_local(self) -> None:
        for part in self._feed.take_local():
            self._assembler.add_local(part)

    def received(self, message: poseaug_pb2.StreamLift2Dto3DResponse) -> Iterator[np.ndarray]:
        response = message.response
        self._feed.answered(response.request_id)
        self._answer_local()
        self._assembler.add(response.request_id, lift_poses(response))
        self.retries.progressed()
        yield from self._assembler.ready()

    def finished(self) -> Iterator[np.ndarray]:
        """The batches still to deliver; then the caller's own error, or the server's debt."""
        self._answer_local()
        yield from self._assembler.ready()
        if self._feed.error is not None:
            raise self._feed.error
        if self._feed.pending:
            raise unanswered_error(len(self._feed.pending))


class AugmentStream(ResumableStream):
    """One StreamAugment call with resume-on-retry; yields rows [base, base + rows) of a job."""

    method = "StreamAugment"

    def __init__(
        self,
        config: ClientConfig,
        request: poseaug_pb2.StreamAugmentRequest,
        base: int,
        rows: int,
        timeout: float | None,
    ) -> None:
        super().__init__(config, timeout)
        self._request, self._base, self._rows = request, base, rows
        self._delivered = 0

    def requests(self) -> poseaug_pb2.StreamAugmentRequest:
        return self._request

    def received(self, message: poseaug_pb2.StreamAugmentResponse) -> Iterator[AugmentChunk]:
        chunk = stream_chunk(message, self._base, self._delivered)
        if chunk is not None:
            self._delivered += len(chunk.poses3d)
            self.retries.progressed()
            yield chunk

    def finished(self) -> Iterator[AugmentChunk]:
        if self._delivered != self._rows:
            raise stream_ended_early(self._delivered, self._rows)
        return iter(())
