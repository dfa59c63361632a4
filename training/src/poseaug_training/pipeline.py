"""High-level runs behind the CLI: load data, train, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from poseaug_training.data.body_shapes import UNSEEN_BODIES
from poseaug_training.data.h36m import load_h36m
from poseaug_training.data.pairs import PoseSet, build_pairs
from poseaug_training.evaluation.novelty import NOVEL_ACTIONS
from poseaug_training.models import TEMPORAL
from poseaug_training.train.checkpoint import load_estimator
from poseaug_training.train.config import TrainConfig
from poseaug_training.train.distributed import init_distributed, shutdown_distributed
from poseaug_training.train.trainer import Trainer

# The unseen-camera test's variants for what cameras cannot give (evaluation/wild_tests.py).
NOVELTY_TESTS: dict[str, dict] = {
    "unseen_actions": {"actions": NOVEL_ACTIONS},
    "unseen_bodies": {"bodies": UNSEEN_BODIES},
}
TEST_NAMES: tuple[str, ...] = ("h36m_sh", "h36m_gt", "unseen", *NOVELTY_TESTS)


def train_run(cfg: TrainConfig, stop_after: int | None = None) -> Trainer:
    """Train (resuming from cfg.out/checkpoint.pt when present) and write cfg.out/config.json."""
    dist = init_distributed(cfg.device if cfg.device != "auto" else "cpu")
    try:
        data = load_h36m(
            cfg.data,
            subjects=list(cfg.subjects) + list(cfg.test_subjects),
            with_detections="sh" in cfg.train_2d or cfg.wild,
        )
        if cfg.exclude_actions:
            data = data.without_actions(cfg.exclude_actions)
        val = (
            build_pairs(data, cfg.test_subjects, stride=cfg.val_stride) if cfg.val_stride else None
        )
        if cfg.wild:
            trainer = _wild_trainer(cfg, data, val, dist)
        else:
            train = PoseSet.concat(
                [build_pairs(data, cfg.subjects, stride=cfg.stride, source=s) for s in cfg.train_2d]
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


def _wild_trainer(cfg: TrainConfig, data, val: PoseSet | None, dist) -> Trainer:
    """The wild recipe: rows resident, each batch drawn through fresh cameras, the detector
    error model fitted to the training subjects' detections (saved beside the checkpoint)."""
    from poseaug_training.data.detector_noise import fit_to_h36m
    from poseaug_training.data.wild_pairs import WildBatcher, build_wild_source, ray_pairs

    model = fit_to_h36m(data, list(cfg.subjects))
    if cfg.estimator in TEMPORAL:
        # Clips of every frame around every stride-th anchor; the per-epoch validation is
        # single-frame and does not apply (`wild-eval` runs the sequences).
        from poseaug_training.data.wild_clips import ClipBatcher, build_clip_source

        trainer = Trainer(cfg, build_clip_source(data, list(cfg.subjects), cfg.stride), None, dist)
        net = trainer.estimator
        trainer.make_batch = ClipBatcher(
            model,
            net.receptive_field,
            net.anchor_frame,
            future_cut=cfg.future_cut,
            detector_error=cfg.clip_detector_error,
        )
    else:
        trainer = Trainer(
            cfg,
            build_wild_source(data, list(cfg.subjects), stride=cfg.stride),
            ray_pairs(val) if val is not None else None,
            dist,
        )
        trainer.make_batch = WildBatcher(model)
    if dist.is_main:
        trainer.out.mkdir(parents=True, exist_ok=True)
        (trainer.out / "detector_error_model.json").write_text(json.dumps(model.to_dict()))
    return trainer


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

    model, state = load_estimator(checkpoint)
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


