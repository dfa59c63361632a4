"""Augmentor noise as a pure function of (seed, op, output row).

Why counter-based: StreamAugment produces rows chunk by chunk and the unary Augment all at
once; both must give identical rows. Philox-4x64 (numpy) is a counter-based generator: row r of
op o uses the counter blocks [r * B, (r + 1) * B) under key = SeedSequence([seed, o]), with
B = ceil(D / 4) blocks of four 64-bit words per row. Any chunk can start at any row without
generating the rows before it. The words become standard normals by Box-Muller on 53-bit
uniforms, in float64 (then rounded to float32), so results match across machines.
"""

from __future__ import annotations

import numpy as np

OP_BA, OP_BL, OP_RT = 0, 1, 2
_WORDS_PER_BLOCK = 4
_TWO_POW_M53 = 2.0**-53


def _key(seed: int, op: int) -> np.ndarray:
    return np.random.SeedSequence([seed, op]).generate_state(2, dtype=np.uint64)


def standard_normal(seed: int, op: int, start_row: int, rows: int, dim: int) -> np.ndarray:
    """Noise rows [start_row, start_row + rows) of `op`, shape [rows, dim], float32."""
    blocks = -(-dim // _WORDS_PER_BLOCK)
    words = blocks * _WORDS_PER_BLOCK
    gen = np.random.Philox(key=_key(seed, op), counter=start_row * blocks)
    raw = gen.random_raw(rows * words).reshape(rows, words)
    u1 = ((raw[:, 0::2] >> np.uint64(11)) + np.uint64(1)) * _TWO_POW_M53  # (0, 1]
    angle = (raw[:, 1::2] >> np.uint64(11)) * (2.0 * np.pi * _TWO_POW_M53)
    radius = np.sqrt(-2.0 * np.log(u1))
    out = np.empty((rows, words), dtype=np.float32)
    out[:, 0::2] = radius * np.cos(angle)
    out[:, 1::2] = radius * np.sin(angle)
    return out[:, :dim]
