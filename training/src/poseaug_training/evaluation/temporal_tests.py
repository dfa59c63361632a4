"""The wild tests run as sequences: temporal lifters against single-frame ones on the same frames.

A `SequenceTest` is a `LiftTest` whose rows are tracks: consecutive rows with the same track id
are consecutive frames (50 fps) of one person seen by one camera. Every lifter gets the same
per-frame inputs (`wild_tests.model_inputs`); a temporal lifter gathers its windows from them,
the frames before a track's start and after its end repeating the edge frame, as the server
does for a request with track ids. `lookahead` < the model's own gives the windows a stream
with that lookahead sees (future frames repeat the newest one it has).

Tests (S9/S11, seeded):
- `h36m_sh` / `h36m_gt`: every frame of every sequence and camera, each a track;
- `unseen`: chunks of `CHUNK` frames, one every `CHUNK_EVERY` frames of each sequence, each
  seen by one camera from `virtual_cameras.UNSEEN_VIEWS` that stays put while the person
  moves (joints that leave the image are missing), with detector error that persists over
  time as the real detections' does (`DetectorErrorModel.apply_track`; independent per-frame
  error would flatter a temporal lifter, which averages it away); with the camera given and
  without it;
- `occluded{k}`: that test with k random joints missing in every frame, drawn per frame
  (a detector's dropouts), and `occluded{k}_persistent`: the same k joints missing through the
  whole chunk (an occluder that stays; nothing for a temporal model to borrow).
Beside the field's metrics: acceleration error (mean over joints and frames of the norm of the
second difference of the error, mm / frame^2) and MPJVE (of the first difference, mm / frame).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from poseaug_training.data.camera import project_to_pixels
from poseaug_training.data.detector_noise import DetectorErrorModel
from poseaug_training.data.h36m import H36M, action_of
from poseaug_training.data.occlusion import drop_joints
from poseaug_training.data.virtual_cameras import UNSEEN_VIEWS, place_in_view
from poseaug_training.data.wild_clips import cut_future, window_rows
from poseaug_training.evaluation.wild_tests import (
    OCCLUDED_COUNTS,
    LiftTest,
    h36m_test,
    model_inputs,
    score,
)

CHUNK = 100  # frames per unseen-camera chunk (2 s)
CHUNK_EVERY = 500  # one chunk every 10 s of each sequence


@dataclass
class SequenceTest:
    test: LiftTest
    track: np.ndarray  # [N] int64, consecutive rows of a track are consecutive frames


def track_bounds(track: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N] first and last row of each row's track (tracks are contiguous runs)."""
    n = len(track)
    new_track = np.r_[True, track[1:] != track[:-1]]
    starts = np.flatnonzero(new_track)
    ends = np.r_[starts[1:], n] - 1
    which = np.cumsum(new_track) - 1
    return starts[which], ends[which]


def h36m_sequences(data: H36M, subjects: list[str], source: str) -> SequenceTest:
    """`wild_tests.h36m_test` at every frame, each (sequence, camera) a track. build_pairs
    orders rows by sequence, then camera, then frame; a sequence's camera without detections
    is skipped, so the track ids follow the same loop."""
    test = h36m_test(data, subjects, source, stride=1)
    tracks = []
    for subject, seq in data.sequences(subjects):
        world = data.poses_world[(subject, seq)]
        for cam in data.cameras[subject]:
            n = len(world)
            if source == "sh":
                det = data.detections.get((subject, seq, cam.camera_id))
                if det is None:
                    continue
                n = min(n, len(det))
            tracks.append(np.full(n, len(tracks)))
    track = np.concatenate(tracks)
    if len(track) != len(test.target):
        raise AssertionError("track ids disagree with the pairs")
    return SequenceTest(test, track)