def _build_tests(data_dir, tests, subjects, train_subjects, unseen, h36m) -> dict:
    """The named tests (TEST_NAMES) built by `h36m(data, source)` and
    `unseen(data, error_model, **options)` (the novelty tests pass their `NOVELTY_TESTS`
    options), the error model fitted to the training subjects' detections."""
    from poseaug_training.data.detector_noise import fit_to_h36m

    data = load_h36m(data_dir, subjects=list(subjects) + list(train_subjects), with_detections=True)
    built = {}
    error_model = None
    for name in tests:
        if name in ("h36m_sh", "h36m_gt"):
            built[name] = h36m(data, name.removeprefix("h36m_"))
            continue
        if name not in NOVELTY_TESTS and name != "unseen":
            raise ValueError(f"unknown test {name!r}; choose from {', '.join(TEST_NAMES)}")
        error_model = error_model or fit_to_h36m(data, list(train_subjects))
        built[name] = unseen(data, error_model, **NOVELTY_TESTS.get(name, {}))
    return built


def wild_evaluate_run(
    models: dict[str, Path],
    data_dir: Path,
    out: Path,
    tests: list[str] | tuple[str, ...] = ("h36m_sh", "h36m_gt", "unseen"),
    subjects: tuple[str, ...] = ("S9", "S11"),
    train_subjects: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8"),
    unseen_stride: int = 5,
    stride: int = 1,
    seed: int = 0,
) -> dict[str, dict[str, dict]]:
    """The wild-lifting tests (evaluation/wild_tests.py) for checkpoints (*.pt) or bundle
    folders side by side. Writes <out>/<name>/evaluation.json (for `export --evaluation`),
    <out>/comparison.md and <out>/unseen_*.png over every model evaluated into <out>."""
    from poseaug_training.evaluation import wild_tests as wt
    from poseaug_training.evaluation.report import write_json

    built = _build_tests(
        data_dir,
        tests,
        subjects,
        train_subjects,
        unseen=lambda data, model, **options: wt.unseen_test(
            data, list(subjects), model, unseen_stride, seed, **options
        ),
        h36m=lambda data, source: wt.h36m_test(data, list(subjects), source, stride),
    )
    everything: dict[str, dict[str, dict]] = {}
    for name, path in models.items():
        path = Path(path)
        if path.is_dir():
            lifter, normalization = wt.bundle_lifter(path)
            source = {"bundle": path.name}
        else:
            model, state = load_estimator(path)
            lifter = wt.torch_lifter(model)
            normalization = "camera_rays" if state["config"].get("wild") else "videopose3d_screen"
            source = {"checkpoint": path.name, "train_config": state["config"]}
        results = wt.run_tests(lifter, normalization, built, seed)
        everything[name] = results
        meta = {
            **source,
            "normalization": normalization,
            "test_subjects": list(subjects),
            "frame_stride": stride,
            "unseen_frame_stride": unseen_stride,
            "seed": seed,
            "sequences_note": "S9/S11 minus S9 'Discussion 1' (missing from the public archive) "
            "and S11 'Directions' (corrupted, dropped by every paper): 57 of the usual 58",
            "tests": wt.__doc__,
            "detector_error_model": f"fitted to the SH detections of {', '.join(train_subjects)}",
        }
        write_json(Path(out) / name / "evaluation.json", {"meta": meta, "results": results})
    # The table and plots cover every model evaluated into `out` so far (runs can be split).
    for done in sorted(Path(out).glob("*/evaluation.json")):
        if done.parent.name not in everything:
            everything[done.parent.name] = json.loads(done.read_text())["results"]
    Path(out, "comparison.md").write_text(comparison_table(everything))
    _wild_plots(everything, Path(out))
    return everything


