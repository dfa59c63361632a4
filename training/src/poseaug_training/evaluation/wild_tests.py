"""Tests of lifting as users meet it: real detections, unseen cameras, missing joints.

Each test is a set of pixel keypoints with the camera that saw them and the 3D truth, so that
every bundle generation is fed exactly as the server would feed it:
- format-1 bundles ("videopose3d_screen") get pixels normalized by the image size; a missing
  joint reaches them as the (0, 0) pixel a detector reports with score 0;
- camera-aware bundles ("camera_rays") get undistorted rays from the true camera ("camera
  given") or from the server's default camera ("no camera"), and visibility flags.

Tests (S9/S11, seeded):
- `h36m_sh` / `h36m_gt`: Human3.6M's 4 cameras with the Stacked Hourglass detections / the
  projected ground truth, every frame (the field's protocol 1 and 2);
- `unseen`: every `unseen_stride`-th frame through one camera each from
  `virtual_cameras.UNSEEN_VIEWS` (fields of view 25-110 deg, elevations to +-70 deg, 2-12 m),
  with the fitted detector error model; run with the camera given and without it;
- `occluded{k}`: the unseen test (camera given) with k random joints missing, k = 1, 2, 4;
- `unseen_actions`: the unseen test (camera given) on the poses of `novelty.NOVEL_ACTIONS`
  only, for lifters trained without those actions (joint angles never seen in training);
- `unseen_bodies`: the unseen test (camera given) on poses re-targeted to other statures and
  proportions, children included (`body_shapes.UNSEEN_BODIES`), joint angles unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from poseaug_training.data.body_shapes import BodyRanges, sample_bodies
from poseaug_training.data.camera import (
    normalize_screen,
    project_to_pixels,
    screen_to_pixels,
    undistort_to_rays,
)
from poseaug_training.data.detector_noise import DetectorErrorModel, person_size
from poseaug_training.data.h36m import H36M, action_of
from poseaug_training.data.occlusion import drop_joints
from poseaug_training.data.pairs import build_pairs
from poseaug_training.data.virtual_cameras import UNSEEN_VIEWS, place_in_view
from poseaug_training.data.wild_pairs import encode_rays
from poseaug_training.evaluation.metrics import mpjpe, pa_mpjpe, per_joint_error
from poseaug_training.poseaug.bone_length_op import apply_bone_length

# The server's default camera for callers who send none (service: lifting). Kept equal to the
# service's constant by tests/training/test_wild_contract.py.
DEFAULT_HFOV_DEG = 60.0
PCK_THRESHOLD_M = 0.150  # 3DPCK: a joint within 150 mm counts as correct
OCCLUDED_COUNTS = (1, 2, 4)


@dataclass
class LiftTest:
    """Pixels as a detector reports them, the camera that saw them, and the 3D truth."""

    pixels: np.ndarray  # [N, 17, 2] float64
    visible: np.ndarray  # [N, 17] bool
    intrinsics: np.ndarray  # [N, 11] true camera (with distortion where it has some)
    target: np.ndarray  # [N, 17, 3] root-relative, camera frame, metres
    action: np.ndarray  # [N]
    actions: list[str]

    def with_missing(self, count: int, seed: int) -> LiftTest:
        gen = torch.Generator().manual_seed(seed)
        vis = drop_joints(len(self.pixels), count, gen).numpy()
        return LiftTest(self.pixels, vis, self.intrinsics, self.target, self.action, self.actions)


def h36m_test(data: H36M, subjects: list[str], source: str, stride: int = 1) -> LiftTest:
    """Human3.6M's cameras with projected ground truth ("gt") or SH detections ("sh")."""
    pairs = build_pairs(data, subjects, stride=stride, source="gt")
    pix = project_to_pixels(
        (pairs.pose3d + pairs.root[:, None]).double(), pairs.intrinsics.double()
    )
    pixels = pix.numpy()
    if source == "sh":
        # build_pairs("sh") keeps the frames that have detections, in the same order.
        det = build_pairs(data, subjects, stride=stride, source="sh")
        # Back from screen normalization to the detector's pixels.
        pixels = screen_to_pixels(det.kp2d.double(), det.intrinsics.double()).numpy()
        pairs = det
    n = len(pairs)
    return LiftTest(
        pixels=pixels,
        visible=np.ones((n, 17), bool),
        intrinsics=pairs.intrinsics.numpy().astype(np.float64),
        target=pairs.pose3d.numpy(),
        action=pairs.action.numpy(),
        actions=pairs.actions,
    )


