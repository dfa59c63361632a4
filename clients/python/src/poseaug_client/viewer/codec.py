"""Compact numbers for the viewer page: integers as zigzag varints in base64, flags as bits.

Rounded millimetres of a track change by a few millimetres from frame to frame, so each value
is stored as its difference from the same value one row earlier (`delta_stride`), which takes
one byte for most values instead of the five characters a JSON number would. viewer.js decodes
exactly this (decodeInts, decodeBits).
"""

from __future__ import annotations

import base64

import numpy as np


def encode_ints(values: np.ndarray, delta_stride: int = 0) -> str:
    """Integers (any shape, flattened) as base64 of zigzag varints; with `delta_stride` each
    value after the first `delta_stride` is stored as its difference from the value that many
    places before it."""
    flat = np.asarray(values, dtype=np.int64).ravel()
    if delta_stride and flat.size > delta_stride:
        flat = np.concatenate([flat[:delta_stride], flat[delta_stride:] - flat[:-delta_stride]])
    zig = np.where(flat >= 0, 2 * flat, -2 * flat - 1).astype(np.uint64)
    if zig.size and int(zig.max()) >= 1 << 31:
        raise ValueError("viewer values must fit in 31 bits after zigzag coding")
    lengths = np.ones(zig.size, dtype=np.int64)
    for bits in (7, 14, 21, 28):
        lengths += zig >= (1 << bits)
    starts = np.cumsum(lengths) - lengths
    out = np.zeros(int(lengths.sum()), dtype=np.uint8)
    for k in range(int(lengths.max(initial=0))):
        here = lengths > k
        byte = (zig[here] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (lengths[here] > k + 1).astype(np.uint64) << np.uint64(7)
        out[starts[here] + k] = (byte | more).astype(np.uint8)
    return base64.b64encode(out.tobytes()).decode("ascii")


def decode_ints(text: str, delta_stride: int = 0) -> np.ndarray:
    """The inverse of encode_ints (for tests; the page decodes in JavaScript)."""
    data = base64.b64decode(text)
    values, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append((value >> 1) ^ -(value & 1))
            value, shift = 0, 0
    flat = np.asarray(values, dtype=np.int64)
    if delta_stride:
        flat = flat.reshape(-1, delta_stride).cumsum(axis=0).ravel()
    return flat


def encode_bits(flags: np.ndarray) -> str:
    """Booleans (flattened) as base64 of packed bits, most significant bit first."""
    packed = np.packbits(np.asarray(flags, dtype=bool).ravel())
    return base64.b64encode(packed.tobytes()).decode("ascii")
