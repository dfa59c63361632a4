"""Export a temporal lifter's step and whole-track forms (models/temporal_forms.py) beside its
window model, and check both against it.

Each file holds the same weights as lifter.onnx (stored as float16 where the window model's
are). The check runs both forms under ONNX Runtime over edge-padded tracks and compares them
with the torch window model on every window of those tracks: they must agree to
`FORMS_TOLERANCE` (metres), tighter than the window model's own ONNX parity, because the
service swaps one for the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from poseaug_training.export.lifter_onnx import export_module, parity_poses, store_weights_fp16
from poseaug_training.models.temporal_forms import StepLifter, WholeTrackLifter
from poseaug_training.models.temporal_ray_lifter import TemporalRayLifter

STEP_FILE = "lifter_step.onnx"
WHOLE_TRACK_FILE = "lifter_track.onnx"
# The forms must give the window model's poses this closely (metres) on the parity tracks.
FORMS_TOLERANCE = 1e-5

StepFn = Any  # (keypoints [N, 17, 3], fresh [N, 1], *past) -> (pose3d, *next), numpy arrays


def step_through(step: StepFn, state: list[dict[str, Any]], frames: np.ndarray, lookahead: int):
    """One track's frames [T, 17, 3] fed to a step form one at a time, each state input kept
    in full and read at its taps (before the track's first step: that first value), the end
    edge-padded by `lookahead` frames; returns the poses [T, 17, 3] of frames 0 .. T - 1."""
    kept: list[list[np.ndarray]] = [[] for _ in state]
    poses = []
    for t in range(len(frames) + lookahead):
        frame = frames[min(t, len(frames) - 1)][None]
        past = [
            np.stack(
                [
                    kept[k][max(t - d, 0)] if t else np.zeros(s["channels"], np.float32)
                    for d in s["taps"]
                ]
            )
            for k, s in enumerate(state)
        ]
        out = step(frame, np.array([[float(t == 0)]], np.float32), *(p[None] for p in past))
        for k in range(len(state)):
            kept[k].append(out[1 + k][0])
        poses.append(out[0][0])
    return np.stack(poses[lookahead:]).astype(np.float32)


def edge_padded(frames: np.ndarray, before: int, after: int) -> np.ndarray:
    """A track's frames with its first repeated `before` times and its last `after` times."""
    index = np.clip(np.arange(-before, len(frames) + after), 0, len(frames) - 1)
    return frames[index]


def window_poses(model: TemporalRayLifter, frames: np.ndarray) -> np.ndarray:
    """The torch window model's pose of every frame of one track (edge-padded windows)."""
    r, a = model.receptive_field, model.anchor_frame
    padded = edge_padded(frames, a, model.lookahead)
    windows = np.stack([padded[i : i + r] for i in range(len(frames))])
    with torch.no_grad():
        return model.eval()(torch.from_numpy(windows)).numpy()


def parity_tracks(channels: int = 3, seed: int = 1) -> list[np.ndarray]:
    """Tracks of 1, 7 and 150 frames of plausible poses (no dataset needed)."""
    poses = parity_poses(n=158, seed=seed, channels=channels)
    return [poses[:1], poses[1:8], poses[8:]]


def export_temporal_forms(
    model: TemporalRayLifter, out_dir: Path, weights_fp16: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """Write STEP_FILE and WHOLE_TRACK_FILE into `out_dir` from `model` (its weights already
    rounded to float16 values when `weights_fp16`); returns their manifest entries
    ({"step": ..., "whole_track": ...} for `lifter`) and their largest difference from the
    window model on the parity tracks. Raises RuntimeError beyond FORMS_TOLERANCE."""
    model = model.eval().cpu()
    j, c = model.num_joints, model.input_channels
    step = StepLifter(model)
    state = [
        {
            "name": s.name,
            "input": f"past_{s.name}",
            "output": f"next_{s.name}",
            "channels": s.channels,
            "taps": list(s.taps),
        }
        for s in step.state
    ]
    inputs = {"keypoints": torch.zeros(2, j, c), "fresh": torch.zeros(2, 1)}
    inputs.update({s["input"]: torch.zeros(2, len(s["taps"]), s["channels"]) for s in state})
    inputs["keypoints"][..., 2:] = 1.0
    export_module(step, inputs, out_dir / STEP_FILE, ["pose3d"] + [s["output"] for s in state])
    whole = torch.zeros(2, model.receptive_field + 3, j, c)
    whole[..., 2:] = 1.0
    export_module(
        WholeTrackLifter(model),
        {"keypoints": whole},
        out_dir / WHOLE_TRACK_FILE,
        ["pose3d"],
        {"keypoints": {1: "T"}, "pose3d": {1: "T_out"}},
    )
    for name in (STEP_FILE, WHOLE_TRACK_FILE):
        if weights_fp16:
            store_weights_fp16(out_dir / name)
    parity = forms_parity(model, out_dir, state)
    worst = max(parity.values())
    if worst > FORMS_TOLERANCE:
        raise RuntimeError(
            f"the step or whole-track form differs from the window model by {worst:g} m "
            f"(> {FORMS_TOLERANCE:g}): {parity}"
        )
    entries = {
        "step": {
            "file": STEP_FILE,
            "input": "keypoints",
            "fresh": "fresh",
            "output": "pose3d",
            "state": state,
        },
        "whole_track": {"file": WHOLE_TRACK_FILE, "input": "keypoints", "output": "pose3d"},
    }
    return entries, parity


def forms_parity(
    model: TemporalRayLifter, out_dir: Path, state: list[dict[str, Any]]
) -> dict[str, float]:
    """Max abs difference (m) of each exported form (ONNX Runtime, CPU) from the torch window
    model over the parity tracks."""
    import onnxruntime as ort

    def session(name: str) -> ort.InferenceSession:
        return ort.InferenceSession(str(out_dir / name), providers=["CPUExecutionProvider"])

    step_session, whole_session = session(STEP_FILE), session(WHOLE_TRACK_FILE)
    names = ["keypoints", "fresh"] + [s["input"] for s in state]

    def step(*arrays: np.ndarray) -> list[np.ndarray]:
        feed = {n: a.astype(np.float32) for n, a in zip(names, arrays, strict=True)}
        return step_session.run(None, feed)

    diff = {"step": 0.0, "whole_track": 0.0}
    for frames in parity_tracks(model.input_channels):
        ref = window_poses(model, frames)
        stepped = step_through(step, state, frames, model.lookahead)
        padded = edge_padded(frames, model.anchor_frame, model.lookahead)
        (whole,) = whole_session.run(None, {"keypoints": padded[None]})
        diff["step"] = max(diff["step"], float(np.abs(stepped - ref).max()))
        diff["whole_track"] = max(diff["whole_track"], float(np.abs(whole[0] - ref).max()))
    return diff
