"""Is Augment's output usable as it comes? Every shipped augmentor, through a real server.

For each bundle with an augmentor in models/, 4 augmentations of Human3.6M S9/S11 poses (camera
frame, spread over every sequence and camera) are asked per operation (BA, BL, RT alone and all
three), with the server's defaults, with redraw_implausible, and with the behaviour before
placement and tilt bound existed (learned placement, max_tilt_deg 180), through two cameras:
1000 x 1000 with fx = fy = 1145, and 1920 x 1080 with fx = fy = 1500. Printed per row:
- in frame: share of poses with all 17 joints inside the image;
- size: the smallest and largest share of the image a body's box fills (placement: 20-90%);
- depth: the root's depth, 5th to 95th percentile;
- tilt > 90 / > 60: share of bodies whose torso is that far from the camera's up direction;
- outside ROM: share the server flags as outside the joint limits (poseaug_client.plausibility);
- knee < 60: share of knees whose inner angle is under 60 degrees (source poses: printed too).

    .venv/bin/python bench/augment_plausibility.py [--data ../shared/data/h36m] [--poses 752]
        [--models models] [--out docs/results/augment_plausibility.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from poseaug_client import Camera, PoseAugClient  # noqa: E402
from poseaug_client.plausibility import joint_angles, tilt_from_upright  # noqa: E402
from poseaug_service.bundle import find_bundle_dirs  # noqa: E402
from tests.support.server import running_server  # noqa: E402

CAMERAS = {
    "1000x1000 f1145": Camera(1145.0, 1145.0, 500.0, 500.0, 1000, 1000),
    "1920x1080 f1500": Camera(1500.0, 1500.0, 960.0, 540.0, 1920, 1080),
}
OPS = {"BA": "ba", "BL": "bl", "RT": "rt", "all": "ba,bl,rt"}
SETTINGS = {
    "defaults": {},
    "defaults + redraw_implausible": {"redraw_implausible": True},
    "before (learned placement, no tilt bound)": {"placement": "learned", "max_tilt_deg": 180},
}


def h36m_poses(data: Path, count: int) -> np.ndarray:
    """`count` S9/S11 poses in their Human3.6M cameras' frames, evenly spread (metres)."""
    sys.path.insert(0, str(REPO / "training" / "src"))
    from poseaug_training.data.h36m import load_h36m

    h36m = load_h36m(data, subjects=["S9", "S11"])
    rows = []
    for subject, seq in h36m.sequences(["S9", "S11"]):
        world = h36m.poses_world[(subject, seq)]
        for cam in h36m.cameras[subject]:
            rows.append(cam.world_to_camera(world[:: max(1, len(world) // 8)]))
    poses = np.concatenate(rows)
    pick = np.linspace(0, len(poses) - 1, count).round().astype(int)
    return poses[pick].astype(np.float32)


def knee_share_under(poses: np.ndarray, inner_deg: float = 60.0) -> float:
    angles = joint_angles(poses)
    flex = np.stack([angles["left_knee_flexion"], angles["right_knee_flexion"]])
    return float((180.0 - flex < inner_deg).mean())


def measure(result, camera: Camera) -> dict[str, float]:
    pix = result.keypoints2d
    inside = ((pix >= 0) & (pix <= [camera.width, camera.height])).all(axis=(1, 2))
    span = (pix.max(axis=1) - pix.min(axis=1)) / [camera.width, camera.height]
    size = span.max(axis=1)
    tilt = tilt_from_upright(result.poses3d)
    depth = result.poses3d[:, 0, 2]
    return {
        "in_frame": float(inside.mean()),
        "size_min": float(size.min()),
        "size_max": float(size.max()),
        "depth_p5": float(np.percentile(depth, 5)),
        "depth_p95": float(np.percentile(depth, 95)),
        "tilt_over_90": float((tilt > 90).mean()),
        "tilt_over_60": float((tilt > 60).mean()),
        "outside_rom": float(result.outside_joint_limits.mean()),
        "knee_under_60": knee_share_under(result.poses3d),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "h36m")
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--poses", type=int, default=752)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help="also write markdown + JSON here")
    args = parser.parse_args()
    poses = h36m_poses(args.data, args.poses)
    source = {
        "tilt_over_90": float((tilt_from_upright(poses) > 90).mean()),
        "tilt_over_60": float((tilt_from_upright(poses) > 60).mean()),
        "knee_under_60": knee_share_under(poses),
    }
    bundles = [
        d.name
        for d in find_bundle_dirs(args.models)
        if json.loads((d / "manifest.json").read_text()).get("augmentor")
    ]
    rows = []
    with running_server(args.models) as server, PoseAugClient(server.address) as client:
        for bundle in bundles:
            for setting, options in SETTINGS.items():
                for op_name, ops in OPS.items():
                    for cam_name, camera in CAMERAS.items():
                        result = client.augment(
                            poses, args.count, ops, seed=0, camera=camera, model=bundle, **options
                        )
                        rows.append(
                            {
                                "bundle": bundle,
                                "setting": setting,
                                "ops": op_name,
                                "camera": cam_name,
                                **measure(result, camera),
                            }
                        )
    header = (
        "| bundle | setting | ops | camera | in frame | size | depth m (p5-p95) | tilt > 90 | "
        "tilt > 60 | outside ROM | knee < 60 |\n|---|---|---|---|---:|---|---|---:|---:|---:|---:|"
    )
    lines = [
        f"{args.poses} S9/S11 poses x {args.count}, seed 0 (`bench/augment_plausibility.py`). "
        f"Source poses: tilt > 90 {source['tilt_over_90']:.1%}, tilt > 60 "
        f"{source['tilt_over_60']:.1%}, knee < 60 {source['knee_under_60']:.1%}.",
        "",
        header,
    ]
    for r in rows:
        lines.append(
            f"| {r['bundle']} | {r['setting']} | {r['ops']} | {r['camera']} | "
            f"{r['in_frame']:.1%} | "
            f"{r['size_min']:.2f}-{r['size_max']:.2f} | {r['depth_p5']:.1f}-{r['depth_p95']:.1f} | "
            f"{r['tilt_over_90']:.1%} | {r['tilt_over_60']:.1%} | {r['outside_rom']:.1%} | "
            f"{r['knee_under_60']:.1%} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(
            json.dumps({"source": source, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
