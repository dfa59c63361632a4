"""The CLI's file formats: .npz/.npy arrays and COCO keypoint JSON in, .npz/.json out."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from poseaug_client.formats import H36M_JOINT_NAMES

COCO_KEYPOINTS = 17


class CLIError(Exception):
    """A user mistake the CLI reports in one line (missing file, wrong shape, ...)."""


@dataclass
class LiftInput:
    """2D keypoints to lift and what to carry over to the output."""

    keypoints: np.ndarray  # [N, K, 2] pixels
    scores: np.ndarray | None = None  # [N, K] in [0, 1]
    image_sizes: np.ndarray | None = None  # [N, 2] (width, height): COCO dataset file or npz
    coco: bool = False
    image_ids: list[object] = field(default_factory=list)
    detection_scores: list[float | None] = field(default_factory=list)
    track_ids: np.ndarray | None = None  # [N] int64: a tracker's id of each detection


def check_input(path: Path, suffixes: tuple[str, ...]) -> None:
    if path.suffix.lower() not in suffixes:
        raise CLIError(f"{path}: input must be one of {', '.join(suffixes)}")
    if not path.is_file():
        raise CLIError(f"input file not found: {path}")


def check_output(path: Path, suffixes: tuple[str, ...], option: str = "--output") -> None:
    """Fail before any work if the output cannot be written."""
    if path.suffix.lower() not in suffixes:
        raise CLIError(f"{option} {path}: must end in {' or '.join(suffixes)}")
    if not path.parent.is_dir():
        raise CLIError(f"{option} {path}: folder {path.parent} does not exist")


def load_arrays(path: Path, wanted: str) -> tuple[np.ndarray, Mapping[str, np.ndarray]]:
    """(`wanted` array, all arrays) of a .npz, or the array of a .npy."""
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path, allow_pickle=False)
            return array, {wanted: array}
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CLIError(f"cannot read {path}: {exc}") from None
    if wanted not in arrays:
        found = ", ".join(sorted(arrays)) or "nothing"
        raise CLIError(f"{path}: no '{wanted}' array (found: {found})")
    return arrays[wanted], arrays


def read_lift_input(path: Path) -> LiftInput:
    """Keypoints from .npz (keypoints [N,K,2], optional scores [N,K] and image_sizes [N,2] as
    width, height per pose), .npy or COCO JSON.

    A trailing 3rd column ([N, K, 3]: x, y, confidence) is taken as the scores.
    """
    check_input(path, (".npz", ".npy", ".json"))
    if path.suffix.lower() == ".json":
        return read_coco(path)
    keypoints, arrays = load_arrays(path, "keypoints")
    scores = arrays.get("scores")
    if keypoints.ndim == 3 and keypoints.shape[-1] == 3 and scores is None:
        keypoints, scores = keypoints[..., :2], np.clip(keypoints[..., 2], 0.0, 1.0)
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2 or keypoints.shape[0] == 0:
        raise CLIError(f"{path}: keypoints must have shape [N, K, 2], got {list(keypoints.shape)}")
    if scores is not None and scores.shape != keypoints.shape[:2]:
        raise CLIError(
            f"{path}: scores must have shape {list(keypoints.shape[:2])}, got {list(scores.shape)}"
        )
    tracks = arrays.get("track_ids")
    if tracks is not None and (tracks.shape != (len(keypoints),) or tracks.dtype.kind not in "iu"):
        raise CLIError(
            f"{path}: track_ids must be {len(keypoints)} integers, got {tracks.dtype} "
            f"{list(tracks.shape)}"
        )
    sizes = arrays.get("image_sizes")
    if sizes is not None and sizes.shape != (keypoints.shape[0], 2):
        raise CLIError(
            f"{path}: image_sizes must have shape [{len(keypoints)}, 2], got {list(sizes.shape)}"
        )
    return LiftInput(
        keypoints.astype(np.float32),
        scores,
        None if sizes is None else np.asarray(sizes, dtype=np.int64),
        track_ids=None if tracks is None else tracks.astype(np.int64),
    )


def read_coco(path: Path) -> LiftInput:
    """COCO keypoint results (a list of {image_id, category_id, keypoints, score}) or a COCO
    dataset file ({"annotations": [...], "images": [...]}, whose image sizes are used)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CLIError(f"cannot read {path}: {exc}") from None
    sizes_by_image: dict[object, tuple[int, int]] = {}
    if isinstance(data, dict):
        if not isinstance(data.get("annotations"), list):
            raise CLIError(f"{path}: expected a list of detections or a COCO 'annotations' list")
        for image in data.get("images") or []:
            if isinstance(image, dict) and {"id", "width", "height"} <= image.keys():
                sizes_by_image[image["id"]] = (int(image["width"]), int(image["height"]))
        entries = data["annotations"]
    elif isinstance(data, list):
        entries = data
    else:
        raise CLIError(f"{path}: expected a list of detections or a COCO 'annotations' list")
    if not entries:
        raise CLIError(f"{path}: no detections")
    rows, ids, det_scores, sizes, tracks = [], [], [], [], []
    for index, entry in enumerate(entries):
        values = entry.get("keypoints") if isinstance(entry, dict) else None
        if not isinstance(values, list) or len(values) != 3 * COCO_KEYPOINTS:
            got = len(values) if isinstance(values, list) else type(values).__name__
            raise CLIError(
                f"{path}: detection {index}: keypoints must be 17 x (x, y, v) = 51 numbers, "
                f"got {got}"
            )
        try:
            rows.append(np.asarray(values, dtype=np.float32).reshape(COCO_KEYPOINTS, 3))
        except (TypeError, ValueError):
            raise CLIError(f"{path}: detection {index}: keypoints must be numbers") from None
        ids.append(entry.get("image_id"))
        det_scores.append(entry.get("score"))
        track = entry.get("track_id")
        if track is not None and (not isinstance(track, int) or isinstance(track, bool)):
            raise CLIError(f"{path}: detection {index}: track_id must be an integer")
        tracks.append(track)
        sizes.append(sizes_by_image.get(entry.get("image_id")))
    triples = np.stack(rows)
    image_sizes = np.asarray(sizes, dtype=np.int64) if all(sizes) else None
    tracked = [t is not None for t in tracks]
    if any(tracked) and not all(tracked):
        first = tracked.index(False)
        raise CLIError(f"{path}: detection {first} has no track_id while others have one")
    return LiftInput(
        keypoints=triples[..., :2],
        scores=np.clip(triples[..., 2], 0.0, 1.0),
        image_sizes=image_sizes,
        coco=True,
        image_ids=ids,
        detection_scores=det_scores,
        track_ids=np.asarray(tracks, dtype=np.int64) if all(tracked) else None,
    )


