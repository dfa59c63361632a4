"""ONNX Runtime sessions for the loaded bundles, and the repository that holds them.

Providers: `auto` asks for CUDA when this onnxruntime build has it and an NVIDIA device is
present, then reports what the session really runs on (`get_providers()`), because ORT silently
falls back to CPU when CUDA libraries are missing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from poseaug_service.bundle import Bundle, BundleError, find_bundle_dirs, fingerprint, load_bundle
from poseaug_service.config import ServerConfig

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
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


def _nvidia_device_present() -> bool:
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/dxg")


_preloaded = False


def _preload_cuda_libraries() -> None:
    """Load CUDA/cuDNN from the nvidia-* pip wheels when they are installed (the GPU image's
    way of shipping them, see Dockerfile); a system CUDA on the loader path works without."""
    global _preloaded
    if _preloaded or not hasattr(ort, "preload_dlls"):
        return
    _preloaded = True
    try:
        ort.preload_dlls(directory="")
    except Exception as exc:  # a missing library surfaces again when the session loads
        log.warning("preloading CUDA libraries from nvidia wheels failed: %s", exc)


def requested_providers(mode: str) -> list[str]:
    """The provider list to ask ORT for under `--providers`."""
    if mode == "cpu":
        return [CPU]
    has_cuda = CUDA in ort.get_available_providers()
    if mode == "cuda":
        if not has_cuda:
            raise BundleError("--providers cuda: this onnxruntime build has no CUDA provider")
        _preload_cuda_libraries()
        return [CUDA, CPU]
    if has_cuda and _nvidia_device_present():
        _preload_cuda_libraries()
        return [CUDA, CPU]
    return [CPU]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def busy_intra_op_threads(config: ServerConfig) -> int:
    """Intra-op threads of the lifter runs made while other calls are in flight: by default
    all cores but one, which the event loop needs to answer those calls."""
    if config.busy_intra_op_threads:
        return config.busy_intra_op_threads
    return max(1, available_cores() - 1)


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
    def providers(self) -> list[str]:
        return list(self.lifter.get_providers())

    def run_lifter(self, keypoints: np.ndarray) -> np.ndarray:
        """[n, 17, C] lifter input (see lifting.py) -> [n, 17, 3] poses on this version's lifter."""
        return self.lifter.run([LIFTER_OUTPUT], {LIFTER_INPUT: keypoints})[0]

    def run_lifter_busy(self, keypoints: np.ndarray) -> np.ndarray:
        """`run_lifter` on the busy-host session (the same weights, the same results); only
        for models that have one."""
        assert self.lifter_busy is not None
        return self.lifter_busy.run([LIFTER_OUTPUT], {LIFTER_INPUT: keypoints})[0]


def load_model(bundle: Bundle, config: ServerConfig) -> LoadedModel:
    """Open the sessions of a verified bundle from its verified bytes."""
    providers = requested_providers(config.providers)
    blobs = bundle.blobs
    lifter_source = blobs.get(bundle.lifter_name, bundle.lifter_file)
    lifter = open_session(lifter_source, config, providers, str(bundle.lifter_file))
    _check_io(lifter, bundle.lifter_file, (LIFTER_INPUT,), (LIFTER_OUTPUT,))
    _check_lifter_channels(lifter, bundle)
    lifter_busy = None
    busy = busy_intra_op_threads(config)
    idle = config.intra_op_threads or available_cores()
    if lifter.get_providers() == [CPU] and busy < idle:
        lifter_busy = open_session(
            lifter_source, config, providers, str(bundle.lifter_file), intra_op_threads=busy
        )
        log.info(
            "%s: busy-host lifter session: %d intra-op thread%s (runs while other calls are "
            "in flight)",
            bundle.name,
            busy,
            "" if busy == 1 else "s",
        )
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
        bundle=lean, lifter=lifter, augmentor=augmentor, noise_dims=dims, lifter_busy=lifter_busy
    )


def public_reason(error: Exception, models: Path) -> str:
    """Why a bundle was refused, without the server's own paths: ListModels shows it to
    callers (the log keeps the whole message)."""
    reason = str(error)
    for prefix in sorted({str(models.resolve()), str(models.absolute()), str(models)}, key=len):
        reason = reason.replace(prefix + os.sep, "")
    return reason


class RepositoryError(Exception):
    """The model repository cannot be served at all (the CLI exits non-zero with it)."""


@dataclass(frozen=True)
class RepositoryState:
    """One consistent view of the repository: readers take it whole, reloads replace it whole."""

    models: Mapping[str, LoadedModel]
    default_name: str
    refused: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> LoadedModel | None:
        return self.models.get(name or self.default_name)


@dataclass(frozen=True)
class ReloadReport:
    """What one rescan changed."""

    loaded: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.loaded or self.removed)


