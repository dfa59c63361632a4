"""The schema of manifest.json (models/README.md), checked before a bundle is loaded.

Every field the server reads or serves is checked for type and range here, so a bundle that
breaks the contract is refused with a reason at load time instead of being served half-broken
(`"metrics": [1, 2, 3]` used to turn every ListModels into INTERNAL, `noise_dims.ba: 10**12`
every Augment into a terabyte allocation). Keys the server does not read are allowed, so
training can add fields without a server release; `evaluation` and `training` are free-form.
"""

from __future__ import annotations

import math
import re
from typing import Any

SUPPORTED_FORMAT_VERSIONS = (1, 2, 3)
TEMPORAL_FORMAT_VERSION = 3  # the lifter takes windows of a track's frames (lifter.temporal)
MAX_TEMPORAL_FRAMES = 243  # VideoPose3D's largest receptive field
# The step form's kept inputs (lifter.step.state): the shipped 81-frame lifter keeps 5 inputs,
# 80,000 values per track; a manifest may not make the server keep more than this per track.
MAX_STEP_STATES = 64
MAX_STEP_STATE_VALUES = 1 << 22
JOINTS = 17
MAX_NOISE_DIM = 4096  # noise values per row and op; the shipped augmentor uses 48
MAX_METRICS = 1000
MAX_TEXT = 4096
MAX_NAME = 256
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class ManifestError(ValueError):
    """A manifest that breaks the schema; the message names the field."""


