"""Request messages, read by the handlers themselves: in time, within size, within budget, and
parsed where they cannot hold the event loop.

grpcio reads a unary request in full before any handler code runs, and parses it on the event
loop; a call whose message never comes holds its slot until its deadline, and a big message
is parsed inline. So every method is registered with gRPC as request-streaming, with raw bytes
(no deserializer), and `RequestReader` takes the call's slot (admission.py), then reads its
messages:
- the first message must arrive within the method's arrival time (limits.py), or the call is
  cut with DEADLINE_EXCEEDED; messages of methods open to callers without a token (health)
  are read one at a time: gRPC takes in any message up to the server-wide --max-message-mb
  before a handler sees its size, so the gate bounds what such callers can make it hold;
- a message over the method's size limit is refused RESOURCE_EXHAUSTED unparsed;
- PARSE_COST x its size is reserved from the server-wide memory budget (memory_budget.py,
  part `requests`) until the call (for request streams: the message) is done; over the
  budget: RESOURCE_EXHAUSTED naming the part, unparsed;
- messages over INLINE_PARSE_BYTES are checked on their raw bytes (prescan.py: bounded
  repeated fields) and parsed in the parse thread, never on the event loop;
- bytes that do not parse get INVALID_ARGUMENT naming the message type (grpcio would answer
  INTERNAL and log a traceback per call, so any client could flood the logs).
On the wire nothing changes: unary callers send one message and get one answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import Executor
from typing import Any

import grpc

from poseaug_service.admission import Admission
from poseaug_service.calls import end_stream
from poseaug_service.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    ResourceExhaustedError,
    ServiceError,
)
from poseaug_service.limits import INLINE_PARSE_BYTES, PARSE_COST, STREAM_POOL, MethodLimits


class MalformedRequestError(InvalidArgumentError):
    """A request message that did not parse."""


EOF = grpc.aio.EOF


def _parse_or_error(parse: Callable[[bytes], Any], raw: bytes, what: str) -> Any:
    """`parse(raw)`, or the ServiceError saying why not, returned without a traceback (one
    would keep `raw` alive through the frames of the raw-byte checks)."""
    try:
        return parse(raw)
    except ServiceError as exc:
        return exc.with_traceback(None)
    except Exception as exc:  # DecodeError and friends
        return MalformedRequestError("", f"not a valid {what} message ({exc})")


class ArrivalWatch:
    """Cuts reads that wait past their deadline. One sweep every SWEEP_S checks the calls still
    waiting for their message, instead of a timer per call (that cost every small call about
    as much as parsing its request); deadlines are kept to within SWEEP_S."""

    SWEEP_S = 0.2

    def __init__(self) -> None:
        self._waiting: dict[asyncio.Task, float] = {}
        self._expired: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None

    async def within(self, read: Awaitable[Any], timeout: float) -> Any:
        """`await read`, or TimeoutError once `timeout` seconds have passed."""
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = loop.create_task(self._sweep(), name="request-arrival")
        self._waiting[task] = loop.time() + timeout
        try:
            return await read
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
        self, context: grpc.aio.ServicerContext, method: str, timeout: float | None, gated: bool
    ) -> Any:
        if timeout is None:
            return await context.read()
        read = self._gated_read(context) if gated else context.read()
        try:
            return await self._arrivals.within(read, timeout)
        except TimeoutError:
            self._admission.on_refuse(method, "arrival")
            raise DeadlineExceededError(
                "", f"the request message did not arrive within {timeout:g} s"
            ) from None

    async def _gated_read(self, context: grpc.aio.ServicerContext) -> Any:
        async with self._admission.tokenless_reads:
            return await context.read()

    def _admit(self, size: int, method: str, limits: MethodLimits, what: str) -> int:
        """Size and budget checks; returns the bytes reserved from the budget."""
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
            raise ResourceExhaustedError("", self._budget.refusal(cost, "requests"))
        return cost

    async def _next(
        self,
        context: grpc.aio.ServicerContext,
        method: str,
        limits: MethodLimits,
        timeout: float | None,
        parse: Callable[[bytes], Any],
        big: Callable[[bytes], Any],
        what: str,
    ) -> tuple[Any, int]:
        """The next message parsed and the budget bytes it holds; (EOF, 0) at the end; a
        refusal as (ServiceError, 0). Refusals are returned, not raised: a raised error's
        traceback would keep this frame, and with it the raw message, alive as long as gRPC
        keeps the error (that made every refused big message stay in memory for a while).

        Small messages are parsed on the loop without the raw-byte checks (whatever they hold
        costs little to parse, and the handlers bound every list before walking it); big ones
        are checked and parsed in the parse thread."""
        try:
            raw = await self._read(context, method, timeout, limits.gated)
            if raw is grpc.aio.EOF:
                return EOF, 0
            cost = self._admit(len(raw), method, limits, what)
        except ServiceError as exc:
            return exc.with_traceback(None), 0  # its traceback holds this frame, and `raw`
        if len(raw) <= INLINE_PARSE_BYTES:
            request = _parse_or_error(parse, raw, what)
        else:
            loop = asyncio.get_running_loop()
            try:
                request = await loop.run_in_executor(
                    self._executor, _parse_or_error, big, raw, what
                )
            except BaseException:
                self._budget.give(cost)
                raise
        if isinstance(request, ServiceError):
            self._budget.give(cost)
            return request, 0
        return request, cost

    # --- handlers ------------------------------------------------------------------------
    def handler(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """`handler` (as generated) registered request-streaming: a slot of its pool is taken
        before anything is read, and its messages are read here."""
        limits = self._limits(method)
        pool = self._admission.pools[limits.pool]
        streams = self._admission.pools[STREAM_POOL] if limits.stream else None
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

        @contextlib.asynccontextmanager
        async def slot(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            """A slot of the method's pool (and, for streams of poses, of the stream pool) for
            the call's whole life; a full pool aborts it (streams: raises ServiceError)."""
            try:
                peer = enter(pool, context, method)
            except ServiceError as exc:
                if streams is not None:
                    raise
                await context.abort(exc.code, str(exc))
            try:
                if streams is None:
                    yield
                    return
                enter(streams, context, method)
                try:
                    yield
                finally:
                    streams.leave(peer)
            finally:
                leave(peer)

        @contextlib.asynccontextmanager
        async def one(context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            """The call's single request; its budget bytes are held until the handler is done."""
            request, cost = await reader._next(
                context, method, limits, limits.arrival_s, deserialize, big, what
            )
            if request is EOF:
                request = InvalidArgumentError("", f"no {what} message was sent")
            if isinstance(request, ServiceError):
                await context.abort(request.code, str(request))
            try:
                yield request
            finally:
                reader._budget.give(cost)

        async def messages(context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            timeout: float | None = limits.arrival_s
            k = 0
            while True:
                name_k = f"{what}[{k}]"
                request, cost = await reader._next(
                    context, method, limits, timeout, deserialize, big, name_k
                )
                timeout = None  # streams may pause between messages
                if request is EOF:
                    return
                if isinstance(request, ServiceError):
                    raise request
                try:
                    yield request
                finally:
                    reader._budget.give(cost)
                k += 1

        kwargs = {"request_deserializer": None, "response_serializer": handler.response_serializer}
        if not handler.request_streaming:
            behavior = handler.unary_unary or handler.unary_stream

            async def unary(_requests, context):
                """Unary requests, answered with one message or by context.write (health's
                Watch)."""
                async with slot(context), one(context) as request:
                    return await behavior(request, context)

            if not handler.response_streaming:
                return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
            if not inspect.isasyncgenfunction(behavior):
                return grpc.stream_stream_rpc_method_handler(unary, **kwargs)

            async def unary_stream(_requests, context):
                try:
                    async with slot(context), one(context) as request:
                        async for response in behavior(request, context):
                            yield response
                except ServiceError as exc:  # the stream pool is full
                    end_stream(context, exc.code, str(exc))

            return grpc.stream_stream_rpc_method_handler(unary_stream, **kwargs)

        behavior = handler.stream_unary or handler.stream_stream
        if not handler.response_streaming or not inspect.isasyncgenfunction(behavior):

            async def streaming(_requests, context):
                """Request streams answered with one message or by context.write."""
                requests = messages(context)
                try:
                    async with slot(context):
                        return await behavior(requests, context)
                except ServiceError as exc:
                    await context.abort(exc.code, str(exc))
                finally:
                    await requests.aclose()  # its budget bytes back now, not when collected

            if not handler.response_streaming:
                return grpc.stream_unary_rpc_method_handler(streaming, **kwargs)
            return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)

        async def stream_stream(_requests, context):
            """Streams of requests and answers; a refusal or error ends the stream with its
            code set on the context (end_stream), never by abort."""
            requests = messages(context)
            try:
                async with slot(context):
                    async for response in behavior(requests, context):
                        yield response
            except ServiceError as exc:
                end_stream(context, exc.code, str(exc))
            finally:
                await requests.aclose()  # its budget bytes back now, not when collected

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
