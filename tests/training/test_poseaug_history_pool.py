"""Fake-pose history pool for discriminator updates."""

from __future__ import annotations

import pytest
import torch

from poseaug_training.poseaug.history_pool import HistoryPool


def _batch(n: int, start: int) -> torch.Tensor:
    """Items [n,17,3] whose every entry equals a unique id, so provenance is visible."""
    ids = torch.arange(start, start + n, dtype=torch.float32)
    return ids[:, None, None].expand(n, 17, 3).clone()


def _ids(batch: torch.Tensor) -> list[int]:
    return [int(v) for v in batch[:, 0, 0]]


def test_fill_phase_returns_and_stores_the_inputs():
    pool = HistoryPool(size=10, seed=0)
    first = _batch(6, 0)
    assert torch.equal(pool(first), first)
    assert len(pool) == 6
    second = _batch(6, 100)
    out = pool(second)
    assert len(pool) == 10
    assert _ids(out)[:4] == [100, 101, 102, 103]  # filled the pool, returned as is
    # The last two found the pool full: each is returned, or swapped for a stored pose.
    stored = {0, 1, 2, 3, 4, 5, 100, 101, 102, 103}
    assert all(i in stored or i == 100 + k for k, i in enumerate(_ids(out)))
    assert set(_ids(pool.items)) <= stored | {104, 105}
    swapped = [100 + k for k in (4, 5) if _ids(out)[k] != 100 + k]
    if swapped:  # the last pose that swapped always takes its slot
        assert swapped[-1] in _ids(pool.items)


def test_full_pool_returns_older_samples_about_half_the_time():
    pool = HistoryPool(size=64, seed=1)
    pool(_batch(64, 0))
    stored_before = set(_ids(pool.items))
    batch = _batch(2000, 1000)
    out = pool(batch)
    ids = _ids(out)
    old = [i for i in ids if i < 1000]
    new_same_place = [i for k, i in enumerate(ids) if i == 1000 + k]
    assert len(old) + len(new_same_place) == len(ids)
    assert set(old) <= stored_before
    assert 0.45 < len(old) / len(ids) < 0.55
    # Swapped-in poses now live in the pool.
    assert any(i >= 1000 for i in _ids(pool.items))


def test_swapped_poses_are_returned_later():
    pool = HistoryPool(size=4, p_old=1.0, seed=2)
    pool(_batch(4, 0))
    out = pool(_batch(1, 50))
    assert _ids(out)[0] in {0, 1, 2, 3}
    assert 50 in _ids(pool.items)
    later = set()
    for step in range(30):
        later |= set(_ids(pool(_batch(1, 60 + step))))
    assert 50 in later


def test_p_old_zero_always_returns_the_new_batch():
    pool = HistoryPool(size=8, p_old=0.0, seed=3)
    pool(_batch(8, 0))
    b = _batch(20, 100)
    assert torch.equal(pool(b), b)


def test_same_seed_same_sequence_and_global_seed_reproducible():
    def run(pool: HistoryPool) -> list[list[int]]:
        return [_ids(pool(_batch(16, 16 * k))) for k in range(6)]

    assert run(HistoryPool(size=20, seed=5)) == run(HistoryPool(size=20, seed=5))
    torch.manual_seed(11)
    a = run(HistoryPool(size=20))
    torch.manual_seed(11)
    b = run(HistoryPool(size=20))
    assert a == b
    g = torch.Generator().manual_seed(5)
    assert run(HistoryPool(size=20, generator=g)) == run(HistoryPool(size=20, seed=5))


def test_output_is_detached_and_shape_checked():
    pool = HistoryPool(size=4, seed=0)
    x = torch.randn(3, 17, 3, requires_grad=True)
    assert not pool(x).requires_grad
    with pytest.raises(ValueError, match="shape"):
        pool(torch.randn(3, 17, 2))
    assert torch.equal(HistoryPool(size=0)(x), x.detach())
    with pytest.raises(ValueError):
        HistoryPool(size=4, p_old=1.5)


def test_state_dict_round_trip_continues_identically():
    a = HistoryPool(size=12, seed=7)
    for k in range(3):
        a(_batch(5, 10 * k))
    b = HistoryPool(size=12, seed=999)
    b.load_state_dict(a.state_dict())
    assert len(b) == len(a) and torch.equal(b.items, a.items)
    for k in range(3, 8):
        assert _ids(a(_batch(5, 10 * k))) == _ids(b(_batch(5, 10 * k)))
    with pytest.raises(ValueError, match="size"):
        HistoryPool(size=3).load_state_dict(a.state_dict())
    empty = HistoryPool(size=12, seed=1)
    empty.load_state_dict(HistoryPool(size=12, seed=1).state_dict())
    assert len(empty) == 0 and empty.items is None
