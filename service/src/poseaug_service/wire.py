"""Malformed request bytes get INVALID_ARGUMENT, not INTERNAL.

grpcio answers bytes that do not parse as the request message with INTERNAL ("Exception
deserializing request!") and logs a traceback per call, so any client could flood the logs and
look like a server bug. This interceptor parses requests itself: a bad message becomes
INVALID_ARGUMENT naming the message type, and nothing is logged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


class MalformedRequestInterceptor(grpc.ServerInterceptor):
    """Wraps every handler's request parser; see the module docstring. The wrapped handler of
    a method is built once (a method's handler never changes while the server runs)."""

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler | None] = {}

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if method in self._wrapped:
            return self._wrapped[method]
        handler = continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: not cached, so probing names cannot grow the cache
        wrapped = self._wrap(handler, method)
        self._wrapped[method] = wrapped
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        if handler.request_deserializer is None:
            return handler
        parse: Callable[[bytes], Any] = handler.request_deserializer
        name = method.rsplit("/", 1)[-1] + " request"

        def safe_parse(data: bytes) -> Any:
            try:
                return parse(data)
            except Exception as exc:  # DecodeError and friends
                return _Malformed(exc)

        def checked(requests: Iterator[Any]) -> Iterator[Any]:
            for k, request in enumerate(requests):
                if isinstance(request, _Malformed):
                    raise MalformedRequestError(f"request[{k}]", _describe(name, request))
                yield request

        def refuse_malformed(request: Any, context: grpc.ServicerContext) -> None:
            if isinstance(request, _Malformed):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, _describe(name, request))

        kwargs = {
            "request_deserializer": safe_parse,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            behavior = handler.unary_unary

            def unary_unary(request, context):
                refuse_malformed(request, context)
                return behavior(request, context)

            return grpc.unary_unary_rpc_method_handler(unary_unary, **kwargs)
        if handler.unary_stream is not None:
            behavior = handler.unary_stream

            def unary_stream(request, context):
                refuse_malformed(request, context)
                yield from behavior(request, context)

            return grpc.unary_stream_rpc_method_handler(unary_stream, **kwargs)
        if handler.stream_unary is not None:
            behavior = handler.stream_unary

            def stream_unary(requests, context):
                try:
                    return behavior(checked(requests), context)
                except MalformedRequestError as exc:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

            return grpc.stream_unary_rpc_method_handler(stream_unary, **kwargs)
        behavior = handler.stream_stream

        def stream_stream(requests, context):
            try:
                yield from behavior(checked(requests), context)
            except MalformedRequestError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

        return grpc.stream_stream_rpc_method_handler(stream_stream, **kwargs)
