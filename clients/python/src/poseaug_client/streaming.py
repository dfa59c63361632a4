"""Bookkeeping of a StreamLift2Dto3D call that survives reconnects.

The request iterator is read by grpc (a thread for the sync client, a task for asyncio) while
the caller reads responses. Every message sent but not yet answered stays in `pending`; after
UNAVAILABLE the client opens a new stream whose feed first resends those, then goes on with
the caller's batches, so no batch is lost or lifted twice in the output.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator

import grpc
import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_client.errors import PoseAugError
from poseaug_client.formats import NUM_JOINTS
from poseaug_client.jobs import StreamPart as Part


class LiftFeed:
    """Stream messages for one attempt at a time; remembers what is unanswered."""

    def __init__(self) -> None:
        self.pending: OrderedDict[str, poseaug_pb2.Lift2Dto3DRequest] = OrderedDict()
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

    def _unsent(
        self, generation: int, sent: set[str]
    ) -> tuple[bool, poseaug_pb2.Lift2Dto3DRequest | None]:
        """(stale, next pending message this attempt has not sent yet)."""
        with self._lock:
            if generation != self._generation:
                return True, None
            for request_id, request in self.pending.items():
                if request_id not in sent:
                    return False, request
            return False, None

    def _accept(self, part: Part) -> poseaug_pb2.Lift2Dto3DRequest | None:
        request = part[4]
        with self._lock:
            if request is None:
                self.local.append(part)
                return None
            self.pending[request.request_id] = request
            return request

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
        generation = self.new_attempt()
        sent: set[str] = set()
        while True:
            with pull_lock:
                stale, request = self._unsent(generation, sent)
                if stale:
                    return
                if request is None:
                    if self.exhausted:
                        return
                    try:
                        request = self._accept(next(parts))
                    except StopIteration:
                        self.exhausted = True
                        return
                    except Exception as exc:  # surfaced to the caller after the stream
                        self.error, self.exhausted = exc, True
                        return
                    if request is None:
                        continue
            sent.add(request.request_id)
            yield poseaug_pb2.StreamLift2Dto3DRequest(request=request)

    async def arequests(
        self, parts: AsyncIterator[Part], pull_lock: asyncio.Lock
    ) -> AsyncIterator[poseaug_pb2.StreamLift2Dto3DRequest]:
        """The asyncio twin of `requests`."""
        generation = self.new_attempt()
        sent: set[str] = set()
        while True:
            async with pull_lock:
                stale, request = self._unsent(generation, sent)
                if stale:
                    return
                if request is None:
                    if self.exhausted:
                        return
                    if self._pull is None:
                        self._pull = asyncio.ensure_future(anext(parts))
                    try:
                        # Shielded: if grpc cancels this attempt mid-pull, the batch is not
                        # lost; the next attempt awaits the same pull.
                        item = await asyncio.shield(self._pull)
                        self._pull = None
                        request = self._accept(item)
                    except StopAsyncIteration:
                        self._pull, self.exhausted = None, True
                        return
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        self._pull, self.error, self.exhausted = None, exc, True
                        return
                    if request is None:
                        continue
            sent.add(request.request_id)
            yield poseaug_pb2.StreamLift2Dto3DRequest(request=request)


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