def unseen_test(
    data: H36M,
    subjects: list[str],
    error_model: DetectorErrorModel,
    stride: int,
    seed: int = 0,
    actions: tuple[str, ...] | None = None,
    bodies: BodyRanges | None = None,
) -> LiftTest:
    """S9/S11 poses through unseen virtual cameras with the detector error model (seeded);
    only the poses of `actions` when given (the unseen-poses test), re-targeted to bodies drawn
    from `bodies` when given (the unseen-bodies test)."""
    gen = torch.Generator().manual_seed(seed)
    worlds, actions_idx = [], []
    sequences = [
        (s, q) for s, q in data.sequences(subjects) if actions is None or action_of(q) in actions
    ]
    names = sorted({action_of(seq) for _, seq in sequences})
    for subject, seq in sequences:
        w = data.poses_world[(subject, seq)][::stride]
        worlds.append(w - w[:, :1])
        actions_idx.append(np.full(len(w), names.index(action_of(seq))))
    world = torch.from_numpy(np.concatenate(worlds))
    if bodies is not None:
        body_gen = torch.Generator().manual_seed(seed + 1)
        world = apply_bone_length(world, sample_bodies(len(world), bodies, body_gen))
    views = place_in_view(world, UNSEEN_VIEWS, gen)
    points = (views.pose3d + views.root[:, None]).double()
    pix = project_to_pixels(points, views.intrinsics.double())
    noisy = error_model.apply(pix, person_size(pix), gen)
    return LiftTest(
        pixels=noisy.numpy(),
        visible=np.ones((len(world), 17), bool),
        intrinsics=views.intrinsics.numpy().astype(np.float64),
        target=views.pose3d.numpy(),
        action=np.concatenate(actions_idx),
        actions=names,
    )


def default_intrinsics(intrinsics: np.ndarray) -> np.ndarray:
    """The server's default camera for the same image sizes: DEFAULT_HFOV_DEG across the width,
    centred principal point, no distortion."""
    w, h = intrinsics[:, 9], intrinsics[:, 10]
    f = w / 2 / math.tan(math.radians(DEFAULT_HFOV_DEG) / 2)
    out = np.zeros_like(intrinsics)
    out[:, 0], out[:, 1], out[:, 2], out[:, 3], out[:, 9], out[:, 10] = f, f, w / 2, h / 2, w, h
    return out


def model_inputs(test: LiftTest, normalization: str, camera: str = "given") -> np.ndarray:
    """What the server would feed a bundle of this `normalization` (see module docstring)."""
    if normalization == "videopose3d_screen":
        pix = torch.from_numpy(np.where(test.visible[..., None], test.pixels, 0.0))
        return normalize_screen(pix, torch.from_numpy(test.intrinsics)).float().numpy()
    if normalization != "camera_rays":
        raise ValueError(f"unknown lifter normalization {normalization!r}")
    intr = test.intrinsics if camera == "given" else default_intrinsics(test.intrinsics)
    rays = torch.from_numpy(undistort_to_rays(test.pixels, intr))
    return encode_rays(rays, torch.from_numpy(test.visible)).numpy()


