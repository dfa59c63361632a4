"""Rotations of whole bodies as unit quaternions: Augment's bound on how far RT tilts a body.

The augmentor reports RT's rotation as an axis-angle vector (the contract). Bounding the tilt
means splitting the rotation into its turn about the up axis (twist: a new viewpoint) and the
rest (swing: the body leaning away from upright), and shortening the swing. Quaternions make
that exact at every angle (no branch at pi as with matrices); every function is vectorized
over rows and works in float64.
"""

from __future__ import annotations

import numpy as np

# The camera's up direction (camera frame: y down): callers' poses are seen by a level camera.
UP = np.array([0.0, -1.0, 0.0])
_EPS = 1e-12


def from_axis_angle(axis_angle: np.ndarray) -> np.ndarray:
    """[N, 3] axis-angle (radians) -> [N, 4] unit quaternions (w, x, y, z)."""
    v = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(v, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(half) / angle with its series near zero
    scale = np.where(angle < 1e-8, 0.5, np.sin(half) / np.maximum(angle, 1e-8))
    return np.concatenate([np.cos(half), v * scale], axis=-1)


def to_axis_angle(q: np.ndarray) -> np.ndarray:
    """[N, 4] unit quaternions -> [N, 3] axis-angle with angle in [0, pi]."""
    q = np.where(q[:, :1] < 0, -q, q)
    vec = q[:, 1:]
    n = np.linalg.norm(vec, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(n, q[:, :1])
    scale = np.where(n < 1e-12, 2.0, angle / np.maximum(n, 1e-12))
    return vec * scale


def product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of [N, 4] quaternions (the rotation b, then a)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def conjugate(q: np.ndarray) -> np.ndarray:
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def to_matrix(q: np.ndarray) -> np.ndarray:
    """[N, 4] unit quaternions -> [N, 3, 3] rotation matrices."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def cos_tilt(q: np.ndarray, up: np.ndarray = UP) -> np.ndarray:
    """[N]: cosine of the angle between the rotated `up` and `up` (1: upright kept). For q's
    vector part v, (R u) . u = 1 - 2 (|v|^2 - (v . u)^2)."""
    v = q[:, 1:]
    along = v @ up
    return 1.0 - 2.0 * (np.einsum("ni,ni->n", v, v) - along * along)


def swing_twist(q: np.ndarray, up: np.ndarray = UP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split [N, 4] rotations into swing (a unit axis [N, 3] perpendicular to `up` and the tilt
    angle [N] it turns `up` by, radians in [0, pi]) and twist about `up` ([N, 4]), q = swing *
    twist."""
    w = q[:, :1]
    along = (q[:, 1:] @ up)[:, None] * up  # the twist's vector part
    twist = np.concatenate([w, along], axis=-1)
    norm = np.linalg.norm(twist, axis=-1, keepdims=True)
    # A swing of exactly pi has no twist part to speak of: take no twist.
    twist = np.where(norm < _EPS, np.array([1.0, 0.0, 0.0, 0.0]), twist / np.maximum(norm, _EPS))
    swing = product(q, conjugate(twist))
    swing = np.where(swing[:, :1] < 0, -swing, swing)
    axis = swing[:, 1:]
    sin_half = np.linalg.norm(axis, axis=-1, keepdims=True)
    tilt = 2.0 * np.arctan2(sin_half, swing[:, :1])
    return axis / np.maximum(sin_half, _EPS), tilt[:, 0], twist


def with_swing(axis: np.ndarray, tilt: np.ndarray, twist: np.ndarray) -> np.ndarray:
    """[N, 4]: the rotation that twists by `twist`, then swings by `tilt` [N] about `axis`."""
    half = 0.5 * tilt[:, None]
    return product(np.concatenate([np.cos(half), axis * np.sin(half)], axis=-1), twist)


def bound_tilt(
    q: np.ndarray, max_tilt: float, torso: np.ndarray | None = None, up: np.ndarray = UP
) -> np.ndarray:
    """[N, 4]: each rotation with its swing away from `up` cut to at most `max_tilt` radians
    (its direction kept) and its twist about `up` kept. Afterwards the angle between the rotated
    up and `up` is min(that of q, max_tilt).

    With `torso` ([N, 3], the body's hip -> thorax vector before q), the swing also stops where
    it would turn the torso past horizontal, head down, where it was not so before: a body
    lying at 75 degrees is not tilted 30 more onto its head."""
    axis, tilt, twist = swing_twist(q, up)
    tilt = np.minimum(tilt, max_tilt)
    if torso is not None:
        tilt = _stop_at_horizontal(axis, tilt, twist, torso, up)
    return with_swing(axis, tilt, twist)


def _torso_tilt(q: np.ndarray, torso: np.ndarray, up: np.ndarray) -> np.ndarray:
    turned = np.einsum("nij,nj->ni", to_matrix(q), torso)
    cos = (turned @ up) / np.maximum(np.linalg.norm(turned, axis=-1), _EPS)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def _stop_at_horizontal(axis, tilt, twist, torso, up, steps: int = 24) -> np.ndarray:
    """Swing angles [N]: `tilt`, or for the rows it turns head down (torso more than 90 degrees
    from `up`) that were not head down before, a smaller one that leaves the torso at
    horizontal (bisection between no swing, which keeps the torso's own tilt since a twist
    about `up` does not change it, and `tilt`)."""
    limit = np.where(_torso_tilt(twist, torso, up) <= 0.5 * np.pi, 0.5 * np.pi, np.pi)
    bad = np.flatnonzero(_torso_tilt(with_swing(axis, tilt, twist), torso, up) > limit)
    if not bad.size:
        return tilt
    lo, hi = np.zeros(bad.size), tilt[bad]
    a, w, t, lim = axis[bad], twist[bad], torso[bad], limit[bad]
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        ok = _torso_tilt(with_swing(a, mid, w), t, up) <= lim
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    out = tilt.copy()
    out[bad] = lo
    return out
