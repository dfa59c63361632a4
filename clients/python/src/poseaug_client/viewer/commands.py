"""The viewer's part of the `poseaug` command: `--html` on lift and augment, and `poseaug view`
for results saved earlier. cli.py calls these hooks; everything the page needs is here."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from poseaug_client.cameras import Camera
from poseaug_client.contract import DEFAULT_HFOV_DEG, NUM_JOINTS
from poseaug_client.files import (
    CLIError,
    LiftInput,
    check_input,
    check_output,
    frame_order,
    load_arrays,
    read_poses3d,
)
from poseaug_client.formats import H36M_JOINT_NAMES, KEYPOINT_NAMES
from poseaug_client.jobs import DEFAULT_IMAGE_SIZE
from poseaug_client.viewer.page import render, write_page
from poseaug_client.viewer.scene import (
    augment_scene,
    root_translations,
    smooth_along_tracks,
    track_scene,
)


def add_html_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--html",
        type=Path,
        metavar="FILE.html",
        help="also write a 3D viewer: one HTML file that works offline in any browser",
    )


def check_html(args: argparse.Namespace) -> None:
    """Fail before any work if the page cannot be written."""
    if args.html is not None:
        check_output(args.html, (".html",), "--html")


def lift_html(
    args: argparse.Namespace,
    source: LiftInput,
    fmt: str,
    camera: object,
    image_size: object,
    poses: np.ndarray,
    inferred: np.ndarray | None,
) -> None:
    """The page of a lift (poses in input order): each person where the camera saw them."""
    if args.html is None:
        return
    roots = _roots(source, fmt, camera, image_size, poses, inferred)
    frames = source.image_ids if source.image_ids and None not in source.image_ids else None
    scene = track_scene(poses, source.track_ids, frames, inferred, roots)
    what = f"{len(poses)} poses" + (
        f", {len(np.unique(source.track_ids))} tracks" if source.track_ids is not None else ""
    )
    write_page(args.html, render(scene, f"poseaug lift: {args.input.name}", what))
    print(f"viewer -> {args.html}")


def augment_html(
    args: argparse.Namespace,
    sources: np.ndarray,
    poses: np.ndarray,
    keypoints: np.ndarray,
    camera: Camera | None,
) -> None:
    """The page of an augmentation: source beside augmented pose, row by row, and its 2D
    (in the layout it was asked in, framed by the camera's image when it has a size)."""
    if args.html is None:
        return
    size = (camera.width, camera.height) if camera is not None and camera.width else None
    scene = augment_scene(sources, poses, keypoints, args.count, size, args.keypoint_format)
    what = f"{len(sources)} source poses x {args.count}, ops {args.ops}, seed {args.seed}"
    write_page(args.html, render(scene, f"poseaug augment: {args.input.name}", what))
    print(f"viewer -> {args.html}")


def add_view_command(commands: argparse._SubParsersAction) -> None:
    view = commands.add_parser(
        "view",
        help="write the 3D viewer page of a saved result",
        description="Write one offline HTML page that shows a saved result in 3D.",
    )
    view.add_argument(
        "result",
        type=Path,
        metavar="RESULT",
        help="output of poseaug lift (.json or .npz) or of poseaug augment (.npz)",
    )
    view.add_argument("--output", required=True, type=Path, metavar="FILE.html")
    view.add_argument(
        "--source",
        type=Path,
        metavar="IN",
        help="an augment result's source poses (the --input it was made from)",
    )
    view.set_defaults(handler=run_view)


def run_view(args: argparse.Namespace) -> int:
    check_output(args.output, (".html",))
    check_input(args.result, (".json", ".npz"))
    if args.result.suffix.lower() == ".json":
        scene = track_scene(*_read_lift_json(args.result))
    else:
        poses, arrays = load_arrays(args.result, "pose3d")
        poses = _checked_poses(args.result, poses)
        if "source_index" in arrays:
            scene = _augment_result_scene(args, poses, arrays)
        else:
            inferred = arrays.get("joint_inferred")
            tracks = arrays.get("track_ids")
            frames = arrays.get("image_id")
            for name, value, shape in (
                ("joint_inferred", inferred, (len(poses), NUM_JOINTS)),
                ("track_ids", tracks, (len(poses),)),
                ("image_id", frames, (len(poses),)),
            ):
                if value is not None and value.shape != shape:
                    raise CLIError(f"{args.result}: {name} must have shape {list(shape)}")
            scene = track_scene(
                poses, tracks, None if frames is None else frames.tolist(), inferred
            )
    write_page(args.output, render(scene, f"poseaug view: {args.result.name}"))
    print(f"viewer -> {args.output}")
    return 0


def _checked_poses(path: Path, poses: np.ndarray) -> np.ndarray:
    if poses.ndim != 3 or poses.shape[1:] != (NUM_JOINTS, 3) or len(poses) == 0:
        raise CLIError(f"{path}: pose3d must have shape [N, 17, 3], got {list(poses.shape)}")
    if not np.all(np.isfinite(poses)):
        raise CLIError(f"{path}: pose3d holds NaN or Inf")
    return poses


def _read_lift_json(path: Path) -> tuple:
    """(poses, track ids, frame ids, joint_inferred) of `poseaug lift --output x.json`."""
    try:
        records = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CLIError(f"cannot read {path}: {exc}") from None
    if not isinstance(records, list) or not records:
        raise CLIError(f"{path}: expected the list of poses poseaug lift writes")
    try:
        poses = np.asarray([r["pose3d"] for r in records], dtype=np.float64)
    except (TypeError, KeyError, ValueError):
        raise CLIError(f"{path}: every entry needs a pose3d of 17 x 3 numbers") from None
    poses = _checked_poses(path, poses)

    def column(key: str) -> list | None:
        values = [r.get(key) for r in records]
        return values if all(v is not None for v in values) else None

    tracks = column("track_id")
    inferred = column("joint_inferred")
    if inferred is not None and np.asarray(inferred).shape != (len(poses), NUM_JOINTS):
        raise CLIError(f"{path}: joint_inferred must hold 17 flags per pose")
    return (
        poses,
        None if tracks is None else np.asarray(tracks, dtype=np.int64),
        column("image_id"),
        None if inferred is None else np.asarray(inferred, dtype=np.float32),
    )


def _augment_result_scene(
    args: argparse.Namespace, poses: np.ndarray, arrays: dict[str, np.ndarray]
) -> dict[str, object]:
    if args.source is None:
        raise CLIError(
            f"{args.result} is an augment result: name its source poses with --source "
            "(the --input of poseaug augment)"
        )
    sources = read_poses3d(args.source)
    index = np.asarray(arrays["source_index"])
    count = len(poses) // len(sources)
    if count * len(sources) != len(poses) or not np.array_equal(
        index, np.repeat(np.arange(len(sources)), count)
    ):
        raise CLIError(
            f"--source {args.source}: {len(sources)} poses do not match the source_index of "
            f"{args.result} ({len(poses)} rows)"
        )
    layout = str(arrays.get("keypoint_format", "h36m17"))
    if layout not in KEYPOINT_NAMES:
        raise CLIError(f"{args.result}: unknown keypoint_format {layout!r}")
    keypoints = arrays.get("keypoints")
    shape = (len(poses), len(KEYPOINT_NAMES[layout]), 2)
    if keypoints is None or keypoints.shape != shape:
        raise CLIError(f"{args.result}: keypoints ({layout}) must have shape {list(shape)}")
    return augment_scene(sources, poses, keypoints, count, keypoint_format=layout)


def _roots(
    source: LiftInput,
    fmt: str,
    camera: object,
    image_size: object,
    poses: np.ndarray,
    inferred: np.ndarray | None,
) -> np.ndarray:
    """[N, 3] where each lifted pose stands in the camera frame: its root-relative pose moved
    onto the rays of its keypoints (camera: the request's, else the default one of the image
    size that the camera-aware lifters assumed), then smoothed along each track. Distortion
    is ignored: this only places people in the viewer."""
    n = len(poses)
    if isinstance(camera, Camera):
        cameras = [camera] * n
    elif isinstance(camera, list):
        cameras = camera
    else:
        size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
        sizes = np.broadcast_to(np.asarray(size, dtype=np.float64).reshape(-1, 2), (n, 2))
        cameras = [Camera.from_fov(w, h, DEFAULT_HFOV_DEG) for w, h in sizes]
    intrinsics = np.asarray([[c.fx, c.fy, c.cx, c.cy] for c in cameras], dtype=np.float64)
    rays = (source.keypoints - intrinsics[:, None, 2:]) / intrinsics[:, None, :2]
    names = KEYPOINT_NAMES[fmt]
    seen = np.ones(source.keypoints.shape[:2], dtype=bool)
    if inferred is not None:
        for k, name in enumerate(names):
            if name in H36M_JOINT_NAMES:
                seen[:, k] = inferred[:, H36M_JOINT_NAMES.index(name)] < 0.5
    roots = root_translations(poses, rays, seen, names)
    frames = np.arange(n) if source.track_ids is None else frame_order(source).argsort()
    return (
        roots if source.track_ids is None else smooth_along_tracks(roots, source.track_ids, frames)
    )
