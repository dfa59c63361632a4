"""ONNX Runtime sessions of one bundle version: opened from its verified bytes, checked against
the contract's inputs and outputs, and run.

A temporal bundle may ship its lifter's step and whole-track forms beside the window model
(layer_state.py, track_windows.py); each gets its sessions too. Every lifter form may have a
second session for a busy host (on CPU: fewer intra-op threads, so a core stays free for the
event loop that answers the other callers); `LoadedModel` runs on it where it exists and on
the normal session otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from poseaug_service.bundle import Bundle, BundleError
from poseaug_service.config import ServerConfig
from poseaug_service.layer_state import StepLayout
from poseaug_service.providers import (
    CPU,
    CUDA,
    available_cores,
    busy_intra_op_threads,
    requested_providers,
)

log = logging.getLogger(__name__)

LIFTER_INPUT = "keypoints"
LIFTER_OUTPUT = "pose3d"
AUGMENTOR_INPUTS = ("pose3d", "root", "noise_ba", "noise_bl", "noise_rt", "ops")
AUGMENTOR_OUTPUTS = (
    "pose3d_aug",
    "bone_angle_offsets",
    "bone_length_ratios",
    "rotation",
    "translation",
)


def session_options(
    config: ServerConfig, intra_op_threads: int | None = None
) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = (
        config.intra_op_threads if intra_op_threads is None else intra_op_threads
    )
    opts.inter_op_num_threads = config.inter_op_threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # No CPU memory arena: an arena keeps the most a run ever took, per session, for good (a
    # batch of 1,024 windows of the 81-frame lifter: +380 MiB, and every form has two
    # sessions), so memory taken in a burst never came back. Runs take and give back through
    # malloc instead (allocator.py), at no measurable cost per run on this host.
    opts.enable_cpu_mem_arena = False
    # Spinning ORT threads keep cores busy between runs and starve the gRPC threads on small
    # hosts; off by default.
    spin = "1" if config.ort_spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return opts


def open_session(
    model: bytes | Path,
    config: ServerConfig,
    providers: list[str],
    label: str,
    intra_op_threads: int | None = None,
) -> ort.InferenceSession:
    """A session from verified model bytes (or a path); `label` names it in errors."""
    source = model if isinstance(model, bytes) else str(model)
    opts = session_options(config, intra_op_threads)
    session = ort.InferenceSession(source, opts, providers=providers)
    if config.providers == "cuda" and CUDA not in session.get_providers():
        raise BundleError(
            f"{label}: --providers cuda but the CUDA provider did not load "
            f"(session runs on {session.get_providers()})"
        )
    return session


def _check_io(session: ort.InferenceSession, path: Path, inputs: tuple, outputs: tuple) -> None:
    have_in = {i.name for i in session.get_inputs()}
    have_out = {o.name for o in session.get_outputs()}
    missing = [n for n in inputs if n not in have_in] + [n for n in outputs if n not in have_out]
    if missing:
        raise BundleError(f"{path}: graph lacks the contract's inputs/outputs {missing}")


def _check_lifter_channels(session: ort.InferenceSession, bundle: Bundle) -> None:
    """The graph's keypoints input takes the channels the manifest's normalization declares
    (a fixed last axis is checked; a symbolic one is trusted)."""
    shape = next(i.shape for i in session.get_inputs() if i.name == LIFTER_INPUT)
    last = shape[-1] if shape else None
    if isinstance(last, int) and last != bundle.lifter_channels:
        raise BundleError(
            f"{bundle.lifter_file}: input {LIFTER_INPUT} has {last} values per joint, but "
            f"lifter.normalization {bundle.lifter_input} needs {bundle.lifter_channels}"
        )
    frames = bundle.temporal_frames
    want = 3 if frames == 1 else 4  # [N, 17, C] or windows [N, frames, 17, C]
    if shape is not None and (
        len(shape) != want or (frames > 1 and isinstance(shape[1], int) and shape[1] != frames)
    ):
        expected = "[N, 17, C]" if frames == 1 else f"[N, {frames}, 17, C]"
        raise BundleError(
            f"{bundle.lifter_file}: input {LIFTER_INPUT} has shape {shape}, but the manifest's "
            f"lifter needs {expected}"
        )


def _check_shape(
    session: ort.InferenceSession, name: str, want: tuple, label: str, outputs: bool = False
) -> None:
    """`name` is a graph input (or output) of rank len(want) whose fixed axes equal `want`'s
    ints (None: any)."""
    args = session.get_outputs() if outputs else session.get_inputs()
    shape = next((a.shape for a in args if a.name == name), None)
    if shape is None:
        kind = "output" if outputs else "input"
        raise BundleError(f"{label}: graph lacks the manifest's {kind} {name!r}")
    fits = len(shape) == len(want) and all(
        w is None or not isinstance(g, int) or g == w for g, w in zip(shape, want, strict=True)
    )
    if not fits:
        expected = "[" + ", ".join("N" if w is None else str(w) for w in want) + "]"
        raise BundleError(f"{label}: {name} has shape {shape}, but the manifest needs {expected}")


def _check_step(session: ort.InferenceSession, layout: StepLayout, label: str) -> None:
    """The step form takes and gives what lifter.step declares."""
    _check_shape(session, layout.keypoints, (None, 17, layout.channels), label)
    _check_shape(session, layout.fresh, (None, 1), label)
    _check_shape(session, layout.pose3d, (None, 17, 3), label, outputs=True)
    for k in layout.kept:
        _check_shape(session, k.input, (None, len(k.taps), k.channels), label)
        _check_shape(session, k.output, (None, k.channels), label, outputs=True)


def _check_whole_track(session: ort.InferenceSession, bundle: Bundle, label: str) -> None:
    whole = bundle.whole_track
    assert whole is not None
    want = (None, None, 17, bundle.lifter_channels)
    _check_shape(session, whole["input"], want, label)
    _check_shape(session, whole["output"], (None, None, 17, 3), label, outputs=True)


def _check_noise_dims(session: ort.InferenceSession, bundle: Bundle) -> tuple[int, int, int]:
    """The manifest's augmentor.noise_dims, checked against the graph's noise inputs: each is
    [N, D] and a fixed D must equal the manifest's (the schema bounds a symbolic one)."""
    declared = bundle.augmentor["noise_dims"]
    shapes = {i.name: i.shape for i in session.get_inputs()}
    dims = []
    for op in ("ba", "bl", "rt"):
        want = int(declared[op])
        shape = shapes[f"noise_{op}"]
        graph = shape[-1] if shape else None
        if len(shape or ()) != 2 or (isinstance(graph, int) and graph != want):
            raise BundleError(
                f"{bundle.augmentor_file}: input noise_{op} has shape {shape}, but "
                f"augmentor.noise_dims.{op} is {want} (expected [N, {want}])"
            )
        dims.append(want)
    return dims[0], dims[1], dims[2]


