"""Every knob of a training run, recorded in checkpoints and manifests."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class TrainConfig:
    mode: str = "baseline"  # "baseline" or "poseaug"
    data: str = "../shared/data/h36m"
    out: str = "runs/baseline"
    subjects: list[str] = field(default_factory=lambda: ["S1", "S5", "S6", "S7", "S8"])
    test_subjects: list[str] = field(default_factory=lambda: ["S9", "S11"])
    stride: int = 1
    exclude_actions: list[str] = field(default_factory=list)  # held out (unseen-poses split)
    epochs: int = 50
    batch_size: int = 1024
    lr: float = 1e-3
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"
    estimator: str = "vpose"
    channels: int = 1024
    blocks: int = 4
    dropout: float = 0.25
    init: str | None = None  # checkpoint whose estimator weights start this run
    train_2d: list[str] = field(default_factory=lambda: ["gt"])  # 2D of the source pairs:
    # "gt" (projected ground truth) and/or "sh" (Stacked Hourglass detections, same 3D targets)
    wild: bool = False  # the wild recipe: virtual cameras, detector error, missing joints, rays
    # in (data/wild_pairs.py); needs the camera-aware estimator "vpose_rays"
    # The temporal lifter (estimator "vpose_rays_temporal", data/wild_clips.py): convolution
    # widths (their product is the receptive field in frames), the answered frame of a window
    # ("centre" or "last": causal), and the share of training windows whose future is cut at
    # a random lookahead (the rest repeats the latest frame), so a centred model serves
    # streams that answer with less lookahead.
    filter_widths: list[int] = field(default_factory=lambda: [3, 3, 3])
    anchor: str = "centre"
    future_cut: float = 0.3
    clip_detector_error: str = "track"  # or "independent" (per frame, as before)
    precision: str = "fp32"  # "bf16": the estimator's layers under autocast (fp32 master weights)
    val_stride: int = 50  # frame stride of the per-epoch validation (full eval is separate)
    # --- PoseAug (Algorithm 1); defaults are the official code's (function_poseaug/config.py) ---
    aug_lr: float = 1e-4
    d_lr: float = 1e-4
    warmup_epochs: int = 2  # GAN-only epochs before feedback and augmented pairs for P
    d_every: int = 2  # discriminator update every N steps
    pool_size: int = 4096  # fake-pose history pools (poses)
    hard_ratio_paper: bool = False  # the paper's single beta 2 -> 20 instead of per-op ratios
    hard_ratio_ba: tuple[float, float] | None = None  # (start, end); None: official 3 -> 5
    hard_ratio_bl: tuple[float, float] | None = None  # official: no BL feedback
    hard_ratio_rt: tuple[float, float] | None = None  # None: official 17 -> 17
    w_adv3d: float = 6.0
    w_adv2d: float = 1.0
    w_reg: float = 3.0  # BA angle-change range + BL ratio limit (0.1)
    w_feedback_ba: float = 0.1
    w_feedback_rt: float = 0.01
    ops: list[str] = field(default_factory=lambda: ["ba", "bl", "rt"])  # augmentor ops in use
    # The camera-aware generation's augmentor (poseaug/rotation_translation_op.py): "gravity"
    # RT reads poses in a level camera and only turns them about the vertical and tilts them
    # by at most max_tilt_deg, leaving viewpoint and placement to the virtual camera; "free"
    # is the official RT (any rotation, a learned translation).
    rt_mode: str = "free"
    max_tilt_deg: float = 60.0
    bl_limit: float = 0.2  # BL's hard bound on each group's length change (tanh scale)
    bl_reg_limit: float = 0.1  # BL regularizer: squared change beyond this is penalized
    w_rom: float = 0.0  # weight of the joint range-of-motion penalty on BA's output
    # BA regularizer: the mean per-bone 1 - cos of BA's change kept within centre +- width
    # (official 0.205 +- 0.165, i.e. bones turned by about 16-50 degrees on average)
    ba_range: tuple[float, float] = (0.205, 0.165)
    estimator_updates: str = "mixed"  # how P learns from augmented pairs after the warm-up:
    # "mixed": every step, one update on the source batch plus its augmented pairs weighted by
    # aug_weight; "alternate" (the official code): A and D train through the epoch while its
    # augmented pairs are collected, then P takes one pass over them and one over the source
    aug_weight: float = 0.5  # weight of the augmented pairs in P's loss (source pairs: 1)
    transfer_2d_error: bool = True  # augmented 2D inherit the source's detector error
    max_hardness: float | None = None  # P skips augmented pairs harder than this error ratio;
    # None: the feedback band's upper edge (beta + tolerance) of each op

    def to_dict(self) -> dict:
        return asdict(self)
