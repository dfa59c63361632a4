"""Model bundles on disk: find them, read manifest.json, and check every file's sha256.

The manifest is the whole training/service interface (see models/README.md); a bundle whose
manifest breaks the schema (manifest_schema.py), whose bytes do not match it, whose files are
not plain files inside its folder (a symlink out of it, a device), or whose lifter
normalization is unknown, is refused rather than served.
The verified bytes are kept (`Bundle.blobs`) and the ONNX Runtime sessions are built from
them, so a file replaced between the hash check and the session load can never be served.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poseaug_service.manifest_schema import ManifestError, check_manifest

# lifter.normalization values: what the lifter is fed, and the channels of its input.
SCREEN = "videopose3d_screen"  # format 1: keypoints normalized by the image size
CAMERA_RAYS = "camera_rays"  # format 2: undistorted camera rays and visibility
INPUT_CHANNELS: dict[str, tuple[str, ...]] = {
    SCREEN: ("x", "y"),
    CAMERA_RAYS: ("x", "y", "visible"),
}
# The normalizations each manifest format_version may declare.
NORMALIZATIONS: dict[int, tuple[str, ...]] = {1: (SCREEN,), 2: (CAMERA_RAYS,), 3: (CAMERA_RAYS,)}
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 4 << 20  # the shipped manifests, evaluation tables and all, hold 45 KB
_HASH_BLOCK = 1 << 20


class BundleError(Exception):
    """A bundle that cannot be served; the message says which bundle and why."""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its folder, parsed manifest and raw manifest text."""

    name: str
    path: Path
    manifest: dict[str, Any]
    manifest_text: str
    blobs: Mapping[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", ""))

    @property
    def is_default(self) -> bool:
        return bool(self.manifest.get("default", False))

    @property
    def lifter_input(self) -> str:
        """The lifter's lifter.normalization (format 1 bundles may leave it out)."""
        return self.manifest["lifter"].get("normalization", SCREEN)

    @property
    def lifter_channels(self) -> int:
        """Values per joint of the lifter input (the last axis of `keypoints`)."""
        return len(INPUT_CHANNELS[self.lifter_input])

    @property
    def temporal_frames(self) -> int:
        """Frames in the lifter's window (1: a single-frame lifter)."""
        return int((self.manifest["lifter"].get("temporal") or {}).get("frames", 1))

    @property
    def temporal_anchor(self) -> int:
        """The window's answered frame (frames before it are the track's past)."""
        return int((self.manifest["lifter"].get("temporal") or {}).get("anchor_frame", 0))

    @property
    def lifter_name(self) -> str:
        return self.manifest["lifter"].get("file", "lifter.onnx")

    @property
    def step(self) -> dict[str, Any] | None:
        """lifter.step: the temporal lifter's step form (one new frame per track), or None."""
        return self.manifest["lifter"].get("step")

    @property
    def whole_track(self) -> dict[str, Any] | None:
        """lifter.whole_track: the temporal lifter's whole-track form, or None."""
        return self.manifest["lifter"].get("whole_track")

    @property
    def lifter_file(self) -> Path:
        return self.path / self.lifter_name

    @property
    def augmentor(self) -> dict[str, Any] | None:
        return self.manifest.get("augmentor")

    @property
    def augmentor_name(self) -> str | None:
        aug = self.augmentor
        return None if aug is None else aug.get("file", "augmentor.onnx")

    @property
    def augmentor_file(self) -> Path | None:
        name = self.augmentor_name
        return None if name is None else self.path / name


def find_bundle_dirs(models_dir: Path) -> list[Path]:
    """Sub-folders holding a manifest.json, sorted by name for a stable default order.

    Hidden folders (a leading dot) are skipped: a new bundle can be staged as `.name.tmp` and
    renamed into place, and Kubernetes volumes keep their `..data` internals there.
    """
    if not models_dir.is_dir():
        return []
    return sorted(
        p for p in models_dir.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file()
    )


def fingerprint(path: Path) -> tuple:
    """What a rescan compares to decide whether a bundle changed: the manifest's sha256 and
    the size, mtime and inode of every file (a copy that keeps sizes and mtimes still changes
    the manifest, which names every file's sha256 and the version)."""
    stamps: list[tuple] = []
    for entry in sorted(path.iterdir()):
        try:
            st = entry.stat()
        except OSError:
            continue
        stamps.append((entry.name, st.st_size, st.st_mtime_ns, st.st_ino))
    try:
        manifest = hashlib.sha256((path / MANIFEST).read_bytes()).hexdigest()
    except OSError:
        manifest = ""
    return (manifest, *stamps)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _require(cond: bool, name: str, message: str) -> None:
    if not cond:
        raise BundleError(f"bundle {name!r}: {message}")


def _check_lifter_input(lifter: dict[str, Any], version: int, name: str) -> None:
    """The server must know how to prepare the lifter's input, or it refuses the bundle."""
    normalization = lifter.get("normalization", SCREEN if version == 1 else None)
    allowed = NORMALIZATIONS[version]
    _require(
        normalization in allowed,
        name,
        f"unknown lifter.normalization {normalization!r} for format_version {version} "
        f"(this server reads {', '.join(allowed)})",
    )
    channels = list(INPUT_CHANNELS[normalization])
    declared = lifter.get("input_channels", channels if version == 1 else None)
    _require(
        declared == channels,
        name,
        f"lifter.input_channels must be {channels} for {normalization}, got {declared!r}",
    )


def _inside(folder: Path, name: str, bundle: str) -> Path:
    """`folder/name` if it is a regular file inside the bundle folder (a symlink may point
    within the folder, never out of it)."""
    file_path = folder / name
    real = Path(os.path.realpath(file_path))
    _require(
        real.is_relative_to(os.path.realpath(folder)),
        bundle,
        f"file {name} leads outside the bundle folder",
    )
    _require(real.is_file(), bundle, f"file {name} is missing or not a regular file")
    return real


def load_bundle(path: Path) -> Bundle:
    """Parse and verify one bundle folder; raises BundleError naming the problem."""
    name = path.name
    manifest_path = _inside(path, MANIFEST, name)
    size = manifest_path.stat().st_size
    _require(
        size <= MAX_MANIFEST_BYTES,
        name,
        f"manifest.json is {size} bytes, over the {MAX_MANIFEST_BYTES} this server reads",
    )
    text = manifest_path.read_text(encoding="utf-8")
    try:
        manifest = check_manifest(json.loads(text))
    except json.JSONDecodeError as exc:
        raise BundleError(f"bundle {name!r}: manifest.json is not valid JSON ({exc})") from exc
    except ManifestError as exc:
        raise BundleError(f"bundle {name!r}: {exc}") from None
    version = manifest["format_version"]
    lifter = manifest["lifter"]
    _check_lifter_input(lifter, version, name)
    augmentor = manifest.get("augmentor")
    files = manifest["files"]
    needed = {lifter.get("file", "lifter.onnx")}
    if augmentor is not None:
        needed.add(augmentor.get("file", "augmentor.onnx"))
    needed.update(lifter[form]["file"] for form in ("step", "whole_track") if lifter.get(form))
    missing = needed - set(files)
    _require(not missing, name, f"'files' lacks an entry (sha256) for {sorted(missing)}")
    blobs = {}
    for file_name, entry in files.items():
        file_path = _inside(path, file_name, name)
        expected = entry["sha256"]
        if file_name in needed:
            data = file_path.read_bytes()
            actual = hashlib.sha256(data).hexdigest()
            blobs[file_name] = data
        else:
            actual = sha256_of(file_path)
        _require(
            actual == expected.lower(),
            name,
            f"sha256 mismatch for {file_name}: manifest says {expected}, file has {actual}",
        )
    return Bundle(name=name, path=path, manifest=manifest, manifest_text=text, blobs=blobs)
