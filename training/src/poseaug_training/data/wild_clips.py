"""Training clips for the temporal lifter: the wild recipe applied to windows of a track.

A clip is a window of `receptive_field` consecutive frames (50 fps) of one sequence, seen by
one camera, around an anchor frame whose 3D is the target. Everything that varies per frame
in the single-frame recipe (`wild_pairs`) is drawn per clip here, so a clip stays a plausible
video of one person:
- one camera per clip: the anchor frame is placed in a fresh virtual camera (or kept in its
  Human3.6M camera, or given its real Stacked Hourglass detections); the other frames move
  through that fixed camera along the person's own world trajectory;
- detector error is drawn per clip as it persists over time in real detections (the fitted
  `DetectorErrorModel.apply_track`: a detector repeats its mistakes on similar frames);
- occlusion is drawn per clip and lasts a random span of frames, with short per-frame
  dropouts on top; the image border takes what leaves the frame;
- frames before the sequence start or after its end repeat the edge frame (VideoPose3D's edge
  padding), and a share of windows has its future cut at a random lookahead the same way, which
  is what a stream answering with less lookahead sends the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from poseaug_training.data.camera import project_to_pixels
from poseaug_training.data.detector_noise import DetectorErrorModel
from poseaug_training.data.h36m import H36M
from poseaug_training.data.occlusion import MIN_VISIBLE, inside_frame, random_visibility
from poseaug_training.data.pairs import PoseSet
from poseaug_training.data.virtual_cameras import place_in_view
from poseaug_training.data.wild_pairs import (
    WildMix,
    WildSource,
    assumed_camera,
    build_wild_source,
    detected_rays,
    encode_rays,
    focal_ratios,
)

# Per-frame detector dropouts on top of the clip's occlusion (share of frames, 1-5 joints).
FLICKER = 0.05
# How a clip's detector error varies over its frames: "track" persists as the real detections'
# error does; "independent" draws it afresh each frame (how the first temporal bundles trained).
CLIP_DETECTOR_ERROR = ("track", "independent")


def window_rows(
    rows: torch.Tensor,
    first: torch.Tensor,
    last: torch.Tensor,
    receptive_field: int,
    anchor_frame: int,
) -> torch.Tensor:
    """[N, R] row indices of the windows anchored at `rows` [N]; rows outside [first, last]
    (the row's sequence) are clamped to its edge frames."""
    offsets = torch.arange(receptive_field, device=rows.device) - anchor_frame
    return torch.minimum(torch.maximum(rows[:, None] + offsets, first[:, None]), last[:, None])


def cut_future(kp: torch.Tensor, anchor_frame: int, lookahead: torch.Tensor) -> torch.Tensor:
    """Windows [N, R, ...] with every frame after anchor + `lookahead` [N] replaced by that
    frame: what a stream with that lookahead feeds the model."""
    r = kp.shape[1]
    newest = (anchor_frame + lookahead).clamp_max(r - 1)
    frame = torch.minimum(torch.arange(r, device=kp.device)[None], newest[:, None])
    index = frame.reshape(*frame.shape, *([1] * (kp.dim() - 2))).expand_as(kp)
    return kp.gather(1, index)


@dataclass
class ClipSource:
    """Every frame of the training sequences x 4 cameras (`frames`, ordered by sequence, camera,
    frame), the bounds of each row's sequence, and the anchor rows clips are drawn around."""

    frames: WildSource
    world_root: torch.Tensor  # [M, 3] the root's world position (the trajectory)
    first: torch.Tensor  # [M] first row of the row's (sequence, camera) block
    last: torch.Tensor  # [M] last row of that block
    anchors: torch.Tensor  # [A] rows that clips are centred on (every stride-th frame)

    def __len__(self) -> int:
        return len(self.anchors)

    def to(self, device: torch.device | str) -> ClipSource:
        return ClipSource(
            self.frames.to(device),
            self.world_root.to(device),
            self.first.to(device),
            self.last.to(device),
            self.anchors.to(device),
        )

    def select(self, index: torch.Tensor) -> ClipRows:
        return ClipRows(self, self.anchors[index])


@dataclass
class ClipRows:
    """A batch of anchors, still to be gathered into windows by a ClipBatcher."""

    source: ClipSource
    rows: torch.Tensor  # [B]

    def __len__(self) -> int:
        return len(self.rows)


def build_clip_source(data: H36M, subjects: list[str], stride: int = 1) -> ClipSource:
    """All frames of `subjects` x 4 cameras; anchors every `stride`-th frame."""
    frames = build_wild_source(data, subjects, stride=1)
    roots, first, last, anchors = [], [], [], []
    start = 0
    for subject, seq in data.sequences(subjects):
        world = data.poses_world[(subject, seq)]
        for _ in data.cameras[subject]:
            n = len(world)
            roots.append(world[:, 0])
            first.append(np.full(n, start))
            last.append(np.full(n, start + n - 1))
            anchors.append(np.arange(start, start + n, stride))
            start += n
    if start != len(frames):
        raise AssertionError("clip bounds disagree with the wild rows")

    def cat(parts: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(parts))

    return ClipSource(
        frames, cat(roots).float(), cat(first).long(), cat(last).long(), cat(anchors).long()
    )


@dataclass
class ClipBatch(PoseSet):
    """A PoseSet whose kp2d are windows [B, R, 17, 3] and whose pose3d / root are the anchor
    frame's; the clip's 3D rides along for PoseAug, which augments whole clips."""

    clip_pose: torch.Tensor  # [B, R, 17, 3] root-relative, camera frame
    clip_root: torch.Tensor  # [B, R, 3] roots, camera frame


class ClipBatcher:
    """Anchors -> a ClipBatch of fresh clips (see module docstring). Randomness comes from
    torch's global generator, which the checkpoints save."""

    def __init__(
        self,
        error_model: DetectorErrorModel,
        receptive_field: int,
        anchor_frame: int,
        future_cut: float = 0.3,
        mix: WildMix | None = None,
        detector_error: str = "track",
    ) -> None:
        if detector_error not in CLIP_DETECTOR_ERROR:
            choices = ", ".join(CLIP_DETECTOR_ERROR)
            raise ValueError(f"detector_error {detector_error!r}: choose from {choices}")
        self.detector_error = detector_error
        self.error_model = error_model
        self.receptive_field = receptive_field
        self.anchor_frame = anchor_frame
        self.future_cut = future_cut
        self.mix = mix or WildMix()

    def observe(self, points: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
        """What a detector reports of clips of camera-frame points [B, R, 17, 3] (absolute)
        through pinhole `intrinsics` [B, 11]: lifter input windows [B, R, 17, 3]."""
        b, r, j, _ = points.shape
        dev = points.device
        flat = points.reshape(b * r, j, 3)
        intr = intrinsics.repeat_interleave(r, 0)
        noisy = torch.rand(b, device=dev) < self.mix.detector_error
        if self.detector_error == "track":
            seen = detected_rays(self.error_model, points, noisy).reshape(b * r, j, 2)
        else:
            seen = detected_rays(self.error_model, flat, noisy.repeat_interleave(r))
        # The clip's occlusion lasts a random span of frames.
        clip_vis = random_visibility(b, p_occluded=self.mix.occluded).to(dev)
        start = torch.randint(0, r, (b, 1), device=dev)
        length = torch.randint(1, r + 1, (b, 1), device=dev)
        t = torch.arange(r, device=dev)[None]
        during = (t >= start) & (t < start + length)
        everyone = torch.ones_like(clip_vis[:, None])
        visible = torch.where(during[..., None], clip_vis[:, None], everyone)
        visible = visible.reshape(b * r, j)
        visible &= random_visibility(b * r, p_occluded=FLICKER, p_limb=0.0, p_side=0.0).to(dev)
        visible &= inside_frame(project_to_pixels(flat.detach(), intr), intr)
        visible[visible.sum(1) < MIN_VISIBLE] = True
        return encode_rays(seen, visible).reshape(b, r, j, 3)

    def __call__(self, batch: ClipRows) -> ClipBatch:
        src, mix, a = batch.source, self.mix, self.anchor_frame
        fr = src.frames
        rows = batch.rows
        win = window_rows(rows, src.first[rows], src.last[rows], self.receptive_field, a)
        b, dev = len(rows), rows.device
        u = torch.rand(b, device=dev)
        has_det = fr.has_det[rows]
        det = has_det & (u < mix.real_detections)
        h36m = (u >= mix.real_detections) & (u < mix.real_detections + mix.h36m_cameras)
        virtual = ~det & ~h36m
        # A fixed virtual camera, placed for the anchor frame; the clip moves through it.
        world = fr.world[win]  # [B, R, 17, 3] root-relative
        moved = src.world_root[win] - src.world_root[rows][:, None]  # [B, R, 3]
        views = place_in_view(world[:, a].cpu(), mix.views)
        rot = views.rotation.to(dev)
        v_points = (
            torch.einsum("bij,brkj->brki", rot, world + moved[:, :, None])
            + views.root.to(dev)[:, None, None]
        )
        h_points = fr.cam_pose[win] + fr.cam_root[win][:, :, None]
        keep = (det | h36m)[:, None, None, None]
        points = torch.where(keep, h_points, v_points)
        intr = torch.where((det | h36m)[:, None], fr.cam_intrinsics[rows], views.intrinsics.to(dev))
        kp = self.observe(points, intr)
        real = encode_rays(fr.det_rays[win], kp[..., 2] > 0)
        kp = torch.where(det[:, None, None, None], real, kp)
        wrong = virtual & (torch.rand(b, device=dev) < mix.wrong_camera)
        ratio = focal_ratios(b, mix, dev).repeat_interleave(self.receptive_field)
        flat = kp.reshape(-1, *kp.shape[2:])
        reenc = assumed_camera(flat, intr.repeat_interleave(self.receptive_field, 0), ratio)
        kp = torch.where(wrong[:, None, None, None], reenc.reshape(kp.shape), kp)
        lookahead = self.receptive_field - 1 - a
        if lookahead > 0 and self.future_cut > 0:
            cut = torch.rand(b, device=dev) < self.future_cut
            ahead = torch.randint(0, lookahead + 1, (b,), device=dev)
            kp = torch.where(cut[:, None, None, None], cut_future(kp, a, ahead), kp)
        clip_root = points[:, :, 0]
        clip_pose = points - clip_root[:, :, None]
        return ClipBatch(
            clip_pose[:, a],
            clip_root[:, a],
            kp,
            intr,
            fr.action[rows],
            fr.subject[rows],
            fr.actions,
            fr.subjects,
            clip_pose,
            clip_root,
        )
