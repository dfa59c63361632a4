"""Training pairs for lifting real footage: fresh cameras, detector error and missing joints.

`WildSource` keeps one row per (subject, sequence, Human3.6M camera, frame) resident as
tensors; `WildBatcher` turns a batch of rows into lifter inputs every step, so no two epochs
see the same 2D:
- a share of rows keeps its real Stacked Hourglass detections (real detector error, through
  the real Human3.6M camera, undistorted to rays);
- a share keeps its Human3.6M camera with ground-truth 2D;
- the rest are seen through a new virtual camera (`virtual_cameras.TRAIN_VIEWS`);
- synthetic 2D get the fitted detector error (`detector_noise`), random missing joints and the
  image border's truncation (`occlusion`); some are encoded with a wrong focal length and
  principal point, as the server's default camera gives them when a caller sends none.
The lifter input is [N, 17, 3]: rays (x, y) and visibility, x = y = 0 where missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from poseaug_training.data.camera import (
    INTRINSICS_DIM,
    points_to_rays,
    project_to_pixels,
    undistort_to_rays,
)
from poseaug_training.data.detector_noise import DetectorErrorModel
from poseaug_training.data.h36m import H36M, action_of
from poseaug_training.data.occlusion import MIN_VISIBLE, inside_frame, random_visibility
from poseaug_training.data.pairs import PoseSet, TensorRows
from poseaug_training.data.virtual_cameras import TRAIN_VIEWS, ViewRanges, place_in_view


def encode_rays(rays: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Rays [N, 17, 2] and visibility [N, 17] -> the lifter input [N, 17, 3]."""
    vis = visible.to(rays.dtype)[..., None]
    return torch.cat([rays * vis, vis], -1)


def detected_rays(
    error_model: DetectorErrorModel, points: torch.Tensor, noisy: torch.Tensor
) -> torch.Tensor:
    """Rays [N, 17, 2] of camera-frame points [N, 17, 3] with the detector's error on the
    `noisy` rows [N] bool, or rays [N, R, 17, 2] of clips [N, R, 17, 3] of consecutive frames
    whose error persists over time as a detector's does; gradients pass straight through the
    error (PoseAug trains the augmentor through these rays)."""
    rays = points_to_rays(points)
    clean = rays.detach()
    apply = error_model.apply if points.dim() == 3 else error_model.apply_track
    return rays + (apply(clean, strength=noisy.to(rays.dtype)) - clean)


def pinhole(intrinsics: torch.Tensor) -> torch.Tensor:
    """The same intrinsics without distortion (rays are undistorted by definition)."""
    out = intrinsics.clone()
    out[:, 4:9] = 0
    return out


@dataclass
class WildSource(TensorRows):
    """Rows of the wild recipe (see module docstring)."""

    world: torch.Tensor  # [M, 17, 3] root-relative, world orientation (z up)
    cam_pose: torch.Tensor  # [M, 17, 3] root-relative, in the row's Human3.6M camera
    cam_root: torch.Tensor  # [M, 3]
    cam_intrinsics: torch.Tensor  # [M, 11] that camera, pinhole (distortion removed)
    cam_rotation: torch.Tensor  # [M, 3, 3] that camera's world -> camera rotation
    det_rays: torch.Tensor  # [M, 17, 2] Stacked Hourglass detections as rays (0 when none)
    has_det: torch.Tensor  # [M] bool
    action: torch.Tensor  # [M]
    subject: torch.Tensor  # [M]
    actions: list[str]
    subjects: list[str]


def build_wild_source(data: H36M, subjects: list[str], stride: int = 1) -> WildSource:
    """Rows for `subjects` x 4 cameras, every `stride`-th frame; detections where they exist."""
    sequences = data.sequences(subjects)
    actions = sorted({action_of(seq) for _, seq in sequences})
    subj_names = sorted({s for s, _ in sequences})
    parts: dict[str, list[np.ndarray]] = {
        f: [] for f in ("w", "p", "r", "i", "R", "d", "h", "a", "s")
    }
    for subject, seq in sequences:
        world = data.poses_world[(subject, seq)][::stride]
        for cam in data.cameras[subject]:
            cam3d = cam.world_to_camera(world)
            intr = np.broadcast_to(cam.intrinsics(), (len(world), INTRINSICS_DIM))
            det = data.detections.get((subject, seq, cam.camera_id))
            rays = np.zeros((len(world), 17, 2), np.float32)
            has = np.zeros(len(world), bool)
            if det is not None:
                det = det[::stride][: len(world)]
                rays[: len(det)] = undistort_to_rays(det, intr[: len(det)])
                has[: len(det)] = True
            parts["w"].append(world - world[:, :1])
            parts["p"].append(cam3d - cam3d[:, :1])
            parts["r"].append(cam3d[:, 0])
            parts["i"].append(intr)
            parts["R"].append(np.broadcast_to(cam.R, (len(world), 3, 3)))
            parts["d"].append(rays)
            parts["h"].append(has)
            parts["a"].append(np.full(len(world), actions.index(action_of(seq))))
            parts["s"].append(np.full(len(world), subj_names.index(subject)))

    def cat(k: str) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(parts[k]))

    return WildSource(
        world=cat("w").float(),
        cam_pose=cat("p").float(),
        cam_root=cat("r").float(),
        cam_intrinsics=pinhole(cat("i").float()),
        cam_rotation=cat("R").float(),
        det_rays=cat("d"),
        has_det=cat("h"),
        action=cat("a").long(),
        subject=cat("s").long(),
        actions=actions,
        subjects=subj_names,
    )