def _fail(where: str, message: str) -> None:
    raise ManifestError(f"manifest {where}: {message}" if where else f"manifest: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _object(value: Any, where: str, optional: bool = False) -> dict:
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        _fail(where, f"must be an object, got {type(value).__name__}")
    return value


def _text(parent: dict, key: str, where: str, limit: int = MAX_TEXT, required: bool = False):
    value = parent.get(key)
    if value is None and not required:
        return
    if not isinstance(value, str) or (not value and required):
        _fail(f"{where}{key}", "must be a non-empty string" if required else "must be a string")
    if len(value) > limit:
        _fail(f"{where}{key}", f"at most {limit} characters, got {len(value)}")


def file_name(value: Any, where: str) -> str:
    """A bundle file's name: a plain name inside the bundle folder, no folders."""
    if (
        not isinstance(value, str)
        or not value
        or value in (".", "..")
        or "/" in value
        or "\\" in value
        or "\0" in value
        or len(value) > MAX_NAME
    ):
        _fail(where, f"must name a file inside the bundle folder, without folders, got {value!r}")
    return value


def _joints(value: Any) -> None:
    joints = _object(value, "joints", optional=True)
    _text(joints, "format", "joints.", MAX_NAME)
    names = joints.get("names")
    if names is not None and (
        not isinstance(names, list)
        or len(names) != JOINTS
        or not all(isinstance(n, str) and 0 < len(n) <= MAX_NAME for n in names)
    ):
        _fail("joints.names", f"must be a list of {JOINTS} non-empty strings")
    parents = joints.get("parents")
    if parents is None:
        return
    if not isinstance(parents, list) or len(parents) != JOINTS or not all(map(_is_int, parents)):
        _fail("joints.parents", f"must be a list of {JOINTS} integers")
    children_ok = all(0 <= p < JOINTS and p != i for i, p in enumerate(parents) if i)
    if parents[0] != -1 or not children_ok:
        _fail("joints.parents", "joint 0 is the root (-1); every other joint's parent is 0..16")


def _lifter(value: Any) -> None:
    lifter = _object(value, "lifter")
    if "file" in lifter:
        file_name(lifter["file"], "lifter.file")
    for key in ("input", "output", "normalization", "units", "normalization_formula", "frame"):
        _text(lifter, key, "lifter.")
    channels = lifter.get("input_channels")
    if channels is not None and not (
        isinstance(channels, list) and all(isinstance(c, str) for c in channels)
    ):
        _fail("lifter.input_channels", "must be a list of strings")
    if "root_relative" in lifter and not isinstance(lifter["root_relative"], bool):
        _fail("lifter.root_relative", "must be true or false")
    _object(lifter.get("architecture"), "lifter.architecture", optional=True)


def _temporal(value: Any, version: int) -> None:
    """lifter.temporal: required by format 3 (and only there): the window's frames and the
    answered frame within it."""
    if version != TEMPORAL_FORMAT_VERSION:
        if value is not None:
            _fail("lifter.temporal", f"is for format_version {TEMPORAL_FORMAT_VERSION} only")
        return
    temporal = _object(value, "lifter.temporal")
    frames = temporal.get("frames")
    if not _is_int(frames) or not 1 <= frames <= MAX_TEMPORAL_FRAMES:
        _fail("lifter.temporal.frames", f"must be an integer 1..{MAX_TEMPORAL_FRAMES}")
    anchor = temporal.get("anchor_frame")
    if not _is_int(anchor) or not 0 <= anchor < frames:
        _fail("lifter.temporal.anchor_frame", f"must be an integer 0..{frames - 1}")
    if temporal.get("padding", "edge") != "edge":
        _fail("lifter.temporal.padding", "must be 'edge' (the only padding this server does)")


def _step(value: Any) -> None:
    """lifter.step: the step form's file, tensor names and kept inputs (channels and taps)."""
    step = _object(value, "lifter.step")
    file_name(step.get("file"), "lifter.step.file")
    for key in ("input", "fresh", "output"):
        _text(step, key, "lifter.step.", MAX_NAME, required=True)
    state = step.get("state")
    if not isinstance(state, list) or len(state) > MAX_STEP_STATES:
        _fail("lifter.step.state", f"must be a list of at most {MAX_STEP_STATES} kept inputs")
    values = 0
    for i, entry in enumerate(state):
        where = f"lifter.step.state[{i}]"
        entry = _object(entry, where)
        for key in ("input", "output"):
            _text(entry, key, f"{where}.", MAX_NAME, required=True)
        channels, taps = entry.get("channels"), entry.get("taps")
        if not _is_int(channels) or channels < 1:
            _fail(f"{where}.channels", "must be a positive integer")
        if (
            not isinstance(taps, list)
            or not 1 <= len(taps) <= MAX_TEMPORAL_FRAMES
            or not all(_is_int(t) and 1 <= t <= MAX_TEMPORAL_FRAMES for t in taps)
        ):
            most = MAX_TEMPORAL_FRAMES
            _fail(f"{where}.taps", f"must list 1..{most} taps, each 1..{most} frames back")
        values += channels * max(taps)
    if values > MAX_STEP_STATE_VALUES:
        _fail("lifter.step.state", f"keeps {values} values per track, over {MAX_STEP_STATE_VALUES}")


def _whole_track(value: Any) -> None:
    whole = _object(value, "lifter.whole_track")
    file_name(whole.get("file"), "lifter.whole_track.file")
    for key in ("input", "output"):
        _text(whole, key, "lifter.whole_track.", MAX_NAME, required=True)


def _temporal_forms(lifter: dict, version: int) -> None:
    """lifter.step and lifter.whole_track (optional): the temporal lifter's other forms."""
    for key, check in (("step", _step), ("whole_track", _whole_track)):
        if lifter.get(key) is None:
            continue
        if version != TEMPORAL_FORMAT_VERSION:
            _fail(f"lifter.{key}", f"is for format_version {TEMPORAL_FORMAT_VERSION} only")
        check(lifter[key])


def _augmentor(value: Any) -> None:
    if value is None:
        return
    augmentor = _object(value, "augmentor")
    if "file" in augmentor:
        file_name(augmentor["file"], "augmentor.file")
    dims = _object(augmentor.get("noise_dims"), "augmentor.noise_dims")
    for op in ("ba", "bl", "rt"):
        d = dims.get(op)
        if not _is_int(d) or not 1 <= d <= MAX_NOISE_DIM:
            _fail(f"augmentor.noise_dims.{op}", f"must be an integer 1..{MAX_NOISE_DIM}, got {d!r}")
    ops = augmentor.get("ops")
    if ops is not None and not (isinstance(ops, list) and all(isinstance(o, str) for o in ops)):
        _fail("augmentor.ops", "must be a list of strings")


def _files(value: Any) -> None:
    files = _object(value, "files")
    if not files:
        _fail("files", "must list the bundle's files with their sha256")
    for name, entry in files.items():
        where = f"files[{name!r}]"
        file_name(name, where)
        entry = _object(entry, where)
        digest = entry.get("sha256")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            _fail(f"{where}.sha256", "must be 64 hexadecimal digits")
        size = entry.get("bytes")
        if size is not None and not (_is_int(size) and size >= 0):
            _fail(f"{where}.bytes", "must be a non-negative integer")


def _metrics(value: Any) -> None:
    metrics = _object(value, "metrics", optional=True)
    if len(metrics) > MAX_METRICS:
        _fail("metrics", f"at most {MAX_METRICS} entries, got {len(metrics)}")
    for key, number in metrics.items():
        if len(key) > MAX_NAME:
            _fail("metrics", f"keys are at most {MAX_NAME} characters")
        if not _is_number(number):
            _fail(f"metrics[{key!r}]", f"must be a finite number, got {number!r}")


def check_manifest(manifest: Any) -> dict[str, Any]:
    """`manifest` (parsed JSON) if it follows the schema; raises ManifestError naming the field."""
    manifest = _object(manifest, "")
    version = manifest.get("format_version")
    if not _is_int(version) or version not in SUPPORTED_FORMAT_VERSIONS:
        raise ManifestError(
            f"unknown manifest format_version {version!r} (this server reads "
            f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))})"
        )
    _text(manifest, "name", "", MAX_NAME)
    _text(manifest, "version", "", MAX_NAME)
    _text(manifest, "description", "")
    if "default" in manifest and not isinstance(manifest["default"], bool):
        _fail("default", "must be true or false")
    _joints(manifest.get("joints"))
    _lifter(manifest.get("lifter"))
    _temporal(manifest["lifter"].get("temporal"), version)
    _temporal_forms(manifest["lifter"], version)
    _augmentor(manifest.get("augmentor"))
    _files(manifest.get("files"))
    _metrics(manifest.get("metrics"))
    for key in ("evaluation", "training"):
        _object(manifest.get(key), key, optional=True)
    return manifest
