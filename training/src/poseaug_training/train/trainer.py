"""The epoch loop shared by baseline and PoseAug training.

Data stays resident on the device; each step is one index into it. Every epoch ends with a
small validation, TensorBoard scalars and an atomic checkpoint, so a killed run resumes where
it stopped and ends with the same weights (on CPU, fixed seed) as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from poseaug_training.data.pairs import PoseSet
from poseaug_training.data.wild_pairs import WildSource
from poseaug_training.evaluation.metrics import mpjpe
from poseaug_training.evaluation.protocols import evaluate
from poseaug_training.models import TEMPORAL, build_estimator, estimator_options
from poseaug_training.train.bundle_init import checkpoint_from_bundle, is_bundle
from poseaug_training.train.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from poseaug_training.train.config import TrainConfig
from poseaug_training.train.distributed import DistInfo

CHECKPOINT = "checkpoint.pt"


def resolve_device(requested: str, dist: DistInfo) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda requested but CUDA is not available")
        return torch.device(
            "cuda", dist.local_rank if dist.enabled else torch.cuda.current_device()
        )
    return torch.device(requested)


def hardware_summary(device: torch.device, dist: DistInfo) -> dict[str, Any]:
    info = {
        "device": str(device),
        "processes": dist.world_size,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


class Trainer:
    """Owns the estimator, its optimizer and the loop; PoseAug plugs in its own step."""

    def __init__(
        self, cfg: TrainConfig, train: PoseSet | WildSource, val: PoseSet | None, dist: DistInfo
    ) -> None:
        self.cfg = cfg
        self.dist = dist
        self.device = resolve_device(cfg.device, dist)
        self.out = Path(cfg.out)
        torch.manual_seed(cfg.seed)
        self.train = train.to(self.device)
        self.val = val
        if cfg.wild != (cfg.estimator in ("vpose_rays", *TEMPORAL)):
            raise ValueError("the wild recipe and the vpose_rays estimators go together")
        self.estimator = build_estimator(cfg.estimator, **estimator_options(cfg.to_dict())).to(
            self.device
        )
        if cfg.precision == "bf16":
            self.estimator.autocast_dtype = torch.bfloat16
        elif cfg.precision != "fp32":
            raise ValueError(f"precision must be fp32 or bf16, got {cfg.precision!r}")
        # Rows of `train` -> a PoseSet batch; the wild recipe draws cameras, detector error and
        # missing joints here, every step.
        self.make_batch: Callable[[Any], PoseSet] | None = None
        self.lineage: list[dict[str, Any]] = []
        # The init run's other module states (PoseAug's augmentor and critics), read once here.
        self.init_extra: dict[str, Any] = {}
        if cfg.init:
            # A bundle directory when its run's checkpoint is not at hand (see bundle_init).
            init = (checkpoint_from_bundle if is_bundle(cfg.init) else load_checkpoint)(cfg.init)
            self.init_extra = init.get("extra", {})
            if cfg.estimator in TEMPORAL and _smaller_window(init["config"], cfg):
                self.estimator.from_smaller_window(init["estimator"])
            else:
                self.estimator.load_state_dict(init["estimator"])
            self.lineage = [*init.get("lineage", []), summarize_run(init)]
        self.model: nn.Module = (
            DistributedDataParallel(self.estimator) if dist.enabled else self.estimator
        )
        self.optimizer = torch.optim.Adam(self.estimator.parameters(), lr=cfg.lr)
        per_rank = cfg.batch_size // dist.world_size
        if per_rank < 2:
            raise ValueError("batch size too small for the number of processes")
        self.steps_per_epoch = len(train) // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"{len(train)} training pairs are fewer than one batch of {cfg.batch_size}"
            )
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.scheduler = linear_decay(self.optimizer, self.total_steps)
        self.epoch = 0
        self.global_step = 0
        self.wall_time_s = 0.0
        self.history: list[dict[str, float]] = []
        self.extra: dict[str, Any] = {}  # PoseAug keeps its modules' states here
        self.writer = SummaryWriter(str(self.out / "tb")) if dist.is_main else None

    # --- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "wall_time_s": self.wall_time_s,
            "history": self.history,
            "hardware": hardware_summary(self.device, self.dist),
            "lineage": self.lineage,
            "estimator": self.estimator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "extra": {k: v.state_dict() for k, v in self.extra.items()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.epoch = state["epoch"]
        self.global_step = state["global_step"]
        self.wall_time_s = state["wall_time_s"]
        self.history = state["history"]
        self.lineage = state.get("lineage", self.lineage)  # as it was, whatever --init holds now
        self.estimator.load_state_dict(state["estimator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for k, v in self.extra.items():
            v.load_state_dict(state["extra"][k])
        set_rng_state(state["rng"])

    def resume_if_possible(self) -> bool:
        path = self.out / CHECKPOINT
        if not path.is_file():
            return False
        self.load_state(load_checkpoint(path, self.device))
        return True

    # --- the loop ----------------------------------------------------------------------------
    def batch_indices(self, epoch: int, salt: int = 0) -> torch.Tensor:
        """This epoch's permutation; each rank takes its interleaved share of every batch.
        `salt` gives further independent shuffles of the same epoch (extra passes)."""
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch + 7919 * salt)
        perm = torch.randperm(len(self.train), generator=gen)
        b = self.cfg.batch_size
        perm = perm[: self.steps_per_epoch * b].view(self.steps_per_epoch, b)
        return perm[:, self.dist.rank :: self.dist.world_size]

    def estimator_step(self, kp2d: torch.Tensor, pose3d: torch.Tensor) -> float:
        """One supervised update of the estimator (MPJPE loss, clipped gradients)."""
        loss = mpjpe(self.model(kp2d), pose3d).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.estimator.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        return float(loss.detach())

    def estimator_step_mixed(
        self,
        kp2d: torch.Tensor,
        pose3d: torch.Tensor,
        aug_kp: torch.Tensor,
        aug_pose: torch.Tensor,
        aug_weight: float,
    ) -> tuple[float, float]:
        """One update on source pairs plus weighted augmented pairs (one forward, one step).

        A single step with a weighted sum keeps the augmented share of the update fixed, which
        two Adam steps (whose size ignores the loss scale) would not."""
        n = len(kp2d)
        pred = self.model(torch.cat([kp2d, aug_kp]))
        loss_src = mpjpe(pred[:n], pose3d).mean()
        loss_aug = mpjpe(pred[n:], aug_pose).mean() if len(aug_kp) else pred.sum() * 0.0
        loss = loss_src + aug_weight * loss_aug
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.estimator.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        return float(loss_src.detach()), float(loss_aug.detach())

    def local_batches(self, n: int, epoch: int, salt: int) -> torch.Tensor:
        """[steps, per-rank batch] shuffled indices into n pairs held by this rank alone (e.g.
        its augmented pairs); every rank gets the smallest rank's number of steps, as DDP
        needs."""
        per_rank = self.cfg.batch_size // self.dist.world_size
        steps = n // per_rank
        if self.dist.enabled:
            count = torch.tensor([steps], device=self.device)
            tdist.all_reduce(count, op=tdist.ReduceOp.MIN)
            steps = int(count)
        gen = torch.Generator().manual_seed(
            (self.cfg.seed * 1_000_003 + epoch) * 31 + 7919 * salt + self.dist.rank
        )
        return torch.randperm(n, generator=gen)[: steps * per_rank].view(steps, per_rank)

    def estimator_pass(
        self, kp2d: torch.Tensor, pose3d: torch.Tensor, batches: torch.Tensor, epoch: int
    ) -> float:
        """Estimator updates over `batches` (rows of indices into kp2d/pose3d), at learning
        rates falling through this epoch's share of the linear decay, the range the epoch's
        own steps covered. Returns the mean loss (0 when there are no batches)."""
        steps = len(batches)
        decay = self.scheduler.lr_lambdas[0]  # linear_decay's factor at a (fractional) step
        total = 0.0
        batches = batches.to(kp2d.device)
        for j in range(steps):
            factor = decay((epoch + j / steps) * self.steps_per_epoch)
            for group, lr in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
                group["lr"] = lr * factor
            idx = batches[j]
            total += self.estimator_step(kp2d[idx], pose3d[idx])
        last = self.scheduler.get_last_lr()
        for group, lr in zip(self.optimizer.param_groups, last, strict=True):
            group["lr"] = lr
        return total / max(1, steps)

    def fit(
        self,
        step: Callable[[PoseSet, int, int], dict[str, float]] | None = None,
        stop_after: int | None = None,
    ) -> None:
        """Train until cfg.epochs (or `stop_after` more epochs, to simulate a kill in tests)."""
        step = step or self.baseline_step
        done_now = 0
        while self.epoch < self.cfg.epochs:
            start = time.perf_counter()
            index = self.batch_indices(self.epoch).to(self.device)
            sums: dict[str, float] = {}
            bar = tqdm(
                range(self.steps_per_epoch),
                desc=f"{self.cfg.mode} epoch {self.epoch + 1}/{self.cfg.epochs}",
                disable=not self.dist.is_main,
                leave=False,
            )
            for s in bar:
                batch = self.train.select(index[s])
                if self.make_batch is not None:
                    batch = self.make_batch(batch)
                logs = step(batch, self.epoch, s)
                self.scheduler.step()
                self.global_step += 1
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                if self.writer is not None and self.global_step % 20 == 0:
                    for k, v in logs.items():
                        self.writer.add_scalar(f"train/{k}", v, self.global_step)
                    self.writer.add_scalar(
                        "train/lr", self.scheduler.get_last_lr()[0], self.global_step
                    )
                if "loss_pose" in logs:  # absent from A/D-only steps (alternate schedule)
                    bar.set_postfix(loss=f"{logs['loss_pose'] * 1000:.1f}mm")
            record = {k: v / self.steps_per_epoch for k, v in sums.items()}
            end_epoch = getattr(step, "end_epoch", None)
            if end_epoch is not None:  # e.g. PoseAug's estimator passes of the official schedule
                record.update(end_epoch(self.epoch))
            self.epoch += 1
            self.wall_time_s += time.perf_counter() - start
            record["epoch"] = self.epoch
            if self.val is not None and self.dist.is_main:
                record["val_mpjpe_mm"] = evaluate(self.estimator, self.val).mpjpe_mm
                self.writer.add_scalar("val/mpjpe_mm", record["val_mpjpe_mm"], self.epoch)
            self.history.append(record)
            if self.dist.is_main:
                save_checkpoint(self.out / CHECKPOINT, self.state())
                print(json.dumps(record), flush=True)
            done_now += 1
            if stop_after is not None and done_now >= stop_after:
                break
        if self.writer is not None:
            self.writer.flush()

    def baseline_step(self, batch: PoseSet, epoch: int, step: int) -> dict[str, float]:
        return {"loss_pose": self.estimator_step(batch.kp2d, batch.pose3d)}


def _smaller_window(init: dict[str, Any], cfg: TrainConfig) -> bool:
    """Whether the init run's lifter sees fewer frames than this run's temporal one (and so
    is widened into it; a widened lifter keeps its anchor)."""
    if init["estimator"] not in TEMPORAL:
        return True
    if math.prod(init["filter_widths"]) >= math.prod(cfg.filter_widths):
        return False
    if init.get("anchor", "centre") != cfg.anchor:
        raise ValueError(f"init anchor {init.get('anchor')!r} differs from --anchor {cfg.anchor!r}")
    return True


def summarize_run(state: dict[str, Any]) -> dict[str, Any]:
    """What a manifest needs to know about a run this one started from."""
    cfg = state["config"]
    return {
        "mode": cfg["mode"],
        "subjects": cfg["subjects"],
        "stride": cfg["stride"],
        "epochs": state["epoch"],
        "steps": state["global_step"],
        "batch_size": cfg["batch_size"],
        "lr": cfg["lr"],
        "seed": cfg["seed"],
        "wall_time_s": round(state["wall_time_s"], 1),
        "hardware": state.get("hardware", {}),
        **({"bundle": state["bundle"]} if "bundle" in state else {}),  # started from a bundle
    }


def linear_decay(
    optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate falling linearly from its initial value towards zero at the last step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: max(0.0, 1.0 - s / max(1, total_steps))
    )
