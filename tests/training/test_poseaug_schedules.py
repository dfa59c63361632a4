"""Hard-ratio (beta) schedules."""

from __future__ import annotations

import pytest

from poseaug_training.poseaug.schedules import HardRatio, HardRatioSchedule, beta


def test_official_defaults_and_endpoints():
    s = HardRatioSchedule()
    assert (s.ba.start, s.ba.end, s.ba.tolerance) == (3.0, 5.0, 2.0)
    assert (s.rt.start, s.rt.end, s.rt.tolerance) == (17.0, 17.0, 15.0)
    assert s.feedback_ops == ("ba", "rt")
    for op in ("ba", "bl", "rt"):
        assert beta(op, 0.0) == s.ratio(op).start
        assert beta(op, 1.0) == s.ratio(op).end


def test_linear_in_between_and_clamped_outside():
    r = HardRatio(2.0, 20.0)
    assert r.at(0.5) == 11.0
    assert r.at(0.25) == 6.5
    assert r.at(-1.0) == 2.0 and r.at(3.0) == 20.0


def test_paper_schedule_two_to_twenty_for_every_op():
    s = HardRatioSchedule.paper()
    for op in ("ba", "bl", "rt"):
        assert beta(op, 0.0, s) == 2.0 and beta(op, 1.0, s) == 20.0
    assert s.feedback_ops == ("ba", "bl", "rt")


def test_unknown_ops_rejected():
    with pytest.raises(ValueError):
        beta("xx", 0.5)
    with pytest.raises(ValueError):
        HardRatioSchedule(feedback_ops=("ba", "foo"))
