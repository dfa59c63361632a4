"""Request messages, read by the handlers themselves: in time, within size, within budget, and
parsed where they cannot hold the event loop.

grpcio reads a unary request in full before any handler code runs, and parses it on the event
loop; a call whose message never comes holds its slot until its deadline, and a big message
is parsed inline. So every method is registered with gRPC as request-streaming, with raw bytes
(no deserializer), and `RequestReader` takes the call's slot (admission.py), then reads its
messages:
- the first message must arrive within the method's arrival time (limits.py), or the call is
  cut with DEADLINE_EXCEEDED;
- a message over the method's size limit is refused RESOURCE_EXHAUSTED unparsed;
- PARSE_COST x its size is reserved from the server-wide byte budget until the call (for
  request streams: the message) is done; over the budget: RESOURCE_EXHAUSTED, unparsed;
- messages over INLINE_PARSE_BYTES are checked on their raw bytes (prescan.py: bounded
  repeated fields) and parsed in the parse thread, never on the event loop;
- bytes that do not parse get INVALID_ARGUMENT naming the message type (grpcio would answer
  INTERNAL and log a traceback per call, so any client could flood the logs).
On the wire nothing changes: unary callers send one message and get one answer.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Executor
from typing import Any

import grpc

from poseaug_service.admission import Admission
from poseaug_service.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    ResourceExhaustedError,
    ServiceError,
)
from poseaug_service.limits import INLINE_PARSE_BYTES, PARSE_COST, MethodLimits


class MalformedRequestError(InvalidArgumentError):
    """A request message that did not parse."""


class ArrivalWatch:
    """Cuts reads that wait past their deadline. One sweep every SWEEP_S checks the calls still
    waiting for their message, instead of a timer per call (that cost every small call about
    as much as parsing its request); deadlines are kept to within SWEEP_S."""

    SWEEP_S = 0.2

    def __init__(self) -> None:
        self._waiting: dict[asyncio.Task, float] = {}
        self._expired: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None

    async def read(self, context: grpc.aio.ServicerContext, timeout: float) -> Any:
        """`context.read()`, or TimeoutError once `timeout` seconds have passed."""
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = loop.create_task(self._sweep(), name="request-arrival")
        self._waiting[task] = loop.time() + timeout
        try:
            return await context.read()
        except asyncio.CancelledError:
            if task in self._expired and task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            self._waiting.pop(task, None)
            self._expired.discard(task)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.SWEEP_S)
            now = loop.time()
            late = [t for t, deadline in self._waiting.items() if deadline <= now]
            for task in late:
                del self._waiting[task]
                self._expired.add(task)
                task.cancel()


class RequestReader:
    """Reads and parses the request messages of the handlers it builds (see module doc)."""

    def __init__(
        self,
        admission: Admission,
        executor: Executor,
        limits: Callable[[str], MethodLimits],
        prechecks: Mapping[str, Callable[[bytes], None]] | None = None,
    ) -> None:
        self._admission = admission
        self._prechecks = prechecks or {}
        self._budget = admission.budget
        self._executor = executor
        self._limits = limits
        self._arrivals = ArrivalWatch()

    # --- one message ---------------------------------------------------------------------
    async def _read(
        self, context: grpc.aio.ServicerContext, method: str, timeout: float | None
    ) -> Any:
        if timeout is None:
            return await context.read()
        try:
            return await self._arrivals.read(context, timeout)
        except TimeoutError:
            self._admission.on_refuse(method, "arrival")
            raise DeadlineExceededError(
                "", f"the request message did not arrive within {timeout:g} s"
            ) from None

    def _admit(self, raw: bytes, method: str, limits: MethodLimits, what: str) -> int:
        """Size and budget checks; returns the bytes reserved from the budget."""
        size = len(raw)
        if size > limits.max_message_bytes:
            self._admission.on_refuse(method, "too_large")
            raise ResourceExhaustedError(
                "",
                f"the {what} message is {size} bytes, over this method's limit of "
                f"{limits.max_message_bytes}",
            )
        cost = PARSE_COST * size
        if not self._budget.take(cost):
            self._admission.on_refuse(method, "budget")
            raise ResourceExhaustedError(
                "", "the server is handling too many request bytes at once; retry later"
            )
        return cost

    async def _parse(
        self, raw: bytes, parse: Callable[[bytes], Any], big: Callable[[bytes], Any], what: str
    ) -> Any:
        """`parse(raw)` on the loop for a small message, else `big(raw)` (the raw-byte checks,
        then the parse) in the parse thread. Small messages skip the checks: whatever they
        hold costs little to parse, and the handlers bound every list before walking it."""
        try:
            if len(raw) <= INLINE_PARSE_BYTES:
                return parse(raw)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, big, raw)
        except ServiceError:
            raise
        except Exception as exc:  # DecodeError and friends
            raise MalformedRequestError("", f"not a valid {what} message ({exc})") from None

    # --- handlers ------------------------------------------------------------------------
    def handler(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """`handler` (as generated) registered request-streaming: a slot of its pool is taken
        before anything is read, and its messages are read here."""
        limits = self._limits(method)
        pool = self._admission.pools[limits.pool]
        enter, leave = self._admission.enter, pool.leave
        name = method.rsplit("/", 1)[-1]
        what = f"{name} request"
        deserialize = handler.request_deserializer
        check = self._prechecks.get(name)

        def checked_parse(raw: bytes) -> Any:
            check(raw)
            return deserialize(raw)

        big = deserialize if check is None else checked_parse
        reader = self

        async def one(context: grpc.aio.ServicerContext) -> tuple[Any, int]:
            raw = await reader._read(context, method, limits.arrival_s)
            if raw is grpc.aio.EOF:
                raise InvalidArgumentError("", f"no {what} message was sent")
            cost = reader._admit(raw, method, limits, what)
            try:
                return await reader._parse(raw, deserialize, big, what), cost
            except BaseException:
                reader._budget.give(cost)
                raise

        async def messages(context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            timeout: float | None = limits.arrival_s
            k = 0
            while True:
                raw = await reader._read(context, method, timeout)
                timeout = None  # streams may pause between messages
                if raw is grpc.aio.EOF:
                    return
                cost = reader._admit(raw, method, limits, f"{what}[{k}]")
                try:
                    yield await reader._parse(raw, deserialize, big, f"{what}[{k}]")
                finally:
                    reader._budget.give(cost)
                k += 1

        kwargs = {"request_deserializer": None, "response_serializer": handler.response_serializer}
        if not handler.request_streaming:
            behavior = handler.unary_unary or handler.unary_stream

            async def unary(_requests, context):
                """Unary requests, answered with one message or by context.write (health's
                Watch)."""
                try:
                    peer = enter(pool, context, method)
                except ServiceError as exc:
                    await context.abort(exc.code, str(exc))
                try:
                    try:
                        request, cost = await one(context)
                    except ServiceError as exc:
                        await context.abort(exc.code, str(exc))
                    try:
                        return await behavior(request, context)
                    finally:
                        reader._budget.give(cost)
                finally:
                    leave(peer)

            if not handler.response_streaming:
                return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
            if not inspect.isasyncgenfunction(behavior):
                return grpc.stream_stream_rpc_method_handler(unary, **kwargs)

            async def unary_stream(_requests, context):
                try:
                    peer = enter(pool, context, method)
                except ServiceError as exc:
                    await context.abort(exc.code, str(exc))
                try:
                    try:
                        request, cost = await one(context)
                    except ServiceError as exc:
                        await context.abort(exc.code, str(exc))
                    try:
                        async for response in behavior(request, context):
                            yield response
                    finally:
                        reader._budget.give(cost)
                finally:
                    leave(peer)

            return grpc.stream_stream_rpc_method_handler(unary_stream, **kwargs)

        behavior = handler.stream_unary or handler.stream_stream
        if not handler.response_streaming or not inspect.isasyncgenfunction(behavior):

            async def streaming(_requests, context):
                """Request streams answered with one message or by context.write."""
                try:
                    peer = enter(pool, context, method)
                except ServiceError as exc:
                    await context.abort(exc.code, str(exc))
                try:
                    return await behavior(messages(context), context)
                except ServiceError as exc:
                    await context.abort(exc.code, str(exc))
                finally:
                    leave(peer)

            if not handler.response_streaming:
                return grpc.stream_unary_rpc_method_handler(streaming, **kwargs)
            return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)

        async def stream_stream(_requests, context):
            try:
                peer = enter(pool, context, method)
            except ServiceError as exc:
                await context.abort(exc.code, str(exc))
            try:
                async for response in behavior(messages(context), context):
                    yield response
            except ServiceError as exc:
                await context.abort(exc.code, str(exc))
            finally:
                leave(peer)

        return grpc.stream_stream_rpc_method_handler(stream_stream, **kwargs)


class _Registration:
    """Stands in for the server in a generated `add_*Servicer_to_server` call, keeping the
    method handlers it builds."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, _handlers) -> None:
        pass  # rebuilt from the method handlers below

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self.service, self.handlers = service, handlers


def add_servicer_safely(
    add_to_server: Callable, servicer: Any, server: grpc.aio.Server, reader: RequestReader
) -> None:
    """`add_to_server(servicer, server)` (a generated function), its requests read by `reader`."""
    registration = _Registration()
    add_to_server(servicer, registration)
    service = registration.service
    handlers = {
        name: reader.handler(f"/{service}/{name}", handler)
        for name, handler in registration.handlers.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)
