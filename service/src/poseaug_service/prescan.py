"""Checks on a request's raw protobuf bytes, before it is parsed.

Parsing a message costs time and memory in proportion to what it holds, whatever its
declared fields allow: 15 million `ops` entries take 15 MB on the wire and over 100 ms of
parsing with the GIL held; 100 million empty `image_sizes` take 200 MB on the wire and 2.4 GB
once parsed. Walking the top-level tags (field values are skipped, never read) bounds the
repeated fields before the parser sees them: an AugmentRequest has a handful of fields and at
most MAX_OPS ops, a Lift2Dto3DRequest at most one image size and one camera per pose.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from poseaug_service.errors import InvalidArgumentError
from poseaug_service.limits import MAX_OPS

# Top-level fields a well-formed AugmentRequest can hold (each field once, ops unpacked).
MAX_AUGMENT_FIELDS = 32
_OPS = 2  # AugmentRequest.ops
_REQUEST = 1  # StreamAugmentRequest.request, StreamLift2Dto3DRequest.request
# Lift2Dto3DRequest's repeated messages, one entry per pose at most.
_PER_POSE = {5: "image_sizes", 9: "cameras"}
_LIFT_SINGLE_FIELDS = 16  # room for the other fields (each sent once, or a few times)
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


def _per_pose_in(buf: memoryview, start: int, end: int, max_poses: int, prefix: str) -> None:
    """Count image_sizes and cameras entries (a tight loop: legitimate requests may hold a
    million of them); other fields go through `_fields`' general path."""
    counts = dict.fromkeys(_PER_POSE, 0)
    fields, limit = 0, 2 * max_poses + _LIFT_SINGLE_FIELDS
    i = start
    while i < end:
        fields += 1
        if fields > limit:
            raise InvalidArgumentError("", "not a valid Lift2Dto3DRequest (too many fields)")
        key = buf[i]
        if key >= 0x80 or key & 7 != _LEN:  # a long key or a scalar: the general path
            _, _, _, i = next(_fields(buf, i, end, 1, "Lift2Dto3DRequest"))
            continue
        size = buf[i + 1] if i + 1 < end else 0x80
        if size < 0x80:  # most lengths take one byte
            i += 2 + size
        else:
            size, j = _varint(buf, i + 1, end)
            i = j + size
        if i > end:
            raise _UnreadableError
        number = key >> 3
        if number in counts:
            counts[number] += 1
            if counts[number] > max_poses:
                raise InvalidArgumentError(
                    f"{prefix}{_PER_POSE[number]}",
                    f"one entry per pose at most, and at most {max_poses} poses; got more",
                )


def lift_check(max_poses: int) -> Callable[[bytes], None]:
    """The check of a Lift2Dto3DRequest: no more image sizes or cameras than `max_poses`."""

    def check(raw: bytes) -> None:
        buf = memoryview(raw)
        with contextlib.suppress(_UnreadableError):
            _per_pose_in(buf, 0, len(buf), max_poses, "")

    return check


def stream_lift_check(max_poses: int) -> Callable[[bytes], None]:
    """`lift_check` for the request inside a StreamLift2Dto3DRequest."""

    def check(raw: bytes) -> None:
        buf = memoryview(raw)
        with contextlib.suppress(_UnreadableError):
            for number, kind, a, b in _fields(buf, 0, len(buf), 8, "StreamLift2Dto3DRequest"):
                if number == _REQUEST and kind == _LEN:
                    _per_pose_in(buf, a, b, max_poses, "request.")

    return check


def prechecks(max_poses: int) -> dict[str, Callable[[bytes], None]]:
    """Raw-byte checks per method name, under `--max-poses-per-request`."""
    return {
        "Lift2Dto3D": lift_check(max_poses),
        "StreamLift2Dto3D": stream_lift_check(max_poses),
        "Augment": check_augment,
        "StreamAugment": check_stream_augment,
    }
