"""Checks on a request's raw protobuf bytes, before it is parsed.

Parsing a message costs time and memory in proportion to what it holds, whatever its
declared fields allow: 15 million `ops` entries take 15 MB on the wire and over 100 ms of
parsing with the GIL held. An AugmentRequest has a handful of top-level fields and at most
MAX_OPS ops, so walking its top-level tags (a few varints; field values are skipped, never
read) refuses such a message for the cost of reading a few dozen bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from poseaug_service.errors import InvalidArgumentError
from poseaug_service.limits import MAX_OPS

# Top-level fields a well-formed AugmentRequest can hold (each field once, ops unpacked).
MAX_AUGMENT_FIELDS = 32
_OPS = 2  # AugmentRequest.ops
_REQUEST = 1  # StreamAugmentRequest.request
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class _UnreadableError(Exception):
    """Bytes the scan cannot read: the parser will report them properly."""


def _varint(buf: memoryview, i: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while i < end and shift < 64:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7
    raise _UnreadableError


def _fields(buf: memoryview, start: int, end: int, limit: int, what: str) -> Iterator[tuple]:
    """(number, wire type, value start, value end) of the fields in buf[start:end]."""
    i, seen = start, 0
    while i < end:
        seen += 1
        if seen > limit:
            raise InvalidArgumentError("", f"not a valid {what} message (over {limit} fields)")
        key, i = _varint(buf, i, end)
        number, kind = key >> 3, key & 7
        if kind == _VARINT:
            _, j = _varint(buf, i, end)
        elif kind == _LEN:
            n, i = _varint(buf, i, end)
            j = i + n
        elif kind == _I64:
            j = i + 8
        elif kind == _I32:
            j = i + 4
        else:
            raise _UnreadableError
        if j > end:
            raise _UnreadableError
        yield number, kind, i, j
        i = j


def _ops_in(buf: memoryview, start: int, end: int, prefix: str) -> int:
    """How many ops entries an AugmentRequest in buf[start:end] holds (bounded walk)."""
    count = 0
    for number, kind, a, b in _fields(buf, start, end, MAX_AUGMENT_FIELDS, "AugmentRequest"):
        if number != _OPS:
            continue
        if kind == _LEN:  # packed: one byte per entry at least, a varint ends below 0x80
            if b - a > MAX_OPS * 10:
                count += b - a
            else:
                count += sum(1 for byte in buf[a:b] if byte < 0x80)
        else:
            count += 1
        if count > MAX_OPS:
            raise InvalidArgumentError(
                f"{prefix}ops", f"at most {MAX_OPS} entries (one per operation), got more"
            )
    return count


def check_augment(raw: bytes) -> None:
    """Refuse an AugmentRequest with more than MAX_OPS ops or too many fields."""
    buf = memoryview(raw)
    with contextlib.suppress(_UnreadableError):
        _ops_in(buf, 0, len(buf), "")


def check_stream_augment(raw: bytes) -> None:
    """`check_augment` for the request inside a StreamAugmentRequest."""
    buf = memoryview(raw)
    with contextlib.suppress(_UnreadableError):
        for number, kind, a, b in _fields(buf, 0, len(buf), 8, "StreamAugmentRequest"):
            if number == _REQUEST and kind == _LEN:
                _ops_in(buf, a, b, "request.")
