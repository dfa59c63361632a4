"""One step of PoseAug's Algorithm 1: update the augmentor A, the discriminators D, the estimator P.

Follows the official implementation (jfzhang95/PoseAug) where the paper is silent:
- A's loss: LSGAN adversarial terms from the part-aware KCS 3D discriminator (on the BA output)
  and the 2D discriminator (on the projected RT output), the BA/BL regularizers, and - after
  the GAN-only warm-up - the error feedback on the BA and RT outputs with per-op hard ratios.
- D is updated every `d_every` steps on fakes drawn through history pools.
- P is updated on source pairs and augmented pairs, by one of two schedules (below).

P's updates after the warm-up follow `estimator_updates`:
- "alternate" is the official schedule: through the epoch only A and D train while the RT
  outputs that stay inside the image are collected; at the epoch's end P takes one pass over
  those augmented pairs, then one pass over the source pairs, so every epoch ends on real data.
  P takes twice the baseline's steps per epoch, as in the official recipe.
- "mixed" (chosen for short budgets): every step P takes one update whose loss adds the
  step's augmented pairs (BA outputs of the first half of the batch, RT outputs of the second)
  weighted by `aug_weight`, and skips pairs harder than the feedback band allows (error ratio
  above beta + tolerance), which the official recipe only discourages through A's loss.
  Without that filter, a short mixed run teaches P on augmentations 30x harder than its source
  error and its accuracy collapses.
Other differences, recorded in the training config: the feedback terms use half of the batch
each (BA on the first half, RT on the second); when the source 2D are detections, the
augmented 2D inherit the source pair's detector error (`transfer_2d_error`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as tdist
from torch import nn

from poseaug_training.data.camera import (
    inside_image,
    normalize_screen,
    points_to_rays,
    project_to_pixels,
)
from poseaug_training.data.pairs import PoseSet
from poseaug_training.data.virtual_cameras import camera_from_level
from poseaug_training.data.wild_clips import ClipBatch, ClipBatcher
from poseaug_training.data.wild_pairs import WildBatcher, encode_rays
from poseaug_training.models import TEMPORAL
from poseaug_training.models.ray_lifter import perspective_normalize
from poseaug_training.poseaug.augmentor import Augmentor, AugmentorOutput
from poseaug_training.poseaug.clip_augment import augment_clip
from poseaug_training.poseaug.history_pool import HistoryPool
from poseaug_training.poseaug.joint_limits import outside_joint_limits, range_of_motion_excess
from poseaug_training.poseaug.kcs_discriminator import KCSDiscriminator
from poseaug_training.poseaug.losses import (
    GeneratorLossWeights,
    feedback_loss,
    feedback_pose_error,
    generator_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    regularizer_terms,
)
from poseaug_training.poseaug.pose2d_discriminator import Pose2DDiscriminator
from poseaug_training.poseaug.schedules import HardRatio, HardRatioSchedule
from poseaug_training.train.trainer import Trainer, linear_decay


class GeneratorState:
    """A torch.Generator with the state_dict interface the checkpoints use."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(
            state["state"].cpu() if hasattr(state["state"], "cpu") else state["state"]
        )


def hard_ratio_schedule(cfg) -> HardRatioSchedule:
    """Official per-op hard ratios by default; --hard-ratio-{ba,bl,rt} override each."""
    base = HardRatioSchedule()
    ops = {}
    for op in ("ba", "bl", "rt"):
        given = getattr(cfg, f"hard_ratio_{op}")
        official = base.ratio(op)
        ops[op] = HardRatio(*given, official.tolerance) if given else official
    if cfg.hard_ratio_paper:
        return HardRatioSchedule.paper()
    return HardRatioSchedule(**ops)


def detector_error(batch: PoseSet) -> torch.Tensor:
    """Source 2D minus the projection of its own 3D: zero for projected ground truth, the
    detector's error for detected 2D. Added to the augmented 2D, it gives augmented pairs the
    input error of the source pairs they came from (the official code always pairs augmented
    3D with clean projections, even when it trains on detections)."""
    pix = project_to_pixels(batch.pose3d + batch.root[:, None], batch.intrinsics)
    return batch.kp2d - normalize_screen(pix, batch.intrinsics)


def shape_2d(points: torch.Tensor) -> torch.Tensor:
    """[N, 17, 2]: the perspective-normalized 2D shape of camera-frame points [N, 17, 3], every
    joint seen: what the wild recipe's 2D discriminator judges (the pose's plausibility as seen
    by this camera, not its place in the image or the detector's noise)."""
    rays = points_to_rays(points)
    kp = encode_rays(rays, torch.ones_like(rays[..., 0], dtype=torch.bool))
    return perspective_normalize(kp)[0][..., :2]


