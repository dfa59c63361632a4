"""The `poseaug` command: lift 2D keypoint files to 3D, augment 3D poses, list models, check
health. Every failure is one line on stderr and a non-zero exit code: 2 for bad usage, 1 for
the rest (never a traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
import numpy as np

from poseaug_client.cameras import Camera
from poseaug_client.client import PoseAugClient
from poseaug_client.config import DEFAULT_SERVER
from poseaug_client.contract import MAX_STREAM_CHUNK, TOKEN_ENV
from poseaug_client.errors import PoseAugError
from poseaug_client.files import (
    CLIError,
    check_output,
    frame_order,
    read_lift_input,
    read_poses3d,
    write_lift_output,
)
from poseaug_client.formats import KEYPOINT_FORMATS
from poseaug_client.jobs import AUGMENT_OUTPUT_FORMATS, DEFAULT_IMAGE_SIZE, PLACEMENTS
from poseaug_client.results import concat_augment
from poseaug_client.version import __version__
from poseaug_client.viewer.commands import (
    add_html_option,
    add_view_command,
    augment_html,
    check_html,
    lift_html,
)

SERVER_ENV = "POSEAUG_SERVER"


def image_size_arg(text: str) -> tuple[int, int]:
    """ "1920x1080" -> (1920, 1080)."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or not int(width) or not int(height):
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT in pixels, e.g. 1000x1000, got {text!r}"
        )
    return int(width), int(height)


def camera_arg(text: str) -> Camera:
    """ "fx,fy,cx,cy" (optionally ",width,height") -> Camera."""
    try:
        numbers = [float(v) for v in text.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) not in (4, 6) or not all(math.isfinite(v) for v in numbers):
        raise argparse.ArgumentTypeError(f"expected fx,fy,cx,cy[,width,height], got {text!r}")
    if numbers[0] <= 0 or numbers[1] <= 0:
        raise argparse.ArgumentTypeError(f"fx and fy must be > 0, got {text!r}")
    width, height = (int(numbers[4]), int(numbers[5])) if len(numbers) == 6 else (0, 0)
    return Camera(*numbers[:4], width=width, height=height)