def unseen_sequences(
    data: H36M,
    subjects: list[str],
    error_model: DetectorErrorModel,
    seed: int = 0,
    chunk: int = CHUNK,
    every: int = CHUNK_EVERY,
) -> SequenceTest:
    """Chunks of S9/S11 motion through fixed unseen cameras (see module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    sequences = data.sequences(subjects)
    actions = sorted({action_of(seq) for _, seq in sequences})
    clips, acts = [], []
    for subject, seq in sequences:
        world = data.poses_world[(subject, seq)]
        for start in range(0, len(world) - chunk + 1, every):
            clips.append(world[start : start + chunk])
            acts.append(actions.index(action_of(seq)))
    world = torch.from_numpy(np.stack(clips)).double()  # [C, T, 17, 3] absolute world
    c, t = world.shape[:2]
    mid = t // 2
    views = place_in_view(world[:, mid] - world[:, mid, :1], UNSEEN_VIEWS, gen)
    rot = views.rotation.double()
    rel = world - world[:, mid : mid + 1, :1]
    points = torch.einsum("cij,ctkj->ctki", rot, rel) + views.root.double()[:, None, None]
    intr = views.intrinsics.double().repeat_interleave(t, 0)
    flat = points.reshape(c * t, 17, 3)
    pix = project_to_pixels(flat, intr)
    noisy = error_model.apply_track(pix.reshape(c, t, 17, 2), gen=gen).reshape(c * t, 17, 2)
    image = intr[:, None, 9:11]
    inside = ((pix >= 0) & (pix < image)).all(-1)
    test = LiftTest(
        pixels=noisy.numpy(),
        visible=inside.numpy(),
        intrinsics=intr.numpy(),
        target=(flat - flat[:, :1]).float().numpy(),
        action=np.repeat(np.asarray(acts), t),
        actions=actions,
    )
    return SequenceTest(test, np.repeat(np.arange(c), t))


def with_missing(seq: SequenceTest, count: int, seed: int, persistent: bool) -> SequenceTest:
    """`count` random joints missing per frame, or the same ones through each track."""
    gen = torch.Generator().manual_seed(seed)
    if persistent:
        tracks = int(seq.track.max()) + 1
        drop = drop_joints(tracks, count, gen).numpy()[seq.track]
    else:
        drop = drop_joints(len(seq.track), count, gen).numpy()
    return SequenceTest(replace(seq.test, visible=seq.test.visible & drop), seq.track)


def smoothness(pred: np.ndarray, seq: SequenceTest) -> dict[str, float]:
    """Acceleration error and MPJVE over frames whose neighbours are in the same track."""
    err = torch.from_numpy(pred).double() - torch.from_numpy(seq.test.target).double()
    same = torch.from_numpy(seq.track[1:] == seq.track[:-1])
    vel = err[1:] - err[:-1]
    accel = vel[1:] - vel[:-1]
    both = same[1:] & same[:-1]
    return {
        "accel_mm": float(accel[both].norm(dim=-1).mean() * 1000),
        "mpjve_mm": float(vel[same].norm(dim=-1).mean() * 1000),
    }


FrameLifter = Callable[[np.ndarray], np.ndarray]
SequenceLifter = Callable[[np.ndarray, np.ndarray], np.ndarray]


def frame_by_frame(lifter: FrameLifter) -> SequenceLifter:
    """A single-frame lifter ignores the tracks."""
    return lambda inputs, track: lifter(inputs)


def windowed(
    lifter: FrameLifter,
    receptive_field: int,
    anchor_frame: int,
    lookahead: int | None = None,
    batch_size: int = 4096,
) -> SequenceLifter:
    """A temporal lifter over each row's window (edge padding at the track's ends; with
    `lookahead`, the future past it repeats the newest frame)."""

    def run(inputs: np.ndarray, track: np.ndarray) -> np.ndarray:
        first, last = (torch.from_numpy(b) for b in track_bounds(track))
        x = torch.from_numpy(inputs)
        outs = []
        for i in range(0, len(x), batch_size):
            rows = torch.arange(i, min(i + batch_size, len(x)))
            win = x[window_rows(rows, first[rows], last[rows], receptive_field, anchor_frame)]
            if lookahead is not None:
                win = cut_future(win, anchor_frame, torch.full((len(rows),), lookahead))
            outs.append(lifter(win.numpy()))
        return np.concatenate(outs)

    return run


def whole_tracks(
    run: FrameLifter, receptive_field: int, anchor_frame: int, batch_frames: int = 16384
) -> SequenceLifter:
    """A temporal lifter's whole-track form (`lifter.whole_track`: frames [1, T, 17, 3] ->
    poses [1, T - R + 1, 17, 3]) over each track, edge-padded at both ends: the window
    model's answers at every frame, each layer computing each position once. Tracks longer
    than `batch_frames` go in overlapping pieces."""
    lookahead = receptive_field - 1 - anchor_frame

    def lift(inputs: np.ndarray, track: np.ndarray) -> np.ndarray:
        out = np.empty((len(inputs), *inputs.shape[1:-1], 3), np.float32)
        first, last = track_bounds(track)
        for start in np.unique(first):
            end = last[start] + 1
            for a in range(start, end, batch_frames):
                b = min(a + batch_frames, end)
                rows = np.clip(np.arange(a - anchor_frame, b + lookahead), start, end - 1)
                out[a:b] = run(inputs[rows][None])[0]
        return out

    return lift


def run_sequence_tests(
    lifter: SequenceLifter,
    tests: dict[str, SequenceTest],
    seed: int = 0,
    occlusion: bool = True,
    keep: dict[str, np.ndarray] | None = None,
) -> dict[str, dict]:
    """Every sequence test for one lifter (camera-aware bundles only); `keep` receives the
    predictions of the h36m tests (for plots)."""
    results: dict[str, dict] = {}

    def one(seq: SequenceTest, camera: str = "given", name: str = "") -> dict:
        pred = lifter(model_inputs(seq.test, "camera_rays", camera), seq.track)
        if keep is not None and name:
            keep[name] = pred
        out = score(pred, seq.test)
        out.update(smoothness(pred, seq))
        return out

    for name, seq in tests.items():
        if name == "unseen":
            results["unseen_camera"] = one(seq)
            results["unseen_no_camera"] = one(seq, camera="default")
            if occlusion:
                for k in OCCLUDED_COUNTS:
                    results[f"occluded{k}"] = one(with_missing(seq, k, seed + k, False))
                    results[f"occluded{k}_persistent"] = one(with_missing(seq, k, seed + k, True))
        else:
            results[name.removeprefix("h36m_")] = one(seq, name=name)
    return results