def write_lift_output(
    path: Path, poses: np.ndarray, source: LiftInput, joint_inferred: np.ndarray | None = None
) -> None:
    """pose3d [N, 17, 3] metres as .npz (plus joint_names, image_id, and joint_inferred
    [N, 17] from camera-aware models) or a JSON list of poses (with the same fields)."""
    if path.suffix.lower() == ".json":
        records = []
        for index, pose in enumerate(poses):
            record: dict[str, object] = {}
            if source.coco:
                record["image_id"] = source.image_ids[index]
                if source.detection_scores[index] is not None:
                    record["score"] = source.detection_scores[index]
            if source.track_ids is not None:
                record["track_id"] = int(source.track_ids[index])
            record["pose3d"] = np.round(pose.astype(np.float64), 6).tolist()
            if joint_inferred is not None:
                record["joint_inferred"] = [bool(v) for v in joint_inferred[index]]
            records.append(record)
        path.write_text(json.dumps(records))
        return
    arrays: dict[str, np.ndarray] = {
        "pose3d": poses.astype(np.float32),
        "joint_names": np.asarray(H36M_JOINT_NAMES),
    }
    if joint_inferred is not None:
        arrays["joint_inferred"] = joint_inferred.astype(bool)
    if source.track_ids is not None:
        arrays["track_ids"] = source.track_ids
    if source.coco:
        ids = source.image_ids
        if all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            arrays["image_id"] = np.asarray(ids, dtype=np.int64)
        else:
            arrays["image_id"] = np.asarray(["" if i is None else str(i) for i in ids])
    np.savez(path, **arrays)


def frame_order(source: LiftInput) -> np.ndarray:
    """The order to send detections in: by image_id where every id is an integer (trackers
    number frames in order), so each track's frames arrive in time order; else as read."""
    ids = source.image_ids
    if source.track_ids is None or not ids:
        return np.arange(len(source.keypoints))
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return np.arange(len(source.keypoints))
    return np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")


def read_poses3d(path: Path) -> np.ndarray:
    """Source poses pose3d [N, 17, 3] metres from .npz or .npy."""
    check_input(path, (".npz", ".npy"))
    poses, _ = load_arrays(path, "pose3d")
    if poses.ndim != 3 or poses.shape[1:] != (17, 3) or poses.shape[0] == 0:
        raise CLIError(f"{path}: pose3d must have shape [N, 17, 3], got {list(poses.shape)}")
    if not np.all(np.isfinite(poses)):
        raise CLIError(f"{path}: pose3d holds NaN or Inf")
    return poses.astype(np.float32)