def fov_arg(text: str) -> float:
    value = positive_float(text)
    if value >= 180:
        raise argparse.ArgumentTypeError(f"expected degrees between 0 and 180, got {text!r}")
    return value


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def connection_options() -> argparse.ArgumentParser:
    """Options every command shares: where the server is and how to talk to it."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument(
        "--server",
        action="append",
        metavar="HOST:PORT",
        help="server address; repeat or comma-separate for round-robin "
        f"(default ${SERVER_ENV} or {DEFAULT_SERVER})",
    )
    group.add_argument(
        "--timeout",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="deadline of each call (default 30)",
    )
    group.add_argument(
        "--attempts",
        type=positive_int,
        default=3,
        metavar="N",
        help="tries per call; UNAVAILABLE is retried with backoff (default 3)",
    )
    group.add_argument("--token", help=f"bearer token (default: ${TOKEN_ENV})")
    group.add_argument("--token-file", type=Path, metavar="FILE", help="file holding the token")
    group.add_argument(
        "--tls", action="store_true", help="use TLS with the system's root certificates"
    )
    group.add_argument(
        "--tls-ca", type=Path, metavar="PEM", help="root certificates (implies --tls)"
    )
    group.add_argument(
        "--tls-cert", type=Path, metavar="PEM", help="client certificate (mutual TLS)"
    )
    group.add_argument(
        "--tls-key", type=Path, metavar="PEM", help="client private key (mutual TLS)"
    )
    group.add_argument(
        "--tls-server-name", metavar="NAME", help="expected name in the server certificate"
    )
    group.add_argument("-v", "--verbose", action="store_true", help="log retries")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poseaug",
        description="Lift 2D keypoints to 3D and augment 3D poses with a PoseAug server.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [connection_options()]

    lift = commands.add_parser(
        "lift",
        parents=common,
        help="lift 2D keypoints to 3D poses",
        description="Lift 2D keypoints (pixels) to 3D poses (metres).",
    )
    lift.add_argument(
        "--input",
        required=True,
        type=Path,
        metavar="IN",
        help=".npz/.npy with keypoints [N,K,2] (and scores [N,K], track_ids [N]) or COCO "
        "keypoint JSON (its scores and a tracker's track_id too); camera-aware models infer "
        "joints scored under 0.3, temporal models lift each track over time",
    )
    lift.add_argument(
        "--output",
        required=True,
        type=Path,
        metavar="OUT",
        help=".npz (pose3d [N,17,3]) or .json (list of poses)",
    )
    lift.add_argument(
        "--format",
        choices=sorted(KEYPOINT_FORMATS),
        help="keypoint layout (default h36m17; coco17 for JSON input)",
    )
    lift.add_argument(
        "--image-size",
        type=image_size_arg,
        metavar="WxH",
        help="image size in pixels (default 1000x1000, or none sent with --camera)",
    )
    cameras = lift.add_mutually_exclusive_group()
    cameras.add_argument(
        "--camera",
        type=camera_arg,
        metavar="FX,FY,CX,CY",
        help="camera intrinsics in pixels (optionally ,W,H); camera-aware models turn "
        "keypoints into rays with it (default: their 60-degree default camera)",
    )
    cameras.add_argument(
        "--fov",
        type=fov_arg,
        metavar="DEG",
        help="camera from the image size and this horizontal field of view",
    )
    lift.add_argument("--model", help="model bundle (default: the server's default)")
    lift.add_argument(
        "--batch-size",
        type=positive_int,
        default=65536,
        metavar="N",
        help="poses per call (default 65536)",
    )
    lift.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="draw input and lifted poses; with tracks, one track's 3D over time",
    )
    lift.add_argument(
        "--track",
        type=int,
        metavar="ID",
        help="the track --plot draws (default: the longest)",
    )
    add_html_option(lift)
    lift.add_argument("--progress", action="store_true", help="show a progress bar")
    lift.set_defaults(handler=run_lift)

    aug = commands.add_parser(
        "augment",
        parents=common,
        help="augment 3D poses (PoseAug)",
        description="Make harder yet plausible 3D poses and their 2D projections.",
    )
    aug.add_argument(
        "--input",
        required=True,
        type=Path,
        metavar="IN",
        help=".npz with pose3d [N,17,3] metres (or a .npy of it)",
    )
    aug.add_argument("--output", required=True, type=Path, metavar="OUT.npz")
    aug.add_argument(
        "--count", type=positive_int, default=1, help="augmentations per pose (default 1)"
    )
    aug.add_argument("--ops", default="ba,bl,rt", help="operations: ba,bl,rt (default all three)")
    aug.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    aug_cameras = aug.add_mutually_exclusive_group()
    aug_cameras.add_argument(
        "--camera",
        type=camera_arg,
        metavar="FX,FY,CX,CY[,W,H]",
        help="the camera the augmented poses are placed in front of and projected through "
        "(W,H or --image-size required; default: the server's 1000x1002 H36M-like one)",
    )
    aug_cameras.add_argument(
        "--fov",
        type=fov_arg,
        metavar="DEG",
        help="camera from --image-size (default 1000x1000) and this horizontal field of view",
    )
    aug.add_argument("--image-size", type=image_size_arg, help="image size of --camera / --fov")
    aug.add_argument(
        "--placement",
        choices=tuple(PLACEMENTS),
        default="in_view",
        help="in_view (default): each body wholly in the image at 20-90%% of its size; "
        "learned: the augmentor's own translation",
    )
    aug.add_argument(
        "--max-tilt",
        type=float,
        metavar="DEG",
        help="most degrees RT may turn a body from upright (default: the server's 30; 0..180)",
    )
    aug.add_argument(
        "--redraw-implausible",
        action="store_true",
        help="re-draw poses with a joint angle outside the range of motion",
    )
    aug.add_argument(
        "--keypoint-format",
        choices=AUGMENT_OUTPUT_FORMATS,
        default="h36m17",
        help="layout of the output keypoints (default h36m17)",
    )
    aug.add_argument("--model", help="model bundle (default: the server's default)")
    aug.add_argument(
        "--batch-size",
        type=positive_int,
        default=65536,
        metavar="N",
        help="output poses per call or streamed chunk (default 65536)",
    )
    aug.add_argument("--plot", type=Path, metavar="FILE.png", help="draw source vs augmented poses")
    add_html_option(aug)
    aug.add_argument("--progress", action="store_true", help="stream the job with a progress bar")
    aug.set_defaults(handler=run_augment)

    models = commands.add_parser("models", parents=common, help="list the server's models")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(handler=run_models)

    health = commands.add_parser("health", parents=common, help="check the server's health")
    health.add_argument("--service", default="", help="service name (default: the whole server)")
    health.set_defaults(handler=run_health)
    add_view_command(commands)
    return parser


def server_list(args: argparse.Namespace) -> str:
    return ",".join(args.server or [os.environ.get(SERVER_ENV) or DEFAULT_SERVER])


def make_client(args: argparse.Namespace, **options: object) -> PoseAugClient:
    return PoseAugClient(
        server_list(args),
        timeout=args.timeout,
        max_attempts=args.attempts,
        token=args.token,
        token_file=args.token_file,
        tls=args.tls,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_server_name=args.tls_server_name,
        **options,
    )


def run_lift(args: argparse.Namespace) -> int:
    check_output(args.output, (".npz", ".json"))
    check_html(args)
    if args.plot is not None:
        check_output(args.plot, (".png",), "--plot")
        from poseaug_client.plot import require_matplotlib

        require_matplotlib()
    source = read_lift_input(args.input)
    fmt = args.format or ("coco17" if source.coco else "h36m17")
    if source.coco and fmt != "coco17":
        raise CLIError(f"{args.input}: COCO JSON holds coco17 keypoints; drop --format {fmt}")
    joints = KEYPOINT_FORMATS[fmt][1]
    if source.keypoints.shape[1] != joints:
        raise CLIError(
            f"{args.input}: keypoints have {source.keypoints.shape[1]} joints, "
            f"format {fmt} needs {joints} (see --format)"
        )
    if args.image_size is not None or source.image_sizes is None:
        image_size: object = args.image_size
    else:
        image_size = source.image_sizes
    camera: object = args.camera
    if args.fov is not None:
        if image_size is None:
            image_size = DEFAULT_IMAGE_SIZE
        sizes = np.asarray(image_size, dtype=np.int64).reshape(-1, 2)
        fov_cameras = [Camera.from_fov(int(w), int(h), args.fov) for w, h in sizes]
        camera = fov_cameras[0] if len(fov_cameras) == 1 else fov_cameras
    tracks = source.track_ids
    if args.track is not None and (tracks is None or args.track not in tracks):
        raise CLIError(f"--track {args.track}: {args.input} has no such track_id")
    order = frame_order(source)  # each track's frames in time order
    back = np.argsort(order)

    def sent(values: object) -> object:
        if isinstance(values, np.ndarray) and len(values) == len(order):
            return values[order]
        if isinstance(values, list) and len(values) == len(order):
            return [values[i] for i in order]
        return values

    with make_client(args, max_poses_per_call=args.batch_size) as client:
        result = client.lift_result(
            source.keypoints[order],
            fmt,
            sent(image_size),
            sent(source.scores),
            args.model,
            camera=sent(camera),
            track_ids=sent(tracks),
            progress=args.progress,
        )
    poses = result.poses3d[back]
    inferred = None if result.joint_inferred is None else result.joint_inferred[back]
    write_lift_output(args.output, poses, source, inferred)
    lift_html(args, source, fmt, camera, image_size, poses, inferred)
    if args.plot is not None and tracks is not None:
        from poseaug_client.plot import plot_track

        ids, counts = np.unique(tracks, return_counts=True)
        track = args.track if args.track is not None else int(ids[np.argmax(counts)])
        plot_track(args.plot, poses[order][tracks[order] == track], track)
    elif args.plot is not None:
        from poseaug_client.plot import plot_lift

        plot_lift(args.plot, source.keypoints, fmt, poses)
    print(f"lifted {len(poses)} poses -> {args.output}")
    return 0


def augment_camera_of(args: argparse.Namespace) -> Camera | None:
    """Augment's camera from --camera / --fov and --image-size (it needs width and height)."""
    if args.fov is not None:
        width, height = args.image_size or DEFAULT_IMAGE_SIZE
        return Camera.from_fov(width, height, args.fov)
    camera = args.camera
    if camera is None:
        if args.image_size is not None:
            raise CLIError("--image-size goes with --camera or --fov")
        return None
    if args.image_size is not None:
        if camera.width and (camera.width, camera.height) != args.image_size:
            raise CLIError("--camera's W,H and --image-size differ")
        camera = dataclasses.replace(camera, width=args.image_size[0], height=args.image_size[1])
    if not camera.width:
        raise CLIError("--camera needs the image size for augment: FX,FY,CX,CY,W,H or --image-size")
    return camera