def score(pred: np.ndarray, test: LiftTest) -> dict:
    """Protocol 1 and 2 (per action, then over actions), 3DPCK@150 mm, error percentiles."""
    p, t = torch.from_numpy(pred).float(), torch.from_numpy(test.target).float()
    p1, p2 = mpjpe(p, t), pa_mpjpe(p, t)
    joint = (p - t).norm(dim=-1)
    per_action = {}
    for a, name in enumerate(test.actions):
        mask = torch.from_numpy(test.action == a)
        if mask.any():
            per_action[name] = {
                "mpjpe": float(p1[mask].mean() * 1000),
                "pa_mpjpe": float(p2[mask].mean() * 1000),
            }
    pose_mm = p1.numpy() * 1000
    extra = {}
    hfov = np.degrees(2 * np.arctan(test.intrinsics[:, 9] / 2 / test.intrinsics[:, 0]))
    if np.ptp(hfov) > 5:  # cameras that differ: the error by field of view
        edges = np.arange(20, 111, 10)
        which = np.digitize(hfov, edges)
        extra["mpjpe_mm_by_hfov"] = {
            f"{edges[b - 1]}-{edges[b]}": float(pose_mm[which == b].mean())
            for b in range(1, len(edges))
            if (which == b).any()
        }
    return {
        **extra,
        "mpjpe_mm": sum(v["mpjpe"] for v in per_action.values()) / len(per_action),
        "pa_mpjpe_mm": sum(v["pa_mpjpe"] for v in per_action.values()) / len(per_action),
        "pck150": float((joint < PCK_THRESHOLD_M).float().mean()),
        "p50_mm": float(np.percentile(pose_mm, 50)),
        "p90_mm": float(np.percentile(pose_mm, 90)),
        "p99_mm": float(np.percentile(pose_mm, 99)),
        "per_action": per_action,
        "per_joint_mm": (per_joint_error(p, t).mean(0) * 1000).tolist(),
        "poses": len(pred),
    }


Lifter = Callable[[np.ndarray], np.ndarray]


def run_tests(
    lifter: Lifter, normalization: str, tests: dict[str, LiftTest], seed: int = 0
) -> dict[str, dict]:
    """Every test for one lifter; results keyed like the manifest's metrics sources."""
    results: dict[str, dict] = {}
    rays = normalization == "camera_rays"
    for name, test in tests.items():
        if name == "unseen":
            results["unseen_camera"] = score(lifter(model_inputs(test, normalization)), test)
            if rays:
                inputs = model_inputs(test, normalization, camera="default")
                results["unseen_no_camera"] = score(lifter(inputs), test)
            for k in OCCLUDED_COUNTS:
                occluded = test.with_missing(k, seed + k)
                results[f"occluded{k}"] = score(lifter(model_inputs(occluded, normalization)), test)
        else:  # h36m_sh, h36m_gt, and the novelty tests (camera given)
            results[name.removeprefix("h36m_")] = score(
                lifter(model_inputs(test, normalization)), test
            )
    return results


def torch_lifter(model: torch.nn.Module, batch_size: int = 8192) -> Lifter:
    def run(x: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            outs = [
                model(torch.from_numpy(x[i : i + batch_size])).numpy()
                for i in range(0, len(x), batch_size)
            ]
        return np.concatenate(outs)

    return run


def bundle_lifter(
    bundle: Path, batch_size: int = 8192, form: str | None = None
) -> tuple[Lifter, str]:
    """A bundle's lifter.onnx on ONNX Runtime (CPU), and its declared normalization; with
    `form` ("whole_track"), that form of a temporal lifter instead (run one input at a time)."""
    import onnxruntime as ort

    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    lifter = manifest["lifter"]
    graph = lifter if form is None else lifter[form]
    sess = ort.InferenceSession(
        str(Path(bundle) / graph["file"]), providers=["CPUExecutionProvider"]
    )

    def run(x: np.ndarray) -> np.ndarray:
        outs = [
            sess.run([graph["output"]], {graph["input"]: x[i : i + batch_size]})[0]
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(outs)

    return run, lifter["normalization"]