@dataclass(frozen=True)
class WildMix:
    """Shares of a wild batch (see module docstring)."""

    real_detections: float = 0.2  # rows with SH detections that keep them
    h36m_cameras: float = 0.15  # rows that keep their Human3.6M camera with clean-projected 2D
    detector_error: float = 0.8  # synthetic 2D that get the fitted detector error
    occluded: float = 0.5  # poses that lose joints (besides those outside the frame)
    wrong_camera: float = 0.15  # virtual rows encoded with a wrong focal / principal point
    focal_error: tuple[float, float] = (0.6, 1.7)  # true / assumed focal length
    views: ViewRanges = TRAIN_VIEWS


@dataclass
class WildPoseSet(PoseSet):
    """A wild batch: pairs plus each row's camera orientation, so that PoseAug can work in a
    level frame (gravity mode) and turn its output into the row's camera."""

    world_to_camera: torch.Tensor  # [N, 3, 3]


class WildBatcher:
    """Rows -> a PoseSet whose kp2d are lifter inputs [B, 17, 3] (fresh randomness each call,
    drawn from torch's global generator, which the checkpoints save)."""

    def __init__(self, error_model: DetectorErrorModel, mix: WildMix | None = None) -> None:
        self.error_model = error_model
        self.mix = mix or WildMix()

    def observe(
        self, points: torch.Tensor, intrinsics: torch.Tensor, noisy: torch.Tensor | None = None
    ) -> torch.Tensor:
        """What a detector reports of camera-frame points [B, 17, 3] (absolute) seen through
        pinhole `intrinsics`: rays with detector error on `noisy` rows (default: the mix's
        share), random missing joints and truncation by the frame, as lifter input."""
        n = len(points)
        if noisy is None:
            noisy = torch.rand(n, device=points.device) < self.mix.detector_error
        seen = detected_rays(self.error_model, points, noisy)
        visible = random_visibility(n, p_occluded=self.mix.occluded).to(points.device)
        visible &= inside_frame(project_to_pixels(points.detach(), intrinsics), intrinsics)
        few = visible.sum(1) < MIN_VISIBLE
        visible[few] = True
        return encode_rays(seen, visible)

    def __call__(self, rows: WildSource) -> WildPoseSet:
        n, dev, mix = len(rows), rows.world.device, self.mix
        u = torch.rand(n, device=dev)
        det = rows.has_det & (u < mix.real_detections)
        h36m = (u >= mix.real_detections) & (u < mix.real_detections + mix.h36m_cameras)
        virtual = ~det & ~h36m
        views = place_in_view(rows.world.cpu(), mix.views)
        keep = (det | h36m)[:, None].cpu()
        pose = torch.where(keep[..., None], rows.cam_pose.cpu(), views.pose3d).to(dev)
        root = torch.where(keep, rows.cam_root.cpu(), views.root).to(dev)
        intr = torch.where(keep, rows.cam_intrinsics.cpu(), views.intrinsics).to(dev)
        turn = torch.where(keep[..., None], rows.cam_rotation.cpu(), views.rotation).to(dev)
        kp = self.observe(pose + root[:, None], intr)
        real = encode_rays(rows.det_rays, kp[..., 2] > 0)  # same missing joints as drawn
        kp = torch.where(det[:, None, None], real, kp)
        wrong = virtual & (torch.rand(n, device=dev) < mix.wrong_camera)
        kp = torch.where(wrong[:, None, None], self._wrong_camera(kp, intr), kp)
        return WildPoseSet(
            pose, root, kp, intr, rows.action, rows.subject, rows.actions, rows.subjects, turn
        )

    def _wrong_camera(self, kp: torch.Tensor, intr: torch.Tensor) -> torch.Tensor:
        return assumed_camera(kp, intr, focal_ratios(len(kp), self.mix, kp.device))


def focal_ratios(n: int, mix: WildMix, device: torch.device) -> torch.Tensor:
    """[N] true / assumed focal length, log-uniform in `mix.focal_error`."""
    lo, hi = (math.log(v) for v in mix.focal_error)
    return torch.exp(torch.rand(n, device=device) * (hi - lo) + lo)


def assumed_camera(kp: torch.Tensor, intr: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """The same detections [N, 17, 3] encoded with an assumed camera: focal length true / `ratio`
    [N] and a centred principal point, as with the server's default camera."""
    assumed_f = intr[:, 0:2] / ratio[:, None]
    shift = (intr[:, 2:4] - intr[:, 9:11] / 2) / assumed_f  # (c_true - c_assumed) / f_a
    rays = kp[..., :2] * ratio[:, None, None] + shift[:, None]
    return encode_rays(rays, kp[..., 2] > 0)


def ray_pairs(pairs: PoseSet) -> PoseSet:
    """The same pairs with lifter inputs of ideal rays of their ground truth, every joint seen
    (projected ground truth, undistorted: what the server makes of it given the camera)."""
    rays = points_to_rays(pairs.pose3d + pairs.root[:, None])
    kp = encode_rays(rays, torch.ones_like(rays[..., 0], dtype=torch.bool))
    return PoseSet(
        pairs.pose3d,
        pairs.root,
        kp,
        pinhole(pairs.intrinsics),
        pairs.action,
        pairs.subject,
        pairs.actions,
        pairs.subjects,
    )