def average_gradients(module: nn.Module) -> None:
    """All-reduce mean of gradients for modules not wrapped in DDP (A and D run several
    forward passes per step, which DDP's reducer does not allow)."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return
    world = tdist.get_world_size()
    for p in module.parameters():
        if p.grad is not None:
            tdist.all_reduce(p.grad)
            p.grad /= world


class PoseAugStep:
    """Callable step for Trainer.fit; owns A, D, their optimizers and the history pools."""

    def __init__(self, trainer: Trainer) -> None:
        cfg = trainer.cfg
        self.t = trainer
        dev = trainer.device
        torch.manual_seed(cfg.seed + 1)
        self.augmentor = Augmentor(
            bl_limit=cfg.bl_limit, rt_mode=cfg.rt_mode, max_tilt_deg=cfg.max_tilt_deg
        ).to(dev)
        self.gravity = cfg.rt_mode == "gravity"
        if self.gravity and not (cfg.wild and cfg.estimator not in TEMPORAL):
            raise ValueError("--rt-mode gravity needs the single-frame wild recipe")
        self.d3d = KCSDiscriminator().to(dev)
        self.d2d = Pose2DDiscriminator().to(dev)
        if trainer.init_extra:  # a run started from a PoseAug run keeps its augmentor and critics
            extra = trainer.init_extra
            for name, module in (
                ("augmentor", self.augmentor),
                ("d3d", self.d3d),
                ("d2d", self.d2d),
            ):
                if name in extra:
                    module.load_state_dict(extra[name])
        if trainer.dist.enabled:  # same initial weights on every rank
            for m in (self.augmentor, self.d3d, self.d2d):
                for p in m.state_dict().values():
                    tdist.broadcast(p, 0)
        self.opt_g = torch.optim.Adam(self.augmentor.parameters(), lr=cfg.aug_lr)
        self.opt_d = torch.optim.Adam(
            list(self.d3d.parameters()) + list(self.d2d.parameters()), lr=cfg.d_lr
        )
        self.sched_g = linear_decay(self.opt_g, trainer.total_steps)
        self.sched_d = linear_decay(self.opt_d, trainer.total_steps)
        self.pool3d = HistoryPool(cfg.pool_size, seed=cfg.seed + 2)
        self.pool2d = HistoryPool(cfg.pool_size, seed=cfg.seed + 3)
        self.noise = GeneratorState(cfg.seed * 7919 + trainer.dist.rank, dev)
        self.schedule = hard_ratio_schedule(cfg)
        # Ops switched off pass their input through (the augmentor's arithmetic mask).
        self.ops = torch.tensor([float(op in cfg.ops) for op in ("ba", "bl", "rt")], device=dev)
        self._hardness: dict[str, torch.Tensor] | None = None  # per-pair error ratios, this step
        self.alternate = cfg.estimator_updates == "alternate"
        # The wild recipe's detector model: augmented 2D get fresh detector error and missing
        # joints like every other synthetic pair (no error transfer from the source).
        self.wild: WildBatcher | ClipBatcher | None = trainer.make_batch if cfg.wild else None
        if self.wild is not None and self.alternate:
            raise ValueError("the wild recipe trains with --estimator-updates mixed")
        self._buffer: list[tuple[torch.Tensor, torch.Tensor]] = []  # this epoch's augmented pairs
        self._frac = 0.0
        self.weights = GeneratorLossWeights(
            adv_2d=cfg.w_adv2d,
            adv_3d=cfg.w_adv3d,
            regularizer=cfg.w_reg,
            feedback_ba=cfg.w_feedback_ba,
            feedback_rt=cfg.w_feedback_rt,
            rom=cfg.w_rom,
        )
        trainer.extra.update(
            augmentor=self.augmentor,
            d3d=self.d3d,
            d2d=self.d2d,
            opt_g=self.opt_g,
            opt_d=self.opt_d,
            sched_g=self.sched_g,
            sched_d=self.sched_d,
            pool3d=self.pool3d,
            pool2d=self.pool2d,
            noise=self.noise,
        )

    def __call__(self, batch: PoseSet, epoch: int, step: int) -> dict[str, float]:
        cfg = self.t.cfg
        warm = epoch < cfg.warmup_epochs
        frac = (epoch + step / self.t.steps_per_epoch) / max(1, cfg.epochs)
        logs: dict[str, float] = {}

        # --- A: augmentor ----------------------------------------------------------------
        self.augmentor.train()
        n = len(batch)
        noise = self.augmentor.sample_noise(n, generator=self.noise.generator)
        out = self._augment(batch, noise)
        pix_ba = project_to_pixels(out.pose_ba + batch.root[:, None], batch.intrinsics)
        pix_rt = project_to_pixels(out.pose_rt, batch.intrinsics)
        if self.wild is not None:  # P sees what a detector would report; D the clean shape
            points_ba, points_rt = out.pose_ba + batch.root[:, None], out.pose_rt
            if isinstance(batch, ClipBatch):  # one set of parameters for the whole clip
                points_ba, points_rt = augment_clip(
                    batch.clip_pose, batch.clip_root, self.wild.anchor_frame, out, self.ops
                )
            kp_ba = self.wild.observe(points_ba, batch.intrinsics)
            kp_rt = self.wild.observe(points_rt, batch.intrinsics)
            view_rt = shape_2d(out.pose_rt)
        else:
            kp_ba = normalize_screen(pix_ba, batch.intrinsics)
            kp_rt = normalize_screen(pix_rt, batch.intrinsics)
            if cfg.transfer_2d_error:
                error = detector_error(batch)
                kp_ba, kp_rt = kp_ba + error, kp_rt + error
            view_rt = kp_rt
        adv3d = lsgan_generator_loss(self.d3d(out.pose_ba))
        adv2d = lsgan_generator_loss(self.d2d(view_rt))
        regs = regularizer_terms(batch.pose3d, out, *cfg.ba_range, bl_limit=cfg.bl_reg_limit)
        if cfg.w_rom:
            regs["rom"] = range_of_motion_excess(out.pose_ba).mean()
        feedback = None
        if not warm:
            feedback = self._feedback(batch, out, kp_ba, kp_rt, pix_rt, frac)
            logs.update({f"feedback_{k}": float(v.detach()) for k, v in feedback.items()})
        loss_g = generator_loss(adv2d, adv3d, regs, feedback, self.weights)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        average_gradients(self.augmentor)
        nn.utils.clip_grad_norm_(self.augmentor.parameters(), cfg.grad_clip)
        self.opt_g.step()
        self.sched_g.step()
        logs.update(
            loss_g=float(loss_g.detach()),
            adv3d_g=float(adv3d.detach()),
            adv2d_g=float(adv2d.detach()),
            reg_ba=float(regs["ba"].detach()),
            reg_bl=float(regs["bl"].detach()),
            outside_rom_ba=float(outside_joint_limits(out.pose_ba.detach()).float().mean()),
        )

        # --- D: discriminators -----------------------------------------------------------
        if step % cfg.d_every == 0:
            fake3d = self.pool3d(out.pose_ba.detach())
            fake2d = self.pool2d(view_rt.detach())
            real2d = (
                batch.kp2d if self.wild is None else shape_2d(batch.pose3d + batch.root[:, None])
            )
            loss_d3d = lsgan_discriminator_loss(self.d3d(batch.pose3d), self.d3d(fake3d))
            loss_d2d = lsgan_discriminator_loss(self.d2d(real2d), self.d2d(fake2d))
            self.opt_d.zero_grad(set_to_none=True)
            (loss_d3d + loss_d2d).backward()
            for m in (self.d3d, self.d2d):
                average_gradients(m)
            nn.utils.clip_grad_norm_(
                list(self.d3d.parameters()) + list(self.d2d.parameters()), cfg.grad_clip
            )
            self.opt_d.step()
            logs.update(loss_d3d=float(loss_d3d.detach()), loss_d2d=float(loss_d2d.detach()))
        self.sched_d.step()

        # --- P: estimator on source and augmented pairs --------------------------------
        if warm:
            logs["loss_pose"] = self.t.estimator_step(batch.kp2d, batch.pose3d)
        elif self.alternate:
            keep = inside_image(pix_rt.detach(), batch.intrinsics)
            pose_rt = out.pose_rt.detach()[keep]
            self._buffer.append((kp_rt.detach()[keep], pose_rt - pose_rt[:, :1]))
            logs["aug_kept"] = float(keep.float().mean())
        else:
            aug_kp, aug_pose = self._augmented_pairs(batch, out, kp_ba, kp_rt, pix_ba, pix_rt)
            logs["loss_pose"], logs["loss_pose_aug"] = self.t.estimator_step_mixed(
                batch.kp2d, batch.pose3d, aug_kp, aug_pose, cfg.aug_weight
            )
            logs["aug_kept"] = len(aug_kp) / len(batch)
        return logs

    def _augment(self, batch: PoseSet, noise: tuple[torch.Tensor, ...]) -> AugmentorOutput:
        """The augmentor on a batch, its poses in the batch's cameras. Gravity mode reads each
        pose in a level camera at the same centre (up = -y, as the service feeds callers'
        poses) and turns the output back into the row's own, possibly tilted, camera."""
        if not self.gravity:
            return self.augmentor(batch.pose3d, batch.root, *noise, ops=self.ops)
        to_cam = camera_from_level(batch.world_to_camera)  # [N, 3, 3]
        to_level = to_cam.transpose(1, 2)
        source = torch.einsum("nij,nkj->nki", to_level, batch.pose3d)
        root = torch.einsum("nij,nj->ni", to_level, batch.root)
        out = self.augmentor(source, root, *noise, ops=self.ops)

        def turn(points: torch.Tensor) -> torch.Tensor:
            return torch.einsum("nij,nkj->nki", to_cam, points)

        return out._replace(
            pose_ba=turn(out.pose_ba), pose_bl=turn(out.pose_bl), pose_rt=turn(out.pose_rt)
        )

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """The official schedule's estimator passes after an epoch of A and D updates: one over
        the epoch's augmented pairs (RT outputs inside the image), then one over the source
        pairs, so each epoch ends on real data."""
        if not self.alternate or epoch < self.t.cfg.warmup_epochs:
            return {}
        kp = torch.cat([k for k, _ in self._buffer])
        pose = torch.cat([p for _, p in self._buffer])
        self._buffer.clear()
        t = self.t
        loss_aug = t.estimator_pass(kp, pose, t.local_batches(len(kp), epoch, salt=1), epoch)
        src = t.batch_indices(epoch, salt=2)
        loss_src = t.estimator_pass(t.train.kp2d, t.train.pose3d, src, epoch)
        return {"loss_pose_aug": loss_aug, "loss_pose": loss_src, "aug_pairs": float(len(kp))}

    def _augmented_pairs(
        self, batch, out, kp_ba, kp_rt, pix_ba, pix_rt
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """P's augmented pairs: BA pairs from the first half of the batch, RT pairs from the
        second, each kept only if inside the image and no harder than the feedback band allows
        (pairs the augmentor made absurdly hard teach P nothing and erase what it knows)."""
        h = len(batch) // 2
        hard = self._hardness
        pose_rt = out.pose_rt.detach()
        keep_ba = inside_image(pix_ba[:h].detach(), batch.intrinsics[:h])
        keep_rt = inside_image(pix_rt[h:].detach(), batch.intrinsics[h:])
        if hard is not None:
            keep_ba &= hard["ba"] <= self._max_ratio("ba")
            keep_rt &= hard["rt"] <= self._max_ratio("rt")
        kp = torch.cat([kp_ba[:h].detach()[keep_ba], kp_rt[h:].detach()[keep_rt]])
        pose = torch.cat(
            [out.pose_ba[:h].detach()[keep_ba], (pose_rt - pose_rt[:, :1])[h:][keep_rt]]
        )
        return kp, pose

    def _max_ratio(self, op: str) -> float:
        if self.t.cfg.max_hardness is not None:
            return self.t.cfg.max_hardness
        ratio = self.schedule.ratio(op)
        return ratio.at(self._frac) + ratio.tolerance

    def _feedback(self, batch, out, kp_ba, kp_rt, pix_rt, frac: float) -> dict[str, torch.Tensor]:
        """Estimator errors on augmented vs source pairs, P frozen and in eval mode."""
        est = self.t.estimator
        est.eval()
        params = list(est.parameters())
        for p in params:
            p.requires_grad_(False)
        try:
            h = len(batch) // 2
            with torch.no_grad():
                err_src = feedback_pose_error(est(batch.kp2d), batch.pose3d)
            err = {
                "ba": feedback_pose_error(est(kp_ba[:h]), out.pose_ba[:h]),
                "rt": feedback_pose_error(est(kp_rt[h:]), out.pose_rt[h:]),
            }
            keep_rt = inside_image(pix_rt[h:].detach(), batch.intrinsics[h:])
            eps = 1e-8
            self._hardness = {
                op: (err[op].detach().mean(-1) / src.mean(-1).clamp_min(eps))
                for op, src in (("ba", err_src[:h]), ("rt", err_src[h:]))
            }
            self._frac = frac
            terms = {}
            for op, src, aug in (
                ("ba", err_src[:h], err["ba"]),
                ("rt", err_src[h:][keep_rt], err["rt"][keep_rt]),
            ):
                if op in self.schedule.feedback_ops and len(aug):
                    ratio = self.schedule.ratio(op)
                    terms[op] = feedback_loss(aug, src, ratio.at(frac), ratio.tolerance)
            return terms
        finally:
            for p in params:
                p.requires_grad_(True)
            est.train()
