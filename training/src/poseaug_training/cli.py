"""`poseaug-train {baseline,poseaug,eval,export}`: the whole training workflow from one command.

Runs alone or under `torchrun --nproc_per_node=N` (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from poseaug_training.data.wild_clips import CLIP_DETECTOR_ERROR
from poseaug_training.models import ESTIMATORS
from poseaug_training.models.temporal_ray_lifter import ANCHORS
from poseaug_training.train.config import TrainConfig

DEFAULT_DATA = "../shared/data/h36m"
# wild-eval's tests (pipeline.TEST_NAMES; temporal-eval runs the first three as sequences).
WILD_TESTS = ("h36m_sh", "h36m_gt", "unseen", "unseen_actions", "unseen_bodies")


def _subjects(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _subset_of(*allowed: str):
    """argparse type: a comma list of distinct names from `allowed`, at least one."""

    def parse(text: str) -> list[str]:
        names = _subjects(text)
        if not names or set(names) - set(allowed) or len(set(names)) != len(names):
            raise argparse.ArgumentTypeError(
                f"expected a comma list of {', '.join(allowed)}; got {text!r}"
            )
        return names

    return parse


def _pair(text: str) -> tuple[float, float]:
    a, b = text.split(",")
    return float(a), float(b)


def add_train_args(p: argparse.ArgumentParser, mode: str) -> None:
    d = TrainConfig()
    p.add_argument("--data", default=DEFAULT_DATA, help="folder with the Human3.6M arrays")
    p.add_argument(
        "--out", default=f"runs/{mode}", help="run folder: checkpoints, TensorBoard, results"
    )
    p.add_argument(
        "--subjects", type=_subjects, default=d.subjects, help="training subjects, e.g. S1,S5"
    )
    p.add_argument("--stride", type=int, default=d.stride, help="use every Nth frame")
    p.add_argument(
        "--exclude-actions",
        type=_subjects,
        default=d.exclude_actions,
        help="train without these actions, e.g. Sitting,SittingDown (the unseen-poses split)",
    )
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--grad-clip", type=float, default=d.grad_clip)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    p.add_argument("--estimator", default=d.estimator, choices=sorted(ESTIMATORS))
    p.add_argument("--channels", type=int, default=d.channels)
    p.add_argument("--blocks", type=int, default=d.blocks)
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument(
        "--init",
        default=None,
        help="checkpoint whose estimator (and PoseAug modules) start this run, or a bundle "
        "folder when its run's checkpoint is gone (PoseAug's critics then start afresh)",
    )
    p.add_argument(
        "--train-2d",
        type=_subset_of("gt", "sh"),
        default=d.train_2d,
        help="2D inputs of the training pairs: gt, sh or gt,sh (both, same 3D targets)",
    )
    p.add_argument(
        "--wild",
        action="store_true",
        help="the wild recipe: virtual cameras, fitted detector error, missing joints, camera "
        "rays in (needs --estimator vpose_rays)",
    )
    p.add_argument(
        "--filter-widths",
        type=lambda t: [int(w) for w in t.split(",")],
        default=d.filter_widths,
        help="vpose_rays_temporal: convolution widths over time, e.g. 3,3,3 (27 frames)",
    )
    p.add_argument(
        "--anchor",
        choices=ANCHORS,
        default=d.anchor,
        help="vpose_rays_temporal: the frame a window answers for (last: causal)",
    )
    p.add_argument(
        "--future-cut",
        type=float,
        default=d.future_cut,
        help="vpose_rays_temporal: share of windows whose future is cut at a random lookahead",
    )
    p.add_argument(
        "--clip-detector-error",
        choices=CLIP_DETECTOR_ERROR,
        default=d.clip_detector_error,
        help="vpose_rays_temporal: detector error that persists over a clip's frames as the real "
        "detections' does (track), or drawn afresh each frame (independent)",
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default=d.precision,
        help="bf16: the estimator's layers under autocast (measure with bench/train_step.py)",
    )
    p.add_argument("--val-stride", type=int, default=d.val_stride)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    if mode == "poseaug":
        p.add_argument("--aug-lr", type=float, default=d.aug_lr)
        p.add_argument("--d-lr", type=float, default=d.d_lr)
        p.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs)
        p.add_argument("--d-every", type=int, default=d.d_every)
        p.add_argument("--pool-size", type=int, default=d.pool_size)
        p.add_argument(
            "--hard-ratio-paper", action="store_true", help="paper's beta 2 -> 20 for every op"
        )
        p.add_argument(
            "--aug-weight",
            type=float,
            default=d.aug_weight,
            help="weight of augmented pairs in the estimator loss",
        )
        p.add_argument(
            "--estimator-updates",
            choices=("mixed", "alternate"),
            default=d.estimator_updates,
            help="mixed: every step updates P on the source batch plus its weighted augmented "
            "pairs; alternate (official code): after each epoch of A/D training, P takes one "
            "pass over that epoch's augmented pairs, then one over the source pairs",
        )
        p.add_argument(
            "--ops",
            type=_subset_of("ba", "bl", "rt"),
            default=d.ops,
            help="augmentor operations to train and apply: any of ba,bl,rt",
        )
        p.add_argument(
            "--no-transfer-2d-error",
            dest="transfer_2d_error",
            action="store_false",
            help="augmented 2D stay clean projections even when the source 2D are detections",
        )
        p.add_argument(
            "--max-hardness",
            type=float,
            default=d.max_hardness,
            help="skip augmented pairs whose error ratio exceeds this (default: band edge)",
        )
        p.add_argument(
            "--rt-mode",
            choices=("free", "gravity"),
            default=d.rt_mode,
            help="gravity: RT only turns bodies about the vertical and tilts them (at most "
            "--max-tilt-deg), in a level camera; viewpoint and placement stay the camera's",
        )
        p.add_argument("--max-tilt-deg", type=float, default=d.max_tilt_deg)
        p.add_argument(
            "--ba-range",
            type=_pair,
            default=d.ba_range,
            metavar="CENTRE,WIDTH",
            help="BA regularizer: mean per-bone 1 - cos of BA's change within CENTRE +- WIDTH",
        )
        p.add_argument("--bl-limit", type=float, default=d.bl_limit, help="BL's hard bound")
        p.add_argument(
            "--bl-bodies",
            action="store_true",
            help="BL first gives each pose another body (adult statures and proportions, "
            "children: data/body_shapes.TRAIN_BODIES), drawn by its noise",
        )
        p.add_argument(
            "--bl-reg-limit", type=float, default=d.bl_reg_limit, help="BL regularizer threshold"
        )
        p.add_argument(
            "--w-rom",
            type=float,
            default=d.w_rom,
            help="weight of the joint range-of-motion penalty on BA's output",
        )
        for op in ("ba", "bl", "rt"):
            p.add_argument(f"--hard-ratio-{op}", type=_pair, default=None, metavar="START,END")
        for w in ("adv3d", "adv2d", "reg", "feedback_ba", "feedback_rt"):
            flag = "--w-" + w.replace("_", "-")
            p.add_argument(flag, dest=f"w_{w}", type=float, default=getattr(d, f"w_{w}"))


def config_from_args(args: argparse.Namespace, mode: str) -> TrainConfig:
    fields = TrainConfig.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields}
    return TrainConfig(mode=mode, **values)


def cmd_train(args: argparse.Namespace, mode: str) -> int:
    from poseaug_training.pipeline import train_run

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config_from_args(args, mode)
    train_run(cfg, stop_after=args.stop_after)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from poseaug_training.pipeline import evaluate_run

    if args.threads:
        torch.set_num_threads(args.threads)
    results = evaluate_run(
        Path(args.checkpoint),
        Path(args.data),
        Path(args.out),
        sources=args.inputs,
        plots=not args.no_plots,
        subjects=tuple(args.subjects),
        stride=args.stride,
    )
    print(
        json.dumps(
            {k: {m: v[m] for m in ("mpjpe_mm", "pa_mpjpe_mm")} for k, v in results.items()},
            indent=2,
        )
    )
    return 0


def _model_specs(specs: list[str]) -> dict[str, Path]:
    models = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            raise ValueError(f"--model needs NAME=PATH, got {spec!r}")
        models[name] = Path(path)
    return models


def _run_comparison(args: argparse.Namespace, run, **options: object) -> int:
    """wild-eval and temporal-eval: models side by side, the comparison table printed."""
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(
        _model_specs(args.model),
        Path(args.data),
        Path(args.out),
        tests=args.tests,
        subjects=tuple(args.subjects),
        seed=args.seed,
        **options,
    )
    print(Path(args.out, "comparison.md").read_text())
    return 0 if results else 1


def cmd_temporal_eval(args: argparse.Namespace) -> int:
    from poseaug_training.pipeline import temporal_evaluate_run

    return _run_comparison(
        args,
        temporal_evaluate_run,
        lookaheads=tuple(args.lookaheads),
        window_model=args.window_model,
    )


def cmd_wild_eval(args: argparse.Namespace) -> int:
    from poseaug_training.pipeline import wild_evaluate_run

    return _run_comparison(
        args, wild_evaluate_run, unseen_stride=args.unseen_stride, stride=args.stride
    )


def cmd_action_novelty(args: argparse.Namespace) -> int:
    from poseaug_training.data.h36m import load_h36m
    from poseaug_training.evaluation.novelty import novelty_table, rank_held_out

    data = load_h36m(args.data, subjects=args.subjects)
    ranked = rank_held_out(data, args.subjects, stride=args.stride)
    table = novelty_table(ranked)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "novelty.md").write_text(
            f"Subjects {', '.join(args.subjects)}, every {args.stride}th frame "
            "(`poseaug-train action-novelty`, evaluation/novelty.py).\n\n" + table
        )
        rows = [{"held_out": list(h), "novelty_mm": v} for h, v in ranked]
        (out / "novelty.json").write_text(json.dumps(rows, indent=1))
    return 0


def cmd_study_table(args: argparse.Namespace) -> int:
    from poseaug_training.evaluation.study import plot_study, read_study, study_table

    study = read_study(_model_specs(args.setting))
    if not study:
        raise ValueError("no <row>_seed<k>/evaluation.json under the --setting folders")
    table = study_table(study, tuple(args.rows))
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "study.md").write_text(table)
        plot_study(study, tuple(args.rows), out / "study_seeds.png")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from poseaug_training.export.bundle import export_bundle, reexport_bundle

    if args.bundle:
        if args.checkpoint or args.evaluation or args.name or args.description or args.default:
            raise ValueError(
                "--bundle re-exports a bundle as it is: only --version and --out go with it"
            )
        if not args.version:
            raise ValueError("--bundle needs the re-exported bundle's --version")
        path = reexport_bundle(Path(args.bundle), args.version, args.out and Path(args.out))
        print(f"wrote {path}")
        return 0
    if not (args.checkpoint and args.out and args.name):
        raise ValueError("export needs --checkpoint, --out and --name (or --bundle)")
    path = export_bundle(
        checkpoint=Path(args.checkpoint),
        out_dir=Path(args.out),
        name=args.name,
        version=args.version or "1.0.0",
        default=args.default,
        evaluation_files=[Path(p) for p in args.evaluation],
        description=args.description,
    )
    print(f"wrote {path}")
    return 0


def _model_comparison_args(
    p: argparse.ArgumentParser, model_help: str, tests: tuple[str, ...]
) -> None:
    """What wild-eval and temporal-eval share: models side by side, data, tests, subjects."""
    p.add_argument("--model", action="append", required=True, metavar="NAME=PATH", help=model_help)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--out", required=True)
    p.add_argument(
        "--tests",
        type=_subset_of(*tests),
        default=["h36m_sh", "h36m_gt", "unseen"],
        help=f"comma list of {', '.join(tests)}",
    )
    p.add_argument("--subjects", type=_subjects, default=["S9", "S11"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poseaug-train", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for mode, text in (
        ("baseline", "train the estimator alone (from scratch or --init)"),
        ("poseaug", "train augmentor, discriminators and estimator with PoseAug (Algorithm 1)"),
    ):
        add_train_args(sub.add_parser(mode, help=text), mode)
    ev = sub.add_parser("eval", help="protocols 1 and 2 on S9/S11: JSON, markdown and PNGs")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--data", default=DEFAULT_DATA)
    ev.add_argument("--out", required=True, help="folder for evaluation.json, evaluation.md, PNGs")
    ev.add_argument(
        "--inputs",
        type=_subjects,
        default=["gt", "sh", "novel"],
        help="comma list of gt, sh, novel",
    )
    ev.add_argument("--subjects", type=_subjects, default=["S9", "S11"])
    ev.add_argument(
        "--stride", type=int, default=1, help="every Nth frame (1: all, as the protocol says)"
    )
    ev.add_argument("--threads", type=int, default=0)
    ev.add_argument("--no-plots", action="store_true")
    we = sub.add_parser(
        "wild-eval",
        help="real detections, unseen cameras and missing joints, models side by side",
    )
    _model_comparison_args(
        we, "a checkpoint (.pt) or a bundle folder; repeat to compare", WILD_TESTS
    )
    we.add_argument("--stride", type=int, default=1, help="frame stride of the h36m tests")
    we.add_argument("--unseen-stride", type=int, default=5, help="frame stride, unseen cameras")
    we.add_argument("--seed", type=int, default=0)
    we.add_argument("--threads", type=int, default=0)
    te = sub.add_parser(
        "temporal-eval",
        help="the wild tests as sequences: temporal and single-frame lifters on the same frames",
    )
    _model_comparison_args(
        te, "a camera-aware checkpoint (.pt) or bundle folder; repeat", WILD_TESTS[:3]
    )
    te.add_argument(
        "--lookaheads",
        type=lambda t: [int(v) for v in t.split(",")] if t else [],
        default=[],
        help="also run temporal models with these lookaheads (frames) on the SH test, e.g. 0,4",
    )
    te.add_argument("--seed", type=int, default=0)
    te.add_argument("--threads", type=int, default=0)
    te.add_argument(
        "--window-model",
        action="store_true",
        help="run temporal bundles through their window model (lifter.onnx) even where they "
        "ship the whole-track form, which gives the same poses faster",
    )
    nv = sub.add_parser(
        "action-novelty",
        help="how far each set of actions' poses lies from the rest (the unseen-poses split)",
    )
    nv.add_argument("--data", default=DEFAULT_DATA)
    nv.add_argument("--subjects", type=_subjects, default=["S1", "S5", "S6", "S7", "S8"])
    nv.add_argument("--stride", type=int, default=20)
    nv.add_argument("--out", default=None, help="write novelty.md and novelty.json here")
    st = sub.add_parser(
        "study-table",
        help="Table S1 over seeds from wild-eval folders whose models are named ROW_seedK",
    )
    st.add_argument(
        "--setting",
        action="append",
        required=True,
        metavar="NAME=FOLDER",
        help="a wild-eval output folder per training setting; repeat",
    )
    st.add_argument("--rows", type=_subjects, default=["twin", "no_feedback", "poseaug"])
    st.add_argument("--out", default=None, help="write study.md and study_seeds.png here")
    ex = sub.add_parser("export", help="write a model bundle (ONNX + manifest.json)")
    ex.add_argument("--checkpoint")
    ex.add_argument(
        "--bundle",
        help="instead of --checkpoint: re-export this bundle with what the exporter writes now "
        "(a temporal lifter's step and whole-track forms), in place unless --out is given; "
        "its other files and records stay as they are, --version sets the new version",
    )
    ex.add_argument("--out", help="bundle folder, e.g. models/poseaug-vpose")
    ex.add_argument("--name")
    ex.add_argument("--version", help="the bundle's version (default 1.0.0; --bundle needs it)")
    ex.add_argument("--default", action="store_true", help="mark as the server's default model")
    ex.add_argument(
        "--evaluation",
        action="append",
        default=[],
        help="[PREFIX=]evaluation.json to embed; one prefix given twice merges the files' tests",
    )
    ex.add_argument("--description", default="")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("baseline", "poseaug"):
            return cmd_train(args, args.command)
        if args.command == "eval":
            return cmd_eval(args)
        if args.command == "wild-eval":
            return cmd_wild_eval(args)
        if args.command == "temporal-eval":
            return cmd_temporal_eval(args)
        if args.command == "action-novelty":
            return cmd_action_novelty(args)
        if args.command == "study-table":
            return cmd_study_table(args)
        return cmd_export(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"poseaug-train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
