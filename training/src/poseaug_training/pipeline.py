"""High-level runs behind the CLI: load data, train, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

from poseaug_training.data.h36m import load_h36m
from poseaug_training.data.pairs import PoseSet, build_pairs
from poseaug_training.train.config import TrainConfig
from poseaug_training.train.distributed import init_distributed, shutdown_distributed
from poseaug_training.train.trainer import Trainer


def train_run(cfg: TrainConfig, stop_after: int | None = None) -> Trainer:
    """Train (resuming from cfg.out/checkpoint.pt when present) and write cfg.out/config.json."""
    dist = init_distributed(cfg.device if cfg.device != "auto" else "cpu")
    try:
        data = load_h36m(
            cfg.data,
            subjects=list(cfg.subjects) + list(cfg.test_subjects),
            with_detections="sh" in cfg.train_2d,
        )
        train = PoseSet.concat(
            [build_pairs(data, cfg.subjects, stride=cfg.stride, source=s) for s in cfg.train_2d]
        )
        val = (
            build_pairs(data, cfg.test_subjects, stride=cfg.val_stride) if cfg.val_stride else None
        )
        trainer = Trainer(cfg, train, val, dist)
        if cfg.mode == "poseaug":
            from poseaug_training.train.poseaug_step import PoseAugStep

            step = PoseAugStep(trainer)
        else:
            step = None
        if trainer.resume_if_possible() and dist.is_main:
            print(
                f"resumed from {trainer.out / 'checkpoint.pt'} at epoch {trainer.epoch}", flush=True
            )
        if dist.is_main:
            trainer.out.mkdir(parents=True, exist_ok=True)
            (trainer.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        trainer.fit(step, stop_after=stop_after)
        return trainer
    finally:
        shutdown_distributed()


def _load_estimator(checkpoint: Path):

    from poseaug_training.models import build_estimator
    from poseaug_training.train.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    cfg = state["config"]
    model = build_estimator(
        cfg["estimator"], channels=cfg["channels"], blocks=cfg["blocks"], dropout=cfg["dropout"]
    )
    model.load_state_dict(state["estimator"])
    model.eval()
    return model, state


def evaluate_run(
    checkpoint: Path,
    data_dir: Path,
    out: Path,
    sources: list[str] | tuple[str, ...] = ("gt", "sh"),
    plots: bool = True,
    subjects: tuple[str, ...] = ("S9", "S11"),
    stride: int = 1,
) -> dict[str, dict]:
    """Protocols 1 and 2 on `subjects` (all cameras, every `stride`-th frame) for each 2D source.

    Writes evaluation.json, evaluation.md and per_joint_error.png into `out`.
    """
    from poseaug_training.data.novel_views import build_novel_view_pairs
    from poseaug_training.evaluation.plots import plot_per_joint_error
    from poseaug_training.evaluation.protocols import evaluate
    from poseaug_training.evaluation.report import markdown_table, write_json

    model, state = _load_estimator(checkpoint)
    data = load_h36m(data_dir, subjects=list(subjects), with_detections="sh" in sources)
    results: dict[str, dict] = {}
    for source in sources:
        if source == "novel":
            pairs = build_novel_view_pairs(data, list(subjects), stride=stride)
        else:
            pairs = build_pairs(data, list(subjects), stride=stride, source=source)
        results[source] = evaluate(model, pairs, progress=True).to_dict()
    out = Path(out)
    meta = {
        "checkpoint": str(checkpoint),
        "test_subjects": list(subjects),
        "frame_stride": stride,
        "cameras": "all 4",
        "sequences_note": "S9/S11 minus S9 'Discussion 1' (missing from the public archive) and "
        "S11 'Directions' (corrupted, dropped by every paper): 57 of the usual 58 sequences",
        "sources": {
            "gt": "ground-truth 3D projected through the calibrated cameras (with distortion)",
            "sh": "Stacked Hourglass detections (MPII-16 mapped to H36M-17)",
            "novel": "unseen virtual viewpoints (steep pitch, any yaw, 3-8 m), seed 0: a proxy for "
            "cross-dataset generalization, since no 3DHP/3DPW data is available here",
        },
        "protocols": {
            "mpjpe_mm": "protocol 1",
            "pa_mpjpe_mm": "protocol 2 (similarity Procrustes)",
        },
        "averaging": "per action, then over the 15 actions",
        "train_config": state["config"],
    }
    write_json(out / "evaluation.json", {"meta": meta, "results": results})
    name = Path(state["config"]["out"]).name
    (out / "evaluation.md").write_text(markdown_table(results, title=f"{name}: S9/S11, mm"))
    if plots and "augmentor" in state.get("extra", {}):
        plot_augmentations(state, data, list(subjects), out / "augmented_pairs.png", name)
    if plots:
        plot_per_joint_error(
            {s: r["per_joint_mm"] for s, r in results.items()},
            out / "per_joint_error.png",
            f"{name}: error per joint on S9/S11",
        )
    return results


def plot_augmentations(
    state: dict, data, subjects: list[str], path: Path, name: str, rows: int = 4
) -> None:
    """Source poses next to their BA-, BL- and RT-augmented versions (like the paper's Fig. S2)."""
    import torch

    from poseaug_training.evaluation.plots import plot_augmented_pairs
    from poseaug_training.poseaug.augmentor import Augmentor

    aug = Augmentor.from_state_dict(state["extra"]["augmentor"]).eval()
    pairs = build_pairs(data, subjects, stride=997)
    pick = torch.linspace(0, len(pairs) - 1, rows).long()
    src = pairs.pose3d[pick]
    gen = torch.Generator().manual_seed(0)
    noise = aug.sample_noise(rows, generator=gen)
    panels = {}
    with torch.no_grad():
        for label, ops in (
            ("BA", [1.0, 0, 0]),
            ("BL", [0, 1.0, 0]),
            ("RT", [0, 0, 1.0]),
            ("BA+BL+RT", [1.0, 1, 1]),
        ):
            out = aug(src, pairs.root[pick], *noise, torch.tensor(ops))
            panels[label] = out.pose_rt.numpy()
    plot_augmented_pairs(src.numpy(), panels, path, f"{name}: source (blue) vs augmented (red)")
