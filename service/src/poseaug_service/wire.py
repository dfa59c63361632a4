"""Malformed request bytes get INVALID_ARGUMENT, not INTERNAL.

grpcio answers bytes that do not parse as the request message with INTERNAL ("Exception
deserializing request!") and logs a traceback per call, so any client could flood the logs and
look like a server bug. `add_servicer_safely` registers a generated servicer with request
parsers that cannot fail: a bad message becomes INVALID_ARGUMENT naming the message type, and
nothing is logged. The wrapping happens once, at registration (a server interceptor would cost
every call an extra round through the interceptor chain).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from poseaug_service.errors import InvalidArgumentError


class _Malformed:
    """Stands in for a request that did not parse."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class MalformedRequestError(InvalidArgumentError):
    """Raised from a request stream whose next message did not parse."""


def _describe(handler_name: str, malformed: _Malformed) -> str:
    return f"not a valid {handler_name} message ({malformed.error})"


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


def add_servicer_safely(add_to_server: Callable, servicer: Any, server: grpc.aio.Server) -> None:
    """`add_to_server(servicer, server)` (a generated function), with fail-safe parsers."""
    registration = _Registration()
    add_to_server(servicer, registration)
    service = registration.service
    handlers = {
        name: safe_handler(handler, f"{name} request")
        for name, handler in registration.handlers.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)


def safe_handler(handler: grpc.RpcMethodHandler, name: str) -> grpc.RpcMethodHandler:
    """`handler` with a parser that never raises; bad messages are refused by the behavior."""
    parse: Callable[[bytes], Any] = handler.request_deserializer

    def safe_parse(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as exc:  # DecodeError and friends
            return _Malformed(exc)

    async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        k = 0
        async for request in requests:
            if isinstance(request, _Malformed):
                raise MalformedRequestError(f"request[{k}]", _describe(name, request))
            yield request
            k += 1

    async def refuse_malformed(request: Any, context: grpc.aio.ServicerContext) -> None:
        if isinstance(request, _Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _describe(name, request))

    kwargs = {
        "request_deserializer": safe_parse,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        behavior = handler.unary_unary

        async def unary_unary(request, context):
            if isinstance(request, _Malformed):
                await refuse_malformed(request, context)
            return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, **kwargs)
    # Streaming handlers come in two styles (async generators, or coroutines that call
    # context.write, like grpc.health's Watch); each wrapper keeps its handler's style.
    if handler.unary_stream is not None:
        behavior = handler.unary_stream
        if inspect.isasyncgenfunction(behavior):

            async def unary_stream(request, context):
                await refuse_malformed(request, context)
                async for response in behavior(request, context):
                    yield response
        else:

            async def unary_stream(request, context):
                await refuse_malformed(request, context)
                await behavior(request, context)

        return grpc.unary_stream_rpc_method_handler(unary_stream, **kwargs)
    if handler.stream_unary is not None:
        behavior = handler.stream_unary

        async def stream_unary(requests, context):
            try:
                return await behavior(checked(requests), context)
            except MalformedRequestError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

        return grpc.stream_unary_rpc_method_handler(stream_unary, **kwargs)
    behavior = handler.stream_stream
    if inspect.isasyncgenfunction(behavior):

        async def stream_stream(requests, context):
            try:
                async for response in behavior(checked(requests), context):
                    yield response
            except MalformedRequestError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    else:

        async def stream_stream(requests, context):
            try:
                await behavior(checked(requests), context)
            except MalformedRequestError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    return grpc.stream_stream_rpc_method_handler(stream_stream, **kwargs)


def refusing_handler(
    handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that aborts; requests stay unparsed bytes."""

    async def deny(_request, context: grpc.aio.ServicerContext):
        await context.abort(code, message)

    kwargs = {"request_deserializer": None, "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny, **kwargs)
    return grpc.unary_unary_rpc_method_handler(deny, **kwargs)
