"""Admission: which calls the server takes on, before it reads a byte of their requests.

With tokens, an interceptor sees every call's method and metadata first: a call that needs a
token and has no accepted one is refused UNAUTHENTICATED by a handler that never reads the
request, so it holds no slot and no buffer beyond what HTTP/2 flow control lets in. Every
other call takes a slot of its method's pool (limits.py) before its request is read
(request_reader.py does, for its whole life): PoseAugService and reflection share
`--max-concurrent-rpcs` (and `--max-rpcs-per-peer`), request streams also take a slot of the
stream pool (`--max-streams-per-peer`), health Check and Watch have small pools of their own,
so health callers can never take the service's slots nor the service theirs.
Request messages are then read under the memory budget (memory_budget.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from poseaug_service.auth import TokenStore, bearer_token
from poseaug_service.config import ServerConfig
from poseaug_service.errors import ResourceExhaustedError
from poseaug_service.limits import (
    GRPC_HEADROOM_CALLS,
    HEALTH_CHECK_POOL,
    HEALTH_CHECK_SLOTS,
    HEALTH_SLOTS_PER_PEER,
    HEALTH_WATCH_POOL,
    HEALTH_WATCH_SLOTS,
    SERVICE_POOL,
    STREAM_POOL,
    TOKENLESS_READS,
    method_limits,
)
from poseaug_service.memory_budget import ByteBudget

Refused = Callable[[str, str], None]  # (method, reason) -> None, for metrics


@dataclass
class SlotPool:
    """Calls at once of one pool, in total and per peer address."""

    name: str
    total: int
    per_peer: int
    used: int = 0
    peers: Counter[str] = field(default_factory=Counter)

    def enter(self, peer: str) -> str | None:
        """Take a slot for `peer`; the reason it cannot, or None."""
        if self.used >= self.total:
            return "slots"
        if self.peers[peer] >= self.per_peer:
            return "peer_slots"
        self.used += 1
        self.peers[peer] += 1
        return None

    def leave(self, peer: str) -> None:
        self.used -= 1
        left = self.peers[peer] - 1
        if left:
            self.peers[peer] = left
        else:
            del self.peers[peer]


def peer_address(peer: str) -> str:
    """A gRPC peer string without its port ('ipv4:1.2.3.4:5678' -> 'ipv4:1.2.3.4')."""
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rpartition(":")[0]
    return peer


def slot_pools(config: ServerConfig) -> dict[str, SlotPool]:
    service = config.max_concurrent_rpcs
    return {
        SERVICE_POOL: SlotPool(SERVICE_POOL, service, config.max_rpcs_per_peer or service),
        HEALTH_CHECK_POOL: SlotPool(HEALTH_CHECK_POOL, HEALTH_CHECK_SLOTS, HEALTH_SLOTS_PER_PEER),
        HEALTH_WATCH_POOL: SlotPool(HEALTH_WATCH_POOL, HEALTH_WATCH_SLOTS, HEALTH_SLOTS_PER_PEER),
        # Streams also take a slot of their own pool: open streams hold track state, so one
        # address may be bounded to fewer of them than of calls.
        STREAM_POOL: SlotPool(STREAM_POOL, service, config.max_streams_per_peer or service),
    }


def grpc_call_limit(config: ServerConfig) -> int:
    """grpc's own `maximum_concurrent_rpcs`: above every pool, so the pools decide."""
    return (
        config.max_concurrent_rpcs + HEALTH_CHECK_SLOTS + HEALTH_WATCH_SLOTS + GRPC_HEADROOM_CALLS
    )


class Admission:
    """The slot pools of one server port, the byte budget (shared by the ports) and the gate
    that reads health messages one at a time; touched on the event loop only."""

    def __init__(
        self, config: ServerConfig, budget: ByteBudget, on_refuse: Refused = lambda m, r: None
    ) -> None:
        self.pools = slot_pools(config)
        self.budget = budget
        self.on_refuse = on_refuse
        self.tokenless_reads = asyncio.Semaphore(TOKENLESS_READS)

    def enter(self, pool: SlotPool, context: grpc.aio.ServicerContext, method: str) -> str:
        """Take a slot of `pool` for the call; returns its peer address (for `leave`), or
        raises ResourceExhaustedError when the pool is full, in all or for that peer."""
        peer = peer_address(context.peer())
        reason = pool.enter(peer)
        if reason is None:
            return peer
        per_peer = reason == "peer_slots"
        if pool.name == STREAM_POOL:
            reason = "peer_streams" if per_peer else "stream_slots"
        self.on_refuse(method, reason)
        limit = pool.per_peer if per_peer else pool.total
        what = "open streams" if pool.name == STREAM_POOL else f"{pool.name} calls"
        raise ResourceExhaustedError(
            "",
            f"too many {what} at once ({limit}"
            f"{' from one address' if per_peer else ''}); retry later",
        )


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED, before the request is read, for calls that need a token and lack one."""

    def __init__(
        self, config: ServerConfig, tokens: TokenStore, on_reject: Refused = lambda m, r: None
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._on_reject = on_reject
        self._needs_token: dict[str, bool] = {}

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED
            return None
        needs_token = self._needs_token.get(method)
        if needs_token is None:  # once per method (unknown methods never get here)
            config = self._config
            limits = method_limits(method, config.max_message_bytes, config.request_arrival_s)
            needs_token = self._needs_token[method] = limits.needs_token
        if not needs_token:
            return handler
        token = bearer_token(handler_call_details.invocation_metadata)
        if self._tokens.accepts(token):
            return handler
        self._on_reject(method, "missing" if token is None else "invalid")
        return refusing_handler(
            handler,
            grpc.StatusCode.UNAUTHENTICATED,
            "missing bearer token: send metadata 'authorization: Bearer <token>'"
            if token is None
            else "invalid bearer token",
        )


def refusing_handler(
    handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler:
    """A handler that aborts at once: request-streaming whatever `handler` is, so gRPC never
    reads (nor buffers) the request."""

    async def deny(_requests, context: grpc.aio.ServicerContext):
        await context.abort(code, message)

    kwargs = {"request_deserializer": None, "response_serializer": handler.response_serializer}
    if handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny, **kwargs)
    return grpc.stream_unary_rpc_method_handler(deny, **kwargs)