@dataclass(eq=False)
class LoadedModel:
    """One servable bundle version: its manifest and open sessions.

    Requests hold on to the LoadedModel they were parsed with, so a reload that swaps in a
    new version never changes the sessions under an in-flight request.
    """

    bundle: Bundle
    lifter: ort.InferenceSession
    augmentor: ort.InferenceSession | None
    noise_dims: tuple[int, int, int] = (0, 0, 0)
    fingerprint: tuple = ()
    # The lifter for runs made while other calls are in flight: on CPU a second session with
    # fewer intra-op threads (see busy_intra_op_threads); None where that would change nothing.
    lifter_busy: ort.InferenceSession | None = None
    # The temporal lifter's step form (lifter.step) with its packed-row layout, and its
    # whole-track form (lifter.whole_track), each with its busy-host session; None if absent.
    step: ort.InferenceSession | None = None
    step_busy: ort.InferenceSession | None = None
    step_layout: StepLayout | None = None
    whole_track: ort.InferenceSession | None = None
    whole_track_busy: ort.InferenceSession | None = None

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def version(self) -> str:
        return self.bundle.version

    @property
    def lifter_input(self) -> str:
        """What the lifter is fed (bundle.SCREEN or bundle.CAMERA_RAYS)."""
        return self.bundle.lifter_input

    @property
    def temporal_frames(self) -> int:
        """Frames in the lifter's window (1: single-frame; see bundle.Bundle)."""
        return self.bundle.temporal_frames

    @property
    def temporal_anchor(self) -> int:
        return self.bundle.temporal_anchor

    @property
    def temporal_lookahead(self) -> int:
        """Frames after the answered one in a window: the most lookahead a stream may ask."""
        return self.temporal_frames - 1 - self.temporal_anchor

    @property
    def providers(self) -> list[str]:
        return list(self.lifter.get_providers())

    def run_lifter(self, keypoints: np.ndarray) -> np.ndarray:
        """[n, 17, C] lifter input (see lifting.py), or windows [n, frames, 17, C] for a
        temporal lifter (track_windows.py) -> [n, 17, 3] poses on this version's lifter."""
        return _lift(self.lifter, keypoints)

    def run_lifter_busy(self, keypoints: np.ndarray) -> np.ndarray:
        """`run_lifter` for a busy host: on the busy-host session where this model has one (the
        same weights, the same results), else on the normal one."""
        return _lift(_busy(self.lifter_busy, self.lifter), keypoints)

    def run_step(self, rows: np.ndarray) -> np.ndarray:
        """Packed step rows [n, in_width] (layer_state.StepLayout) -> packed outputs."""
        return _step(self.step, self.step_layout, rows)

    def run_step_busy(self, rows: np.ndarray) -> np.ndarray:
        return _step(_busy(self.step_busy, self.step), self.step_layout, rows)

    def run_whole_track(self, frames: np.ndarray) -> np.ndarray:
        """Stretches of tracks [n, T, 17, C] -> poses [n, T - frames + 1, 17, 3], each the window
        model's answer for the `temporal_frames` frames ending there."""
        return _whole_track(self.whole_track, self.bundle, frames)

    def run_whole_track_busy(self, frames: np.ndarray) -> np.ndarray:
        return _whole_track(_busy(self.whole_track_busy, self.whole_track), self.bundle, frames)


