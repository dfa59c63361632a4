"""Training step throughput: a baseline step vs a full PoseAug step on the same batch size.

Prints samples/s of each, their ratio (target: PoseAug step <= 3x the baseline step) and the
share of step time spent fetching the batch from the resident tensors (target < 5%).
Synthetic poses (no dataset needed); the model is the default VPose 1f unless told otherwise.
`--wild` measures the wild recipe instead: the camera-aware lifter, with every batch drawn
through virtual cameras, detector error and missing joints (the fetch share includes that).
`--precision bf16` runs the estimator under autocast; `--threads` sets torch's CPU threads.

    python bench/train_step.py [--batch-size 1024] [--steps 10] [--device cpu|cuda]
        [--channels 1024] [--precision fp32|bf16] [--threads N] [--wild]
"""

from __future__ import annotations

import argparse
import time

import torch

from poseaug_training.data.detector_noise import SWAP_PAIRS, DetectorErrorModel
from poseaug_training.data.pairs import PoseSet
from poseaug_training.data.virtual_cameras import LEVEL_FROM_WORLD
from poseaug_training.data.wild_pairs import WildBatcher, WildSource
from poseaug_training.train.config import TrainConfig
from poseaug_training.train.distributed import DistInfo
from poseaug_training.train.poseaug_step import PoseAugStep
from poseaug_training.train.trainer import Trainer


def synthetic_rows(n: int) -> WildSource:
    """Rows for the wild recipe: the synthetic poses as world poses and a level camera."""
    pairs = synthetic_pairs(n)
    cam = pairs.pose3d
    return WildSource(
        world=cam[..., [0, 2, 1]] * torch.tensor([1.0, 1.0, -1.0]),
        cam_pose=cam,
        cam_root=pairs.root,
        cam_intrinsics=pairs.intrinsics,
        cam_rotation=LEVEL_FROM_WORLD.float().expand(n, 3, 3).clone(),
        det_rays=(cam + pairs.root[:, None])[..., :2] / (cam + pairs.root[:, None])[..., 2:],
        has_det=torch.ones(n, dtype=torch.bool),
        action=pairs.action,
        subject=pairs.subject,
        actions=pairs.actions,
        subjects=pairs.subjects,
    )


def flat_error_model() -> DetectorErrorModel:
    """A detector error model of typical size (the real one is fitted to licensed data)."""
    return DetectorErrorModel(
        bias=[[0.0, 0.0]] * 17,
        cov=[[[6e-4, 0.0], [0.0, 6e-4]]] * 17,
        outlier_rate=[0.03] * 17,
        outlier_log_mean=[-1.2] * 17,
        outlier_log_std=[0.5] * 17,
        swap_rate=[0.005] * len(SWAP_PAIRS),
        frames=0,
    )


def synthetic_pairs(n: int) -> PoseSet:
    g = torch.Generator().manual_seed(0)
    pose3d = torch.randn(n, 17, 3, generator=g) * 0.25
    pose3d[:, 0] = 0
    root = torch.tensor([0.0, 0.0, 5.0]).repeat(n, 1)
    intr = torch.tensor([1145.0, 1144.0, 512.5, 515.5, 0, 0, 0, 0, 0, 1000, 1002]).repeat(n, 1)
    kp2d = (pose3d[..., :2] + root[:, None, :2]) / (pose3d[..., 2:] + 5.0) * 2.29
    return PoseSet(
        pose3d,
        root,
        kp2d,
        intr,
        torch.zeros(n, dtype=torch.long),
        torch.zeros(n, dtype=torch.long),
        ["Synthetic"],
        ["S0"],
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(trainer: Trainer, step, steps: int, epoch: int) -> tuple[float, float]:
    """(seconds per step, seconds per step spent selecting the batch)."""
    index = trainer.batch_indices(0).to(trainer.device)
    fetch = 0.0
    sync(trainer.device)
    start = time.perf_counter()
    for s in range(steps):
        t0 = time.perf_counter()
        batch = trainer.train.select(index[s % len(index)])
        if trainer.make_batch is not None:
            batch = trainer.make_batch(batch)
        sync(trainer.device)
        fetch += time.perf_counter() - t0
        step(batch, epoch, s)
    sync(trainer.device)
    return (time.perf_counter() - start) / steps, fetch / steps


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--channels", type=int, default=1024)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--wild", action="store_true", help="the wild recipe's lifter and batches")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(
        batch_size=args.batch_size,
        epochs=2,
        warmup_epochs=1,
        device=args.device,
        channels=args.channels,
        precision=args.precision,
        wild=args.wild,
        estimator="vpose_rays" if args.wild else "vpose",
        out="/tmp/poseaug-bench",
        val_stride=0,
    )
    n = args.batch_size * (args.steps + 2)
    train = synthetic_rows(n) if args.wild else synthetic_pairs(n)
    trainer = Trainer(cfg, train, None, DistInfo())
    trainer.writer = None
    if args.wild:
        trainer.make_batch = WildBatcher(flat_error_model())
    pa = PoseAugStep(trainer)
    time_steps(trainer, trainer.baseline_step, 2, 0)  # warm up kernels
    time_steps(trainer, pa, 2, 1)
    base_s, base_fetch = time_steps(trainer, trainer.baseline_step, args.steps, 0)
    pa_s, pa_fetch = time_steps(trainer, pa, args.steps, 1)  # epoch 1: past warm-up, every part
    b = args.batch_size
    print(
        f"device {trainer.device}, batch {b}, torch threads {torch.get_num_threads()}, "
        f"channels {args.channels}, {args.precision}{', wild recipe' if args.wild else ''}"
    )
    print(f"baseline step : {b / base_s:10.0f} samples/s  ({base_s * 1000:.1f} ms/step)")
    print(f"PoseAug step  : {b / pa_s:10.0f} samples/s  ({pa_s * 1000:.1f} ms/step)")
    print(f"PoseAug / baseline step time: {pa_s / base_s:.2f}x (target <= 3x)")
    print(
        f"batch fetch share: baseline {base_fetch / base_s:.2%}, "
        f"PoseAug {pa_fetch / pa_s:.2%} (target < 5%)"
    )


if __name__ == "__main__":
    main()