def run_augment(args: argparse.Namespace) -> int:
    check_output(args.output, (".npz",))
    check_html(args)
    if args.plot is not None:
        check_output(args.plot, (".png",), "--plot")
        from poseaug_client.plot import require_matplotlib

        require_matplotlib()
    poses = read_poses3d(args.input)
    camera = augment_camera_of(args)
    options = {
        "placement": args.placement,
        "max_tilt_deg": args.max_tilt,
        "redraw_implausible": args.redraw_implausible,
        "keypoint_format": args.keypoint_format,
    }
    with make_client(args, max_poses_per_call=args.batch_size) as client:
        if args.progress:
            result_poses, keypoints, params = concat_augment(
                list(
                    client.augment_stream(
                        poses,
                        args.count,
                        args.ops,
                        args.seed,
                        camera,
                        args.model,
                        chunk_size=min(args.batch_size, MAX_STREAM_CHUNK),
                        progress=True,
                        **options,
                    )
                )
            )
        else:
            result_poses, keypoints, params = client.augment(
                poses, args.count, args.ops, args.seed, camera, args.model, **options
            )
    np.savez(
        args.output,
        pose3d=result_poses,
        keypoints=keypoints,
        keypoint_format=np.asarray(args.keypoint_format),
        source_index=np.repeat(np.arange(len(poses)), args.count),
        seed=np.int64(args.seed),
        ops=np.asarray(args.ops),
        **params,
    )
    augment_html(args, poses, result_poses, keypoints, camera)
    if args.plot is not None:
        from poseaug_client.plot import plot_augment

        plot_augment(args.plot, poses, result_poses, keypoints, args.count)
    print(
        f"augmented {len(poses)} poses x {args.count} -> {len(result_poses)} poses -> {args.output}"
    )
    return 0