def _wild_plots(everything: dict[str, dict[str, dict]], out: Path) -> None:
    """Error per joint and by field of view on the unseen cameras, every model in one plot."""
    from poseaug_training.evaluation.plots import plot_error_by_fov, plot_per_joint_error

    per_joint = {
        m: r["unseen_camera"]["per_joint_mm"] for m, r in everything.items() if "unseen_camera" in r
    }
    if per_joint:
        plot_per_joint_error(
            per_joint, out / "unseen_per_joint_error.png", "error per joint, unseen cameras"
        )

        def label(model: str, test: str, results: dict) -> str:
            if "unseen_no_camera" not in results:  # a format-1 model sees the image size only
                return f"{model} (image size only)"
            return f"{model} ({'no camera' if test.endswith('no_camera') else 'camera given'})"

        curves = {
            label(m, t, r): r[t]["mpjpe_mm_by_hfov"]
            for m, r in everything.items()
            for t in ("unseen_camera", "unseen_no_camera")
            if t in r
        }
        plot_error_by_fov(
            curves, out / "unseen_error_by_fov.png", "unseen cameras: error by field of view"
        )


def comparison_table(everything: dict[str, dict[str, dict]]) -> str:
    """One row per test, one column per model: MPJPE / PA-MPJPE mm, 3DPCK@150, p90 mm."""
    names = list(everything)
    tests = list(dict.fromkeys(t for r in everything.values() for t in r))
    rows = [
        "| test | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for t in tests:
        cells = []
        for m in names:
            r = everything[m].get(t)
            cells.append(
                f"{r['mpjpe_mm']:.1f} / {r['pa_mpjpe_mm']:.1f} / {r['pck150']:.3f} / "
                f"{r['p90_mm']:.0f}"
                if r
                else "-"
            )
        rows.append(f"| {t} | " + " | ".join(cells) + " |")
    return (
        "MPJPE / PA-MPJPE (mm) / 3DPCK@150mm / 90th percentile of per-pose MPJPE (mm)\n\n"
        + "\n".join(rows)
        + "\n"
    )


def temporal_evaluate_run(
    models: dict[str, Path],
    data_dir: Path,
    out: Path,
    tests: list[str] | tuple[str, ...] = ("h36m_sh", "h36m_gt", "unseen"),
    subjects: tuple[str, ...] = ("S9", "S11"),
    train_subjects: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8"),
    lookaheads: tuple[int, ...] = (),
    lookahead_tests: tuple[str, ...] = ("h36m_sh",),
    seed: int = 0,
    window_model: bool = False,
) -> dict[str, dict[str, dict]]:
    """The sequence tests (evaluation/temporal_tests.py) for single-frame and temporal
    checkpoints or bundles on the same frames. Temporal models are also run with each of
    `lookaheads` on `lookahead_tests` (as "<name>@lookahead<L>"). A temporal bundle with a
    whole-track form runs its full-lookahead tests through it (the window model's answers,
    about 4x faster for 81 frames), unless `window_model`. Writes
    <out>/<name>/evaluation.json, <out>/comparison.md, the SH track's plot and, with the
    unseen test, how long the fitted detector error lasts (detector_error_over_time.png)."""
    from poseaug_training.evaluation import temporal_tests as tt
    from poseaug_training.evaluation.plots import plot_detector_error_over_time
    from poseaug_training.evaluation.report import write_json

    def unseen(data, model):
        plot_detector_error_over_time(model, Path(out) / "detector_error_over_time.png")
        return tt.unseen_sequences(data, list(subjects), model, seed)

    built = _build_tests(
        data_dir,
        tests,
        subjects,
        train_subjects,
        unseen=unseen,
        h36m=lambda data, source: tt.h36m_sequences(data, list(subjects), source),
    )
    everything: dict[str, dict[str, dict]] = {}
    kept: dict[str, dict[str, np.ndarray]] = {}
    for name, path in models.items():
        lifter, window, source = _sequence_lifter(Path(path))
        runs = {name: (None, built)}
        whole = None
        if window is not None:
            picked = {t: built[t] for t in lookahead_tests if t in built}
            runs.update({f"{name}@lookahead{la}": (la, picked) for la in lookaheads})
            whole = None if window_model else _whole_track_lifter(Path(path))
        for run_name, (lookahead, run_tests) in runs.items():
            form = "window" if window is not None else None
            if window is None:
                seq_lifter = tt.frame_by_frame(lifter)
            elif lookahead is None and whole is not None:
                seq_lifter, form = tt.whole_tracks(whole, *window), "whole_track"
            else:
                seq_lifter = tt.windowed(lifter, *window, lookahead=lookahead)
            kept[run_name] = {}
            results = tt.run_sequence_tests(seq_lifter, run_tests, seed, keep=kept[run_name])
            everything[run_name] = results
            meta = {
                **source,
                "window": None
                if window is None
                else {"receptive_field": window[0], "anchor_frame": window[1]},
                "lookahead": lookahead,
                "form": form,
                "test_subjects": list(subjects),
                "seed": seed,
                "tests": tt.__doc__,
                "sequences_note": "S9/S11 minus S9 'Discussion 1' (missing from the public "
                "archive) and S11 'Directions' (corrupted, dropped by every paper): 57 of 58",
            }
            write_json(Path(out) / run_name / "evaluation.json", {"meta": meta, "results": results})
    for done in sorted(Path(out).glob("*/evaluation.json")):
        if done.parent.name not in everything:
            everything[done.parent.name] = json.loads(done.read_text())["results"]
    Path(out, "comparison.md").write_text(temporal_table(everything))
    if "h36m_sh" in built:
        _track_plot(built["h36m_sh"], kept, Path(out) / "sh_track_right_wrist.png")
    return everything


def _track_plot(seq, kept: dict, path: Path, frames: int = 250, joint: int = 16) -> None:
    """The first SH track's first frames: one joint over time, every model run here."""
    from poseaug_training.evaluation.plots import plot_track_over_time

    rows = np.flatnonzero(seq.track == seq.track[0])[:frames]
    preds = {m: p["h36m_sh"][rows] for m, p in kept.items() if "h36m_sh" in p}
    if preds:
        plot_track_over_time(
            seq.test.target[rows], preds, joint, path, "S9, first SH sequence and camera"
        )


def _sequence_lifter(path: Path):
    """(frame or window lifter, (receptive_field, anchor_frame) or None, provenance)."""
    from poseaug_training.evaluation import wild_tests as wt

    if path.is_dir():
        lifter, normalization = wt.bundle_lifter(path)
        if normalization != "camera_rays":
            raise ValueError(f"{path}: the sequence tests take camera-aware bundles only")
        temporal = json.loads((path / "manifest.json").read_text())["lifter"].get("temporal")
        window = None if temporal is None else (temporal["frames"], temporal["anchor_frame"])
        return lifter, window, {"bundle": path.name}
    model, state = load_estimator(path)
    window = (
        (model.receptive_field, model.anchor_frame) if hasattr(model, "receptive_field") else None
    )
    return (
        wt.torch_lifter(model),
        window,
        {"checkpoint": path.name, "train_config": state["config"]},
    )


def _whole_track_lifter(path: Path):
    """A temporal bundle's whole-track form (frames [1, T, 17, 3] -> poses), or None."""
    from poseaug_training.evaluation import wild_tests as wt

    if not path.is_dir():
        return None
    lifter = json.loads((path / "manifest.json").read_text())["lifter"]
    return wt.bundle_lifter(path, form="whole_track")[0] if lifter.get("whole_track") else None


def temporal_table(everything: dict[str, dict[str, dict]]) -> str:
    """One row per test, one column per model: MPJPE mm / acceleration error / MPJVE."""
    names = list(everything)
    tests = list(dict.fromkeys(t for r in everything.values() for t in r))
    rows = ["| test | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for t in tests:
        cells = [
            f"{r['mpjpe_mm']:.1f} / {r['accel_mm']:.2f} / {r['mpjve_mm']:.2f}"
            if (r := everything[m].get(t))
            else "-"
            for m in names
        ]
        rows.append(f"| {t} | " + " | ".join(cells) + " |")
    return (
        "MPJPE (mm) / acceleration error (mm/frame^2) / MPJVE (mm/frame)\n\n"
        + "\n".join(rows)
        + "\n"
    )
