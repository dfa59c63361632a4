"""Other bodies: poses re-targeted to other statures and proportions, joint angles unchanged.

Human3.6M has seven adults of 1.6-1.75 m; real footage has children, short and tall adults.
`sample_bodies` draws a body per pose from documented ranges as per-bone length factors: the
body's stature ratio times its segment group's proportion factor. BL's `apply_bone_length`
re-builds a pose on them, each bone keeping its direction, so every joint angle stays the
source's.

Ranges (approximations of published anthropometry; the source subjects count as 1.70 m):
- adults (`1 - child_share` of the draws): stature uniform in 1.50-1.95 m (about the 5th
  percentile of women to the 95th of men in ANSUR II, 2012);
- children: stature uniform in 1.00-1.50 m (CDC 2000 growth charts: the median child of about
  4 to 12 years). Children's proportions differ from a scaled adult's, the more the younger
  (linear in stature from 1.50 m, no change, to 1.00 m, the full factor): the head segment
  x1.30 (the head is about 1/5 of stature at 4 years against 1/7.5 in adults), legs x0.90
  (leg length about 44% of stature at 4 years against 47% in adults), arms x0.95, the spine
  x1.08 (a longer trunk), shoulder and hip width x0.95, the neck x0.90;
- every body: each segment group's length varies by a further factor drawn from N(1, 0.04)
  clipped to 0.92-1.08 (the spread of segment-to-stature ratios among adults).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from poseaug_training.skeleton import NUM_BONES

SOURCE_STATURE_M = 1.70
# Segment groups of the H36M-17 bones (bone b ends at joint b + 1).
GROUPS: dict[str, tuple[int, ...]] = {
    "pelvis_width": (0, 3),
    "thigh": (1, 4),
    "shank": (2, 5),
    "spine": (6, 7),
    "neck": (8,),
    "head": (9,),
    "shoulder_width": (10, 13),
    "upper_arm": (11, 14),
    "forearm": (12, 15),
}
# The youngest child's proportion factor per group (1.0: as a scaled adult).
CHILD_FACTORS: dict[str, float] = {
    "pelvis_width": 0.95,
    "thigh": 0.90,
    "shank": 0.90,
    "spine": 1.08,
    "neck": 0.90,
    "head": 1.30,
    "shoulder_width": 0.95,
    "upper_arm": 0.95,
    "forearm": 0.95,
}


@dataclass(frozen=True)
class BodyRanges:
    """Where re-targeted bodies are drawn from (see module docstring)."""

    adult_stature_m: tuple[float, float] = (1.50, 1.95)
    child_stature_m: tuple[float, float] = (1.00, 1.50)
    child_share: float = 0.4
    segment_sd: float = 0.04
    segment_clip: float = 0.08

    def __post_init__(self) -> None:  # ranges read back from JSON arrive as lists
        for name in ("adult_stature_m", "child_stature_m"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))


def body_ranges_buffer(ranges: BodyRanges) -> torch.Tensor:
    """The prior's numbers as one flat tensor, field by field (a BL op keeps its prior so)."""
    values: list[float] = []
    for f in fields(BodyRanges):
        value = getattr(ranges, f.name)
        values.extend(value if isinstance(value, tuple) else (float(value),))
    return torch.tensor(values, dtype=torch.float64)


def body_ranges_from_buffer(values: torch.Tensor) -> dict:
    """BodyRanges' fields (a dict) back from `body_ranges_buffer`."""
    flat = [float(v) for v in values.flatten()]
    out: dict = {}
    for f in fields(BodyRanges):
        if isinstance(getattr(UNSEEN_BODIES, f.name), tuple):
            out[f.name], flat = (flat[0], flat[1]), flat[2:]
        else:
            out[f.name], flat = flat[0], flat[1:]
    return out


UNSEEN_BODIES = BodyRanges()
# PoseAug's body prior (BL with --bl-bodies): the same published ranges, fewer children; the
# unseen-bodies test thus measures how well a lifter uses this prior, not how it copes with
# bodies no prior foresaw.
TRAIN_BODIES = BodyRanges(child_share=0.25)


# Standard normal draws one body takes (bodies_from_normal): class, stature, one per group.
BODY_DRAWS = 2 + len(GROUPS)


def bodies_from_normal(z: torch.Tensor, ranges: BodyRanges) -> torch.Tensor:
    """[N, 16] per-bone length factors of the bodies that standard normal draws z [N, >=
    BODY_DRAWS] pick from `ranges`: a pure, differentiable-free function of z built from
    elementary ops, so an exported augmentor draws its bodies from its noise input."""
    z = z[:, :BODY_DRAWS]
    u = 0.5 * (1.0 + torch.erf(z[:, :2] / 2**0.5))  # two uniforms
    child = (u[:, 0] < ranges.child_share).to(z.dtype)
    (a_lo, a_hi), (c_lo, c_hi) = ranges.adult_stature_m, ranges.child_stature_m
    stature = child * (c_lo + (c_hi - c_lo) * u[:, 1]) + (1 - child) * (
        a_lo + (a_hi - a_lo) * u[:, 1]
    )
    young = child * (c_hi - stature) / (c_hi - c_lo)
    spread = 1.0 + (z[:, 2:] * ranges.segment_sd).clamp(-ranges.segment_clip, ranges.segment_clip)
    per_group = [
        (1.0 + young * (CHILD_FACTORS[name] - 1.0)) * spread[:, g] for g, name in enumerate(GROUPS)
    ]
    bone_group = [
        next(g for g, bones in enumerate(GROUPS.values()) if b in bones) for b in range(NUM_BONES)
    ]
    factors = torch.stack(per_group, dim=1)[:, bone_group]
    return factors * (stature / SOURCE_STATURE_M)[:, None]


def sample_bodies(
    n: int, ranges: BodyRanges = UNSEEN_BODIES, gen: torch.Generator | None = None
) -> torch.Tensor:
    """[N, 16] per-bone length factors for N bodies drawn from `ranges`."""
    z = torch.randn(n, BODY_DRAWS, generator=gen, dtype=torch.float64)
    return bodies_from_normal(z, ranges)
