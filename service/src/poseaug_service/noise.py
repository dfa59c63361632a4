"""Augmentor noise as a pure function of (seed, op, output row).

Why counter-based: StreamAugment produces rows chunk by chunk and the unary Augment all at
once; both must give identical rows. Philox-4x64 (numpy) is a counter-based generator: row r of
op o uses the counter blocks [r * B, (r + 1) * B) under key = SeedSequence([seed, o]), with
B = ceil(D / 4) blocks of four 64-bit words per row. Any chunk can start at any row without
generating the rows before it. The words become standard normals by Box-Muller on 53-bit
uniforms, in float64 (then rounded to float32), so results match across machines. The same
counters give the uniforms of the placement draws (`OP_PLACE`), and re-draws of implausible
poses use the key SeedSequence([seed, o, attempt]).
"""

from __future__ import annotations

import numpy as np

OP_BA, OP_BL, OP_RT = 0, 1, 2
OP_PLACE = 3  # the placement draws (placement.py), a stream of their own
_WORDS_PER_BLOCK = 4
_TWO_POW_M53 = 2.0**-53


def _key(seed: int, op: int, attempt: int) -> np.ndarray:
    # Attempt 0 keeps the key every earlier version used, so seeds keep their rows.
    entropy = [seed, op] if attempt == 0 else [seed, op, attempt]
    return np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint64)


def _raw(seed: int, op: int, start_row: int, rows: int, dim: int, attempt: int) -> np.ndarray:
    """Rows of 64-bit words: row r uses counter blocks [r * B, (r + 1) * B)."""
    blocks = -(-dim // _WORDS_PER_BLOCK)
    words = blocks * _WORDS_PER_BLOCK
    gen = np.random.Philox(key=_key(seed, op, attempt), counter=start_row * blocks)
    return gen.random_raw(rows * words).reshape(rows, words)


def uniform(seed: int, op: int, start_row: int, rows: int, dim: int) -> np.ndarray:
    """Uniform [0, 1) rows [start_row, start_row + rows) of `op`, shape [rows, dim], float64."""
    raw = _raw(seed, op, start_row, rows, dim, 0)
    return (raw[:, :dim] >> np.uint64(11)) * _TWO_POW_M53


def standard_normal(
    seed: int, op: int, start_row: int, rows: int, dim: int, attempt: int = 0
) -> np.ndarray:
    """Noise rows [start_row, start_row + rows) of `op`, shape [rows, dim], float32; each
    `attempt` (a re-draw of rows whose poses were implausible) is an independent stream."""
    raw = _raw(seed, op, start_row, rows, dim, attempt)
    words = raw.shape[1]
    u1 = ((raw[:, 0::2] >> np.uint64(11)) + np.uint64(1)) * _TWO_POW_M53  # (0, 1]
    angle = (raw[:, 1::2] >> np.uint64(11)) * (2.0 * np.pi * _TWO_POW_M53)
    radius = np.sqrt(-2.0 * np.log(u1))
    out = np.empty((rows, words), dtype=np.float32)
    out[:, 0::2] = radius * np.cos(angle)
    out[:, 1::2] = radius * np.sin(angle)
    return out[:, :dim]
