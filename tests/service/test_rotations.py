"""Augment's tilt bound on its own (rotations.py): the swing cut to the bound, the twist kept,
and no body that was not head down tilted past horizontal."""

from __future__ import annotations

import numpy as np

from poseaug_service.rotations import (
    UP,
    bound_tilt,
    from_axis_angle,
    product,
    swing_twist,
    to_matrix,
)

BOUND = np.radians(30.0)


def random_rotations(n: int, seed: int, max_tilt_deg: float) -> np.ndarray:
    """[n, 4]: a random turn about up, then a random swing of up to `max_tilt_deg`."""
    rng = np.random.default_rng(seed)
    yaw = from_axis_angle(UP * rng.uniform(-np.pi, np.pi, (n, 1)))
    azimuth = rng.uniform(0, 2 * np.pi, n)
    axis = np.stack([np.cos(azimuth), np.zeros(n), np.sin(azimuth)], axis=1)
    swing = from_axis_angle(axis * np.radians(rng.uniform(0, max_tilt_deg, (n, 1))))
    return product(swing, yaw)


def torsos(n: int, seed: int, tilt_deg: float) -> np.ndarray:
    """[n, 3] unit torso vectors `tilt_deg` from up, at random azimuths."""
    azimuth = np.random.default_rng(seed).uniform(0, 2 * np.pi, n)
    t = np.radians(tilt_deg)
    return np.stack(
        [np.sin(t) * np.cos(azimuth), -np.cos(t) * np.ones(n), np.sin(t) * np.sin(azimuth)], 1
    )


def tilt_deg(q: np.ndarray, torso: np.ndarray) -> np.ndarray:
    turned = np.einsum("nij,nj->ni", to_matrix(q), torso)
    return np.degrees(np.arccos(np.clip(turned @ UP, -1, 1)))


def test_the_swing_is_cut_and_the_twist_kept() -> None:
    q = random_rotations(500, seed=1, max_tilt_deg=90.0)
    bounded = bound_tilt(q, BOUND)
    up_tilt = np.degrees(np.arccos(np.clip(to_matrix(bounded) @ UP @ UP, -1, 1)))
    assert up_tilt.max() <= 30.0 + 1e-9 and up_tilt.max() > 29.9
    _, _, twist = swing_twist(q)
    _, _, kept = swing_twist(bounded)
    np.testing.assert_allclose(np.abs((twist * kept).sum(1)), 1.0, atol=1e-12)


def test_no_body_is_tilted_past_horizontal_onto_its_head() -> None:
    q = random_rotations(2000, seed=2, max_tilt_deg=60.0)
    torso = torsos(2000, seed=3, tilt_deg=80.0)  # bodies lying at 80 degrees
    plain, guarded = bound_tilt(q, BOUND), bound_tilt(q, BOUND, torso=torso)
    over = tilt_deg(plain, torso) > 90.0
    assert over.mean() > 0.1  # the 30 degree bound alone tips some of them head down
    after = tilt_deg(guarded, torso)
    assert after.max() <= 90.0 + 1e-4
    # those stop at horizontal, the rest keep the plain bound's rotation
    np.testing.assert_allclose(after[over], 90.0, atol=1e-4)
    np.testing.assert_allclose(guarded[~over], plain[~over], atol=1e-12)


def test_bodies_already_head_down_are_left_to_the_plain_bound() -> None:
    q = random_rotations(500, seed=4, max_tilt_deg=60.0)
    torso = torsos(500, seed=5, tilt_deg=120.0)
    np.testing.assert_allclose(bound_tilt(q, BOUND, torso=torso), bound_tilt(q, BOUND), atol=1e-12)
