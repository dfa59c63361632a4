"""Hard-ratio (beta) schedules of the error-feedback loss.

beta says how much harder than the source pair an augmented pair should be for the current
estimator; it grows linearly over training so the augmentor produces harder poses as the
estimator improves. The paper states one beta going 2 -> 20; the official code
(function_poseaug/config.py, used in function_poseaug/model_gan_train.py ``update_hardratio``)
keeps one schedule per supervised output, with an accepted band around it:

    BA: 3 -> 5, band +-2  (--hardratio_ba_s, --hardratio_ba, --hardratio_std_ba)
    RT: 17 -> 17, band +-15  (--hardratio_rt_s, --hardratio_rt, --hardratio_std_rt)

and computes beta at ``epoch / epochs`` with ``epoch`` counted from 1. The official code has no
separate BL feedback (the RT output already carries BL's changes); ``bl`` here is a schedule
for a trainer that wants one, and ``feedback_ops`` lists the ops the official recipe uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPS = ("ba", "bl", "rt")


@dataclass(frozen=True)
class HardRatio:
    """Linear schedule ``start -> end`` with accepted band ``+-tolerance`` around it."""

    start: float
    end: float
    tolerance: float = 0.0

    def at(self, epoch_fraction: float) -> float:
        """beta at ``epoch_fraction`` in [0, 1] (clamped)."""
        t = min(max(float(epoch_fraction), 0.0), 1.0)
        return self.start + (self.end - self.start) * t


@dataclass(frozen=True)
class HardRatioSchedule:
    """Per-op hard ratios; defaults are the official ones."""

    ba: HardRatio = field(default_factory=lambda: HardRatio(3.0, 5.0, 2.0))
    bl: HardRatio = field(default_factory=lambda: HardRatio(3.0, 5.0, 2.0))
    rt: HardRatio = field(default_factory=lambda: HardRatio(17.0, 17.0, 15.0))
    feedback_ops: tuple[str, ...] = ("ba", "rt")

    def __post_init__(self) -> None:
        unknown = set(self.feedback_ops) - set(OPS)
        if unknown:
            raise ValueError(f"unknown feedback ops {sorted(unknown)}; choose from {OPS}")

    @classmethod
    def paper(cls) -> HardRatioSchedule:
        """The paper's single schedule, beta 2 -> 20, for every op (no band)."""
        ratio = HardRatio(2.0, 20.0, 0.0)
        return cls(ba=ratio, bl=ratio, rt=ratio, feedback_ops=OPS)

    def ratio(self, op: str) -> HardRatio:
        if op not in OPS:
            raise ValueError(f"unknown op {op!r}; choose from {OPS}")
        return getattr(self, op)

    def beta(self, op: str, epoch_fraction: float) -> float:
        return self.ratio(op).at(epoch_fraction)


DEFAULT_SCHEDULE = HardRatioSchedule()


def beta(op: str, epoch_fraction: float, schedule: HardRatioSchedule = DEFAULT_SCHEDULE) -> float:
    """Hard ratio of ``op`` ('ba', 'bl' or 'rt') at ``epoch_fraction`` in [0, 1]."""
    return schedule.beta(op, epoch_fraction)
