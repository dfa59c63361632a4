"""What Augment's output is worth to a caller: a small lifter trained on S1 with and without it.

A caller with Human3.6M-like data (here S1, every `--stride`-th frame, its four cameras) trains
their own lifter; this bench trains the same small lifter (a 2 x 1024 MLP on root-centred
camera rays, the caller's camera known) twice with the same steps and seed:
- on the source pairs alone;
- on the source pairs plus `--count` augmentations of each source pose from a running server
  (`Augment` with the server's defaults: the body placed in the caller's camera view, RT at
  most 30 degrees from upright), each projected through the camera the source came from.
Both are tested on S9/S11 through Human3.6M's cameras (projected ground truth, every
`--test-stride`-th frame) and on the unseen-camera test of `poseaug-train wild-eval`
(evaluation/wild_tests.py: virtual cameras wider than training, the detector error model).
Prints MPJPE / PA-MPJPE per test and the relative change.

    .venv/bin/python bench/augment_value.py [--data ../shared/data/h36m] [--model NAME]
        [--count 4] [--epochs 20] [--threads 2] [--placement in_view|learned]
        [--max-tilt DEG] [--out docs/results/augment_value.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from poseaug_client import Camera, PoseAugClient  # noqa: E402
from poseaug_training.data.detector_noise import fit_to_h36m  # noqa: E402
from poseaug_training.data.h36m import load_h36m  # noqa: E402
from poseaug_training.evaluation.metrics import mpjpe, pa_mpjpe  # noqa: E402
from poseaug_training.evaluation.wild_tests import unseen_test  # noqa: E402
from tests.support.server import running_server  # noqa: E402

TRAIN, TEST = ["S1"], ["S9", "S11"]


def lifter_input(rays: np.ndarray) -> torch.Tensor:
    """Rays [N, 17, 2] centred on the root's ray: the small lifter's input [N, 34]."""
    centred = rays - rays[:, :1]
    return torch.from_numpy(centred.reshape(len(rays), -1).astype(np.float32))


def pinhole(cam) -> Camera:
    """The camera as a caller states it (no distortion: rays are made with the same one)."""
    return Camera(*cam.f, *cam.c, width=int(cam.width), height=int(cam.height))


def rays_of(pixels: np.ndarray, camera: Camera) -> np.ndarray:
    return (pixels - [camera.cx, camera.cy]) / [camera.fx, camera.fy]


def source_pairs(data, stride: int) -> list[tuple[Camera, np.ndarray]]:
    """(camera, camera-frame poses [n, 17, 3]) per S1 camera."""
    per_camera: dict[str, list[np.ndarray]] = {}
    cams = {c.camera_id: c for c in data.cameras["S1"]}
    for _, seq in data.sequences(TRAIN):
        world = data.poses_world[("S1", seq)][::stride]
        for cid, cam in cams.items():
            per_camera.setdefault(cid, []).append(cam.world_to_camera(world))
    return [(pinhole(cams[cid]), np.concatenate(p)) for cid, p in per_camera.items()]


def training_set(pairs, client: PoseAugClient | None, count: int, seed: int, **options):
    """(inputs, root-relative targets) of the source pairs, plus Augment's when a client (its
    `options`: model, placement, max_tilt_deg). Rows with a joint outside the image are dropped,
    as a caller would (none are with the default placement)."""
    xs, ys = [], []
    for camera, poses in pairs:
        xs.append(lifter_input(poses[..., :2] / poses[..., 2:]))
        ys.append(torch.from_numpy(poses - poses[:, :1]))
        if client is not None:
            out = client.augment(poses, count, seed=seed, camera=camera, **options)
            pix = out.keypoints2d.astype(np.float64)
            keep = ((pix >= 0) & (pix <= [camera.width, camera.height])).all(axis=(1, 2))
            xs.append(lifter_input(rays_of(pix[keep], camera)))
            ys.append(torch.from_numpy(out.poses3d[keep] - out.poses3d[keep, :1]))
    return torch.cat(xs), torch.cat(ys).float()


def train(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(34, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 51)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    steps = epochs * (len(x) // 256)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x) - 255, 256):
            idx = order[i : i + 256]
            loss = (net(x[idx]).view(-1, 17, 3) - y[idx]).norm(dim=-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


def score(net: nn.Module, rays: np.ndarray, target: np.ndarray) -> dict[str, float]:
    with torch.no_grad():
        pred = net(lifter_input(rays)).view(-1, 17, 3)
    pred = pred - pred[:, :1]
    t = torch.from_numpy(target).float()
    return {
        "mpjpe_mm": float(mpjpe(pred, t).mean() * 1000),
        "pa_mpjpe_mm": float(pa_mpjpe(pred, t).mean() * 1000),
    }


def tests(data, test_stride: int, unseen_stride: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (rays [N, 17, 2], root-relative target [N, 17, 3])."""
    rays, targets = [], []
    for subject, seq in data.sequences(TEST):
        world = data.poses_world[(subject, seq)][::test_stride]
        for cam in data.cameras[subject]:
            p = cam.world_to_camera(world).astype(np.float64)
            rays.append(p[..., :2] / p[..., 2:])
            targets.append(p - p[:, :1])
    unseen = unseen_test(data, TEST, fit_to_h36m(data, ["S1"]), unseen_stride)
    intr = unseen.intrinsics
    unseen_rays = (unseen.pixels - intr[:, None, 2:4]) / intr[:, None, 0:2]
    return {
        "h36m_s9_s11": (np.concatenate(rays), np.concatenate(targets)),
        "unseen_cameras": (unseen_rays, unseen.target),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "h36m")
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--model", default=None, help="bundle whose augmentor (default: default)")
    parser.add_argument("--stride", type=int, default=10, help="S1 frame stride")
    parser.add_argument("--count", type=int, default=4, help="augmentations per source pose")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-stride", type=int, default=10)
    parser.add_argument("--unseen-stride", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--placement", default="in_view", help="Augment's placement option")
    parser.add_argument("--max-tilt", type=float, default=None, help="max_tilt_deg (server's)")
    parser.add_argument("--out", type=Path, default=None, help="also write markdown + JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_h36m(args.data, subjects=TRAIN + TEST, with_detections=True)
    pairs = source_pairs(data, args.stride)
    test_sets = tests(data, args.test_stride, args.unseen_stride)
    results: dict[str, dict] = {}
    started = time.perf_counter()
    with running_server(args.models) as server, PoseAugClient(server.address) as client:
        model = args.model or next(m.name for m in client.models() if m.is_default)
        for name, source in (("source only", None), (f"source + {args.count}x Augment", client)):
            options = dict(model=model, placement=args.placement, max_tilt_deg=args.max_tilt)
            x, y = training_set(pairs, source, args.count, args.seed, **options)
            net = train(x, y, args.epochs, args.seed)
            results[name] = {"pairs": len(x)} | {
                test: score(net, *test_sets[test]) for test in test_sets
            }
    names = list(results)
    lines = [
        f"A 2 x 1024 MLP on root-centred rays, trained on S1 (every {args.stride}th frame, 4 "
        f"cameras) for {args.epochs} epochs, seed {args.seed}, with and without {args.count} "
        f"`Augment` outputs per source pose from `{model}` (placement {args.placement}, "
        f"max_tilt_deg {args.max_tilt if args.max_tilt is not None else 'the default'}); "
        f"`bench/augment_value.py`, {time.perf_counter() - started:.0f} s.",
        "",
        "| test (MPJPE / PA-MPJPE mm) | " + " | ".join(names) + " | change |",
        "|---|---:|---:|---:|",
    ]
    for test in test_sets:
        a, b = (results[n][test] for n in names)
        change = (b["mpjpe_mm"] - a["mpjpe_mm"]) / a["mpjpe_mm"]
        lines.append(
            f"| {test} | {a['mpjpe_mm']:.1f} / {a['pa_mpjpe_mm']:.1f} | "
            f"{b['mpjpe_mm']:.1f} / {b['pa_mpjpe_mm']:.1f} | {change:+.1%} |"
        )
    lines.append(
        f"| training pairs | {results[names[0]]['pairs']} | {results[names[1]]['pairs']} | |"
    )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps({"model": model, **results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
