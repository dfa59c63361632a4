"""What one call may cost the server, per method: the largest request message, how long its
message may take to arrive, which slots it takes, whether it needs a token.

Every limit of the admission layer is defined here once (flags set the server-wide ones in
config.py); admission.py enforces them, request_reader.py reads and parses messages under them.
"""

from __future__ import annotations

from dataclasses import dataclass

from poseaug.v1 import poseaug_pb2

KIB = 1024
# A parsed request costs about this many times its wire size (bytes copied out of gRPC, the
# protobuf message, the prepared arrays): the in-flight budget charges each message this much.
PARSE_COST = 4
# Requests up to this size are parsed (and small ones answered) on the event loop; larger ones
# in the worker pool, so no single message can hold the loop.
INLINE_PARSE_BYTES = 64 * KIB
# Health, ListModels, GetModelInfo and reflection requests hold a name or two at most.
SMALL_MESSAGE_BYTES = 4 * KIB
# Health requests are a few bytes sent with the call: one that has not arrived by then is cut.
HEALTH_ARRIVAL_S = 1.0
# Health slots, apart from the service's: Check answers at once, Watch streams stay open.
HEALTH_CHECK_SLOTS = 64
HEALTH_WATCH_SLOTS = 64
HEALTH_SLOTS_PER_PEER = 16
# Health messages being read at once. gRPC takes in a message of up to --max-message-mb before
# anything can look at its size (its limit is server-wide), so callers without a token could
# make it hold one such message per health call; read one at a time, they hold at most one.
# Honest health requests arrive with their call and are read in microseconds.
TOKENLESS_READS = 1
# grpc's own limit on calls at once sits above every pool, so that it only ever bounds the
# short-lived calls our pools refuse (the pools answer first, with a reason).
GRPC_HEADROOM_CALLS = 1024
# AugmentRequest.ops: one entry per operation; more are refused before the list is walked.
MAX_OPS = 3
# Unknown model names are echoed up to this many characters.
ECHO_CHARS = 64

HEALTH_PREFIX = "/grpc.health.v1.Health/"
_SERVICE = "/" + poseaug_pb2.DESCRIPTOR.services_by_name["PoseAugService"].full_name + "/"
# Methods whose requests carry poses, and so may be as large as --max-message-mb.
BULK_METHODS = frozenset(
    _SERVICE + m for m in ("Lift2Dto3D", "StreamLift2Dto3D", "Augment", "StreamAugment")
)
# Streams of poses: besides a service slot each holds one of the stream pool, which
# --max-streams-per-peer bounds per address (open streams may hold track state for long).
STREAM_METHODS = frozenset(_SERVICE + m for m in ("StreamLift2Dto3D", "StreamAugment"))

SERVICE_POOL = "service"
HEALTH_CHECK_POOL = "health_check"
HEALTH_WATCH_POOL = "health_watch"
STREAM_POOL = "streams"


@dataclass(frozen=True)
class MethodLimits:
    """The admission rules of one method."""

    pool: str
    max_message_bytes: int
    arrival_s: float
    needs_token: bool
    gated: bool = False  # read under TOKENLESS_READS (methods open to callers without a token)
    stream: bool = False  # also takes a slot of STREAM_POOL


def method_limits(method: str, max_message_bytes: int, arrival_s: float) -> MethodLimits:
    """The rules of `method` (a full gRPC path) under the server-wide flags."""
    if method.startswith(HEALTH_PREFIX):
        pool = HEALTH_WATCH_POOL if method.endswith("/Watch") else HEALTH_CHECK_POOL
        return MethodLimits(
            pool, SMALL_MESSAGE_BYTES, HEALTH_ARRIVAL_S, needs_token=False, gated=True
        )
    size = max_message_bytes if method in BULK_METHODS else SMALL_MESSAGE_BYTES
    stream = method in STREAM_METHODS
    return MethodLimits(SERVICE_POOL, size, arrival_s, needs_token=True, stream=stream)


def echo(text: str) -> str:
    """`text` for an error message: at most ECHO_CHARS characters, quoted."""
    if len(text) <= ECHO_CHARS:
        return repr(text)
    return f"{text[:ECHO_CHARS]!r}... ({len(text)} characters)"
