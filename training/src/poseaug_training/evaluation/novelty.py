"""How far the poses of some actions lie from every other action's: the unseen-poses split.

Cameras give a lifter every viewpoint of the poses it trains on; they cannot give it joint
angles its training subjects never made. The cross-action test holds whole actions out of
training and tests on them, and the actions to hold out are those whose poses lie farthest
from the rest, measured without viewpoint or body size:
- every pose is re-built on one mean skeleton (each bone keeps its direction, takes the mean
  length of the training subjects' bones) and turned about the vertical axis so its hip line
  runs along x (heading removed);
- a held-out set H is scored by the mean, over the poses of H, of the MPJPE to the nearest pose
  of any action outside H (every `stride`-th frame of the training subjects).
`rank_held_out` scores every set of one, two or three actions; `poseaug-train action-novelty`
prints the table, kept in docs/results/novelty/.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from poseaug_training.data.h36m import H36M, action_of
from poseaug_training.poseaug.bones import bone_vectors, pose_from_bone_vectors

# The unseen-poses split, chosen by `rank_held_out` on S1, S5, S6, S7, S8 (every 20th frame):
# the two sitting actions lie 126 mm (mean nearest-pose MPJPE) from every other action's poses,
# the best pair; single actions other than SittingDown lie 48-83 mm from the rest.
NOVEL_ACTIONS: tuple[str, ...] = ("Sitting", "SittingDown")


def canonical_poses(world_rel: torch.Tensor, bone_length: torch.Tensor) -> torch.Tensor:
    """Root-relative world poses [N, 17, 3] (z up) on one skeleton (`bone_length` [16]), hip
    line turned onto +x: what is left is the joint angles and the lean."""
    bones = bone_vectors(world_rel.double())
    bones = bones / bones.norm(dim=-1, keepdim=True).clamp_min(1e-9) * bone_length[:, None]
    pose = pose_from_bone_vectors(bones)
    hip = pose[:, 4] - pose[:, 1]  # right hip -> left hip
    heading = -torch.atan2(hip[:, 1], hip[:, 0])
    c, s = torch.cos(heading), torch.sin(heading)
    x = c[:, None] * pose[..., 0] - s[:, None] * pose[..., 1]
    y = s[:, None] * pose[..., 0] + c[:, None] * pose[..., 1]
    return torch.stack([x, y, pose[..., 2]], -1)


def nearest_mpjpe(queries: torch.Tensor, pool: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """[Q]: each query pose's MPJPE to its nearest pose in `pool` [P, 17, 3]."""
    pool = pool.float()
    out = []
    for i in range(0, len(queries), chunk):
        q = queries[i : i + chunk].float()
        out.append((q[:, None] - pool[None]).norm(dim=-1).mean(-1).amin(1))
    return torch.cat(out)


def poses_by_action(data: H36M, subjects: list[str], stride: int) -> dict[str, torch.Tensor]:
    """Canonical poses of `subjects`, every `stride`-th frame, grouped by action."""
    raw: dict[str, list[np.ndarray]] = {}
    for subject, seq in data.sequences(subjects):
        w = data.poses_world[(subject, seq)][::stride]
        raw.setdefault(action_of(seq), []).append(w - w[:, :1])
    grouped = {a: torch.from_numpy(np.concatenate(v)) for a, v in sorted(raw.items())}
    every = torch.cat(list(grouped.values()))
    mean_length = bone_vectors(every.double()).norm(dim=-1).mean(0)
    return {a: canonical_poses(p, mean_length) for a, p in grouped.items()}


def rank_held_out(
    data: H36M,
    subjects: list[str],
    stride: int = 20,
    sizes: tuple[int, ...] = (1, 2, 3),
    query_stride: int = 4,
) -> list[tuple[tuple[str, ...], float]]:
    """Every held-out set of `sizes` actions with its novelty (mm), farthest first.

    Distances are computed once per (action, other action) pair on every `query_stride`-th
    pose of the first, so all sets cost one pass.
    """
    poses = poses_by_action(data, subjects, stride)
    actions = list(poses)
    nearest = {
        (a, b): nearest_mpjpe(poses[a][::query_stride], poses[b])
        for a in actions
        for b in actions
        if a != b
    }

    def novelty(held: tuple[str, ...]) -> float:
        rest = [b for b in actions if b not in held]
        per_action = [torch.stack([nearest[(a, b)] for b in rest]).amin(0).mean() for a in held]
        return float(torch.stack(per_action).mean()) * 1000.0

    ranked = [(held, novelty(held)) for k in sizes for held in itertools.combinations(actions, k)]
    return sorted(ranked, key=lambda item: -item[1])


def novelty_table(ranked: list[tuple[tuple[str, ...], float]], top: int = 5) -> str:
    """Markdown: every single action, and the `top` sets of each larger size."""
    lines = ["| held-out actions | mean nearest-pose MPJPE to the rest (mm) |", "|---|---:|"]
    sizes = sorted({len(h) for h, _ in ranked})
    for k in sizes:
        rows = [(h, v) for h, v in ranked if len(h) == k]
        for held, value in rows if k == 1 else rows[:top]:
            lines.append(f"| {', '.join(held)} | {value:.1f} |")
    return "\n".join(lines) + "\n"