def run_models(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        infos = client.models()
    if args.json:
        print(json.dumps([info.to_dict() for info in infos], indent=2))
        return 0
    if not infos:
        print("no models")
        return 0
    print(
        f"{'name':24} {'version':10} {'default':8} {'augmentor':10} {'lifter input':19} providers"
    )
    for info in infos:
        print(
            f"{info.name:24} {info.version:10} {'yes' if info.is_default else '':8} "
            f"{'yes' if info.has_augmentor else 'no':10} {info.lifter_input:19} "
            f"{','.join(info.providers)}"
        )
        for key, value in info.metrics.items():
            print(f"    {key} = {value:g}")
    return 0


def run_health(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        status = client.health(args.service)
    print(status)
    return 0 if status == "SERVING" else 1


def describe_error(error: PoseAugError, args: argparse.Namespace) -> str:
    """One line saying what went wrong and, for connection trouble, where."""
    servers = server_list(args)
    message = " ".join(error.message.split())
    if error.code == grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach server {servers}: {message}"
    if error.code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer from {servers} within {args.timeout:g} s (--timeout): {message}"
    return f"{error.code.name}: {message}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        format="poseaug: %(message)s",
        level=logging.INFO if getattr(args, "verbose", False) else logging.ERROR,
    )
    try:
        return args.handler(args)
    except PoseAugError as error:
        message = describe_error(error, args)
    except CLIError as error:
        message = str(error)
    except OSError as error:
        message = f"{error.filename or ''}: {error.strerror or error}".lstrip(": ")
    except KeyboardInterrupt:
        return 130
    print(f"poseaug: error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
