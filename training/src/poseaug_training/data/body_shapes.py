"""Other bodies: poses re-targeted to other statures and proportions, joint angles unchanged.

Human3.6M has seven adults of 1.6-1.75 m; real footage has children, short and tall adults.
`sample_bodies` draws a body per pose from documented ranges and `retarget` re-builds the pose
on it: each bone keeps its direction and is scaled by the body's stature ratio times its
segment group's proportion factor, so every joint angle stays the source's.

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

from dataclasses import dataclass

import torch

from poseaug_training.poseaug.bones import bone_vectors, pose_from_bone_vectors
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


UNSEEN_BODIES = BodyRanges()


def sample_bodies(
    n: int, ranges: BodyRanges = UNSEEN_BODIES, gen: torch.Generator | None = None
) -> torch.Tensor:
    """[N, 16] per-bone length factors for N bodies drawn from `ranges`."""

    def uniform(lo_hi: tuple[float, float]) -> torch.Tensor:
        lo, hi = lo_hi
        return torch.rand(n, generator=gen, dtype=torch.float64) * (hi - lo) + lo

    child = torch.rand(n, generator=gen, dtype=torch.float64) < ranges.child_share
    stature = torch.where(child, uniform(ranges.child_stature_m), uniform(ranges.adult_stature_m))
    young = child.double() * (
        (ranges.child_stature_m[1] - stature)
        / (ranges.child_stature_m[1] - ranges.child_stature_m[0])
    )
    spread = torch.randn(n, len(GROUPS), generator=gen, dtype=torch.float64) * ranges.segment_sd
    spread = 1.0 + spread.clamp(-ranges.segment_clip, ranges.segment_clip)
    factors = torch.ones(n, NUM_BONES, dtype=torch.float64)
    for g, (name, bones) in enumerate(GROUPS.items()):
        proportion = 1.0 + young * (CHILD_FACTORS[name] - 1.0)
        factors[:, list(bones)] = (proportion * spread[:, g])[:, None]
    return factors * (stature / SOURCE_STATURE_M)[:, None]


def retarget(poses: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Root-relative poses [N, 17, 3] with every bone scaled by `factors` [N, 16]."""
    bones = bone_vectors(poses.double()) * factors[..., None]
    return pose_from_bone_vectors(bones).to(poses.dtype)