class ModelRepository:
    """All loaded models by name, which one answers requests without a model name, and the
    rescan that swaps in new versions.

    A rescan loads a new or changed bundle completely (hashes verified, sessions open) before
    one assignment publishes the new RepositoryState; a bundle that fails to load (for example
    still being copied) keeps its previous version serving and is retried when its files change
    again.
    """

    def __init__(self, config: ServerConfig, state: RepositoryState) -> None:
        self.config = config
        self._state = state
        self._failed: dict[str, tuple] = {}
        self._scan_lock = threading.Lock()

    # --- readers (request path) --------------------------------------------------------
    @property
    def state(self) -> RepositoryState:
        return self._state

    @property
    def models(self) -> Mapping[str, LoadedModel]:
        return self._state.models

    def get(self, name: str) -> LoadedModel | None:
        return self._state.get(name)

    # --- loading -----------------------------------------------------------------------
    def _load_one(self, path: Path, fp: tuple) -> LoadedModel:
        model = load_model(load_bundle(path), self.config)
        model.fingerprint = fp
        log.info(
            "loaded model bundle %s version %s (lifter input: %s, augmentor: %s) on providers %s",
            model.name,
            model.version or "?",
            model.lifter_input,
            "yes" if model.augmentor is not None else "no",
            model.providers,
        )
        return model

    @classmethod
    def load(cls, config: ServerConfig) -> ModelRepository:
        """Load every bundle under config.models; refuse bad ones with a logged reason."""
        ort.set_default_logger_severity(3)
        dirs = find_bundle_dirs(config.models)
        if not dirs:
            raise RepositoryError(f"no model bundle found in {config.models}")
        repo = cls(config, RepositoryState(models={}, default_name=""))
        models: dict[str, LoadedModel] = {}
        refused: dict[str, str] = {}
        for path in dirs:
            fp = fingerprint(path)
            try:
                models[path.name] = repo._load_one(path, fp)
            except Exception as exc:  # any failure refuses this bundle only, with its reason
                refused[path.name] = public_reason(exc, config.models)
                repo._failed[path.name] = fp
                log.error("refusing model bundle %s: %s", path.name, exc)
        if not models:
            raise RepositoryError(
                f"no usable model bundle in {config.models}: "
                + "; ".join(f"{k}: {v}" for k, v in refused.items())
            )
        default = _choose_default(models, config.default_model)
        log.info("default model: %s", default)
        repo._state = RepositoryState(models=models, default_name=default, refused=refused)
        return repo

    def rescan(self) -> ReloadReport:
        """Load new and changed bundles, drop removed ones, then publish the result at once.

        Never raises: a failure keeps what is served now and is logged.
        """
        with self._scan_lock:
            old = self._state
            try:
                dirs = find_bundle_dirs(self.config.models)
            except OSError as exc:
                log.error("cannot rescan %s: %s", self.config.models, exc)
                return ReloadReport()
            models: dict[str, LoadedModel] = {}
            refused = dict(old.refused)
            loaded, failed = [], []
            for path in dirs:
                name = path.name
                current = old.models.get(name)
                try:
                    fp = fingerprint(path)
                except OSError:  # vanished while listed, or unreadable: change nothing now
                    if current is not None:
                        models[name] = current
                    continue
                if current is not None and current.fingerprint == fp:
                    models[name] = current
                    continue
                if self._failed.get(name) == fp:  # same bytes that failed before
                    if current is not None:
                        models[name] = current
                    continue
                try:
                    models[name] = self._load_one(path, fp)
                except Exception as exc:
                    self._failed[name] = fp
                    refused[name] = public_reason(exc, self.config.models)
                    failed.append(name)
                    log.error(
                        "not loading model bundle %s (%s); %s",
                        name,
                        exc,
                        f"version {current.version} keeps serving"
                        if current is not None
                        else "retrying when its files change",
                    )
                    if current is not None:
                        models[name] = current
                    continue
                self._failed.pop(name, None)
                refused.pop(name, None)
                loaded.append(name)
            removed = [n for n in old.models if n not in models]
            if not loaded and not removed:
                if failed:
                    self._state = replace(old, refused=refused)
                return ReloadReport(failed=tuple(failed))
            if not models:
                log.error(
                    "rescan found no usable bundle in %s; keeping the loaded ones",
                    self.config.models,
                )
                return ReloadReport(failed=tuple(failed))
            try:
                default = _choose_default(models, self.config.default_model, quiet=True)
            except RepositoryError as exc:
                log.error("rescan: %s; keeping the loaded bundles", exc)
                return ReloadReport(failed=tuple(failed))
            for name in removed:
                log.info("model bundle %s was removed from %s; unloaded", name, self.config.models)
            for name in set(refused) - {p.name for p in dirs}:
                refused.pop(name)
            self._state = RepositoryState(models=models, default_name=default, refused=refused)
            if default != old.default_name:
                log.info("default model: %s", default)
            return ReloadReport(loaded=tuple(loaded), removed=tuple(removed), failed=tuple(failed))


def _choose_default(models: Mapping[str, Any], override: str, quiet: bool = False) -> str:
    if override:
        if override not in models:
            raise RepositoryError(
                f"--default-model {override!r} is not a loaded bundle (loaded: {sorted(models)})"
            )
        return override
    marked = [n for n, m in models.items() if m.bundle.is_default]
    if len(marked) > 1 and not quiet:
        log.warning("several bundles set default: true (%s); using %s", marked, marked[0])
    if marked:
        return marked[0]
    first = next(iter(models))
    if not quiet:
        log.warning("no loaded bundle sets default: true; using %s", first)
    return first