def _busy(busy: ort.InferenceSession | None, normal: ort.InferenceSession | None):
    """The busy-host session where there is one, else the normal one."""
    return normal if busy is None else busy


def _lift(session: ort.InferenceSession, keypoints: np.ndarray) -> np.ndarray:
    return session.run([LIFTER_OUTPUT], {LIFTER_INPUT: keypoints})[0]


def _step(session: ort.InferenceSession | None, layout: StepLayout | None, rows: np.ndarray):
    assert session is not None and layout is not None
    return layout.pack(session.run(layout.outputs, layout.feeds(rows)))


def _whole_track(session: ort.InferenceSession | None, bundle: Bundle, frames: np.ndarray):
    assert session is not None and bundle.whole_track is not None
    whole = bundle.whole_track
    return session.run([whole["output"]], {whole["input"]: frames})[0]


def load_model(bundle: Bundle, config: ServerConfig) -> LoadedModel:
    """Open the sessions of a verified bundle from its verified bytes."""
    providers = requested_providers(config.providers)
    busy = busy_intra_op_threads(config)
    blobs = bundle.blobs

    def sessions(name: str) -> tuple[ort.InferenceSession, ort.InferenceSession | None]:
        """A lifter form's session, and its busy-host one where that has fewer threads."""
        label = str(bundle.path / name)
        source = blobs.get(name, bundle.path / name)
        session = open_session(source, config, providers, label)
        idle = config.intra_op_threads or available_cores()
        if session.get_providers() != [CPU] or busy >= idle:
            return session, None
        return session, open_session(source, config, providers, label, intra_op_threads=busy)

    lifter, lifter_busy = sessions(bundle.lifter_name)
    _check_io(lifter, bundle.lifter_file, (LIFTER_INPUT,), (LIFTER_OUTPUT,))
    _check_lifter_channels(lifter, bundle)
    if lifter_busy is not None:
        log.info(
            "%s: busy-host lifter session: %d intra-op thread%s (runs while other calls are "
            "in flight)",
            bundle.name,
            busy,
            "" if busy == 1 else "s",
        )
    forms: dict[str, object] = {}
    if bundle.step is not None:
        layout = StepLayout.from_manifest(bundle.step, bundle.lifter_channels)
        forms["step"], forms["step_busy"] = sessions(bundle.step["file"])
        _check_step(forms["step"], layout, str(bundle.path / bundle.step["file"]))
        forms["step_layout"] = layout
    if bundle.whole_track is not None:
        name = bundle.whole_track["file"]
        forms["whole_track"], forms["whole_track_busy"] = sessions(name)
        _check_whole_track(forms["whole_track"], bundle, str(bundle.path / name))
    augmentor = None
    dims = (0, 0, 0)
    aug_file = bundle.augmentor_file
    if aug_file is not None:
        aug_source = blobs.get(bundle.augmentor_name or "", aug_file)
        augmentor = open_session(aug_source, config, providers, str(aug_file))
        _check_io(augmentor, aug_file, AUGMENTOR_INPUTS, AUGMENTOR_OUTPUTS)
        dims = _check_noise_dims(augmentor, bundle)
    # The sessions own their copies; drop the bytes so each version holds its weights once.
    lean = replace(bundle, blobs={})
    return LoadedModel(
        bundle=lean,
        lifter=lifter,
        augmentor=augmentor,
        noise_dims=dims,
        lifter_busy=lifter_busy,
        **forms,
    )
