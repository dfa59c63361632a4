"""The shipped model bundles, served by the real server, on real Human3.6M data.

These are the end-to-end checks of the product: training's manifests promise numbers, the
server must reproduce them on the same inputs, and the CLI must too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from poseaug.v1 import poseaug_pb2
from tests.conftest import REPO
from tests.support.protos import array, tensor
from tests.support.server import running_server

MODELS = REPO / "models"
# The first generation (screen-normalized input, Human3.6M's cameras), still served.
FIRST = "poseaug-vpose"
BASELINE = "baseline-vpose"
SUBSET_PREFIX = "h36m_s9stride50"  # S9, all cameras, every 50th frame, projected GT 2D
# The camera-aware wild generation: the default, and its twin without the augmentor.
DEFAULT = "wild-poseaug-vpose"
WILD_TWIN = "wild-baseline-vpose"
WILD_SUBSET_PREFIX = "wild_s9stride50"  # S9, all cameras, every 50th frame, SH detections


def manifest(name: str) -> dict:
    path = MODELS / name / "manifest.json"
    if not path.is_file():
        pytest.fail(f"shipped bundle missing: {path}")
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    ("poseaug", "baseline", "generation"),
    [(FIRST, BASELINE, 1), (DEFAULT, WILD_TWIN, 2)],
    ids=["first", "wild"],
)
def test_bundles_come_in_twins_and_the_wild_poseaug_is_the_default(
    poseaug: str, baseline: str, generation: int
) -> None:
    pa, base = manifest(poseaug), manifest(baseline)
    assert pa["default"] is (poseaug == DEFAULT) and base["default"] is False
    assert pa["format_version"] == base["format_version"] == generation
    assert pa["augmentor"] is not None and base["augmentor"] is None
    for m in (pa, base):
        for name, entry in m["files"].items():
            assert (MODELS / m["name"] / name).stat().st_size < 40 * 1024 * 1024
            assert entry["bytes"] == (MODELS / m["name"] / name).stat().st_size
    # Same estimator, data, epochs and seed; only the augmentation differs.
    pc, bc = pa["training"]["config"], base["training"]["config"]
    for key in (
        "estimator",
        "channels",
        "blocks",
        "subjects",
        "stride",
        "epochs",
        "seed",
        "lr",
        "init",
        "precision",
    ):
        assert pc.get(key) == bc.get(key), key
    assert pc["mode"] == "poseaug" and bc["mode"] == "baseline"
    assert pc.get("wild", False) is bc.get("wild", False) is (generation == 2)


def test_manifest_metrics_are_the_per_action_averages_of_their_tables() -> None:
    for name in (FIRST, BASELINE, DEFAULT, WILD_TWIN):
        m = manifest(name)
        for prefix, results in m["evaluation"]["results"].items():
            for source, r in results.items():
                actions = r["per_action"]
                assert len(actions) == 15 or prefix.endswith("s9stride50")
                mean = sum(a["mpjpe"] for a in actions.values()) / len(actions)
                key = f"{source}2d" if source in ("gt", "sh", "novel") else source
                assert m["metrics"][f"{prefix}.{key}.mpjpe_mm"] == pytest.approx(mean, abs=1e-3)


def test_first_bundle_meets_its_accuracy_bar() -> None:
    """<= 45 mm MPJPE on S9/S11 with ground-truth 2D, the bar the CPU budget must clear."""
    assert manifest(FIRST)["metrics"]["h36m.gt2d.mpjpe_mm"] <= 45.0


def test_recipe_evaluations_compare_like_with_like() -> None:
    """Each embedded evaluation of another run (S1 only, SH inputs) pairs a PoseAug run with a
    baseline run that differs from it only in the augmentation."""
    pa, base = manifest(FIRST)["evaluation"], manifest(BASELINE)["evaluation"]
    for prefix in ("h36m_s1only", "h36m_trained_on_sh", "h36m_s1only_trained_on_sh"):
        pc = pa["meta"][prefix]["train_config"]
        bc = base["meta"][prefix]["train_config"]
        assert pc["mode"] == "poseaug" and bc["mode"] == "baseline", prefix
        for key in ("subjects", "stride", "epochs", "seed", "lr", "init", "dropout", "train_2d"):
            assert pc.get(key) == bc.get(key), (prefix, key)


def test_poseaug_generalizes_better_to_unseen_viewpoints() -> None:
    """The augmentor's rotations and translations pay off where the training cameras never were."""
    key = "h36m_novelview.novel2d.mpjpe_mm"
    pa, base = manifest(FIRST)["metrics"][key], manifest(BASELINE)["metrics"][key]
    assert pa < 0.8 * base, (pa, base)


def test_poseaug_helps_where_training_data_is_scarce() -> None:
    """Trained on S1 alone, the PoseAug estimator beats the same estimator without
    augmentation: with ground-truth 2D, and with detections when both train on detections."""
    for key in ("h36m_s1only.gt2d", "h36m_s1only_trained_on_sh.sh2d"):
        for metric in ("mpjpe_mm", "pa_mpjpe_mm"):
            pa = manifest(FIRST)["metrics"][f"{key}.{metric}"]
            base = manifest(BASELINE)["metrics"][f"{key}.{metric}"]
            assert pa < base, (key, metric, pa, base)


def _s9_pixels(h36m: Path):
    from poseaug_training.data.camera import project_to_pixels
    from poseaug_training.data.h36m import load_h36m
    from poseaug_training.data.pairs import build_pairs

    data = load_h36m(h36m, subjects=["S9"])
    pairs = build_pairs(data, ["S9"], stride=50, source="gt")
    pix = project_to_pixels(
        pairs.pose3d.double() + pairs.root[:, None].double(), pairs.intrinsics.double()
    )
    sizes = pairs.intrinsics[:, 9:11].numpy().astype(int)
    return pix.float().numpy(), sizes, pairs


def _per_action_mpjpe_mm(pred: np.ndarray, pairs) -> float:
    err = np.linalg.norm(pred - pairs.pose3d.numpy(), axis=-1).mean(-1)
    action = pairs.action.numpy()
    return float(np.mean([err[action == a].mean() for a in np.unique(action)]) * 1000)


@pytest.mark.data
def test_service_reproduces_the_manifest_mpjpe_on_real_s9(h36m: Path) -> None:
    pix, sizes, pairs = _s9_pixels(h36m)
    expected = manifest(FIRST)["metrics"][f"{SUBSET_PREFIX}.gt2d.mpjpe_mm"]
    with running_server(MODELS) as server:
        reply = server.stub.Lift2Dto3D(
            poseaug_pb2.Lift2Dto3DRequest(
                keypoints=tensor(pix),
                format=poseaug_pb2.KEYPOINT_FORMAT_H36M_17,
                image_sizes=[poseaug_pb2.ImageSize(width=int(w), height=int(h)) for w, h in sizes],
                model=FIRST,
            ),
            timeout=120,
        )
        assert reply.model == FIRST
        got = _per_action_mpjpe_mm(array(reply.pose3d), pairs)
        info = server.stub.GetModelInfo(
            poseaug_pb2.GetModelInfoRequest(model=FIRST), timeout=30
        ).model
        assert "CPUExecutionProvider" in info.providers or "CUDAExecutionProvider" in info.providers
        assert info.metrics["h36m.gt2d.mpjpe_mm"] == pytest.approx(
            manifest(FIRST)["metrics"]["h36m.gt2d.mpjpe_mm"]
        )
    assert got == pytest.approx(expected, abs=0.05)


def _coco_from_h36m(pix: np.ndarray) -> np.ndarray:
    """COCO-17 of the same people: limbs by name, nose <- neck/nose, eyes and ears <- head."""
    h = {
        "nose": 9,
        "head": 10,
        "ls": 11,
        "le": 12,
        "lw": 13,
        "rs": 14,
        "re": 15,
        "rw": 16,
        "lh": 4,
        "lk": 5,
        "la": 6,
        "rh": 1,
        "rk": 2,
        "ra": 3,
    }
    order = [
        "nose",
        "head",
        "head",
        "head",
        "head",
        "ls",
        "rs",
        "le",
        "re",
        "lw",
        "rw",
        "lh",
        "rh",
        "lk",
        "rk",
        "la",
        "ra",
    ]
    return pix[:, [h[k] for k in order]]


def _h36m_as_coco_maps_it(pix: np.ndarray) -> np.ndarray:
    """H36M-17 input whose pelvis, spine and thorax are derived as the COCO mapping derives them."""
    out = pix.copy()
    out[:, 0] = 0.5 * (pix[:, 1] + pix[:, 4])
    out[:, 8] = 0.5 * (pix[:, 11] + pix[:, 14])
    out[:, 7] = 0.5 * (out[:, 0] + out[:, 8])
    return out


@pytest.mark.data
def test_cli_round_trip_of_real_s9_keypoints_and_coco_json(h36m: Path, tmp_path: Path) -> None:
    pix, sizes, pairs = _s9_pixels(h36m)
    expected = manifest(FIRST)["metrics"][f"{SUBSET_PREFIX}.gt2d.mpjpe_mm"]
    np.savez(tmp_path / "kp.npz", keypoints=pix, image_sizes=sizes)
    # COCO dataset JSON: each annotation's image carries its own size (the cameras differ).
    images = [{"id": i, "width": int(w), "height": int(h)} for i, (w, h) in enumerate(sizes)]
    annotations = [
        {
            "image_id": i,
            "category_id": 1,
            "score": 0.9,
            "keypoints": np.concatenate([k, np.full((17, 1), 2.0)], 1).ravel().round(4).tolist(),
        }
        for i, k in enumerate(_coco_from_h36m(pix))
    ]
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "dets.json").write_text(json.dumps(coco))
    np.savez(tmp_path / "kp_derived.npz", keypoints=_h36m_as_coco_maps_it(pix), image_sizes=sizes)
    with running_server(MODELS) as server:

        def cli(*args: str) -> None:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "poseaug_client.cli",
                    *args,
                    "--model",
                    FIRST,
                    "--server",
                    server.address,
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr

        cli("lift", "--input", str(tmp_path / "kp.npz"), "--output", str(tmp_path / "out.npz"))
        cli(
            "lift",
            "--input",
            str(tmp_path / "dets.json"),
            "--output",
            str(tmp_path / "coco.npz"),
            "--format",
            "coco17",
        )
        cli(
            "lift",
            "--input",
            str(tmp_path / "kp_derived.npz"),
            "--output",
            str(tmp_path / "derived.npz"),
        )
    lifted = np.load(tmp_path / "out.npz")["pose3d"]
    assert _per_action_mpjpe_mm(lifted, pairs) == pytest.approx(expected, abs=0.05)
    from_coco = np.load(tmp_path / "coco.npz")["pose3d"]
    derived = np.load(tmp_path / "derived.npz")["pose3d"]
    # Where the joints coincide, COCO input is H36M input: identical 3D (JSON keeps 4 decimals).
    np.testing.assert_allclose(from_coco, derived, atol=2e-3)
    # And the derived torso joints barely move the answer from the true-joint input.
    assert np.linalg.norm(from_coco - lifted, axis=-1).mean() < 0.03


@pytest.mark.data
def test_service_reproduces_the_wild_default_on_real_s9_detections(h36m: Path) -> None:
    """The default bundle, asked by no name, given each pose's calibrated camera (with its
    distortion): the server's undistorted rays reproduce the manifest's number on the real
    Stacked Hourglass detections of S9."""
    from poseaug_training.data.h36m import load_h36m
    from poseaug_training.evaluation.wild_tests import h36m_test, score

    data = load_h36m(h36m, subjects=["S9"], with_detections=True)
    test = h36m_test(data, ["S9"], "sh", stride=50)
    cameras = [
        poseaug_pb2.CameraIntrinsics(
            fx=i[0],
            fy=i[1],
            cx=i[2],
            cy=i[3],
            width=int(i[9]),
            height=int(i[10]),
            radial=i[4:7].tolist(),
            tangential=i[7:9].tolist(),
        )
        for i in test.intrinsics
    ]
    expected = manifest(DEFAULT)["metrics"][f"{WILD_SUBSET_PREFIX}.sh2d.mpjpe_mm"]
    with running_server(MODELS) as server:
        reply = server.stub.Lift2Dto3D(
            poseaug_pb2.Lift2Dto3DRequest(
                keypoints=tensor(test.pixels.astype(np.float32)),
                format=poseaug_pb2.KEYPOINT_FORMAT_H36M_17,
                cameras=cameras,
            ),
            timeout=120,
        )
        info = server.stub.GetModelInfo(poseaug_pb2.GetModelInfoRequest(), timeout=30).model
    assert reply.model == DEFAULT and info.name == DEFAULT
    assert info.lifter_input == "camera_rays"
    assert reply.default_camera is False
    assert not array(reply.joint_inferred).any()
    assert score(array(reply.pose3d), test)["mpjpe_mm"] == pytest.approx(expected, abs=0.05)


def test_wild_default_beats_the_first_default_on_unseen_cameras() -> None:
    """Unseen cameras (wider fields of view, elevations and distances than training) with the
    fitted detector error: at least 35% lower MPJPE than the first default given the camera, at
    least 20% lower with the server's default camera (the first default only ever sees the
    image size)."""
    wild, first = manifest(DEFAULT)["metrics"], manifest(FIRST)["metrics"]
    before = first["wild.unseen_camera.mpjpe_mm"]
    assert wild["wild.unseen_camera.mpjpe_mm"] <= 0.65 * before
    assert wild["wild.unseen_no_camera.mpjpe_mm"] <= 0.80 * before
    assert wild["wild.sh2d.mpjpe_mm"] < first["wild.sh2d.mpjpe_mm"]


def test_wild_default_degrades_gracefully_with_missing_joints() -> None:
    """1, 2 and 4 random joints missing cost at most 15%, 30% and 60% over complete input
    (MPJPE over all 17 joints, unseen cameras, camera given)."""
    m = manifest(DEFAULT)["metrics"]
    full = m["wild.unseen_camera.mpjpe_mm"]
    for k, bound in ((1, 1.15), (2, 1.3), (4, 1.6)):
        assert m[f"wild.occluded{k}.mpjpe_mm"] <= bound * full, k


# The temporal wild generation (format 3): centred (81 frames, serves lookahead 0-40) and
# causal (27 frames).
TEMPORAL = "wild-temporal-vpose"
CAUSAL = "wild-temporal-causal-vpose"


def window(name: str) -> tuple[int, int]:
    """(frames, anchor frame) of a temporal bundle's lifter window."""
    temporal = manifest(name)["lifter"]["temporal"]
    return temporal["frames"], temporal["anchor_frame"]


def test_temporal_bundles_declare_their_windows_and_lineage() -> None:
    for name, frames, anchor in ((TEMPORAL, 81, 40), (CAUSAL, 27, 26)):
        m = manifest(name)
        assert m["format_version"] == 3 and m["default"] is False
        assert m["lifter"]["temporal"] == {
            "frames": frames, "anchor_frame": anchor, "padding": "edge"
        }  # fmt: skip
        for file_name, entry in m["files"].items():
            assert entry["bytes"] == (MODELS / name / file_name).stat().st_size < 40 * 1024 * 1024
        # The step and whole-track forms of the same weights, re-exported from the bundle.
        lifter = m["lifter"]
        assert {lifter["step"]["file"], lifter["whole_track"]["file"]} <= set(m["files"])
        taps = [s["taps"] for s in lifter["step"]["state"]]
        assert taps[:3] == [[2, 1], [6, 3], [18, 9]] and (taps[-1] == [40]) == (name == TEMPORAL)
        parity = m["training"]["onnx_parity_max_abs_diff"]
        assert parity["step"] <= 1e-5 and parity["whole_track"] <= 1e-5
        assert m["training"]["reexports"][-1]["added"] == ["lifter_step.onnx", "lifter_track.onnx"]
        cfg = m["training"]["config"]
        assert cfg["estimator"] == "vpose_rays_temporal" and cfg["mode"] == "poseaug"
        assert cfg["anchor"] == ("centre" if name == TEMPORAL else "last")
        assert cfg["clip_detector_error"] == "track"
        lineage = m["training"]["lineage"]
        if name == TEMPORAL:
            # Stage 3 (81 frames) went on from the stage-2 27-frame centred bundle (1.1.0,
            # then shipped under this name): a bundle folder, not a checkpoint.
            assert not cfg["init"].endswith(".pt") and cfg["filter_widths"] == [3, 3, 3, 3]
            stage2 = lineage.pop()
            assert stage2["epochs"] == 4 and stage2["stride"] == 5 and stage2["lr"] == 1e-4
        else:
            assert cfg["init"].endswith("/checkpoint.pt")
        # Stage 2 (detector error that persists over time) went on from stage 1, which
        # started from the single-frame wild PoseAug run that made the default.
        single, stage1 = lineage[-2:]
        assert single["mode"] == stage1["mode"] == "poseaug"
        assert single["steps"] == manifest(DEFAULT)["training"]["steps"]
        assert stage1["epochs"] == 4 and stage1["stride"] == 5 and stage1["lr"] == 2e-4


def s9_track(h36m: Path, frames: int = 400):
    """The first 400 frames of S9's first sequence, camera 1, SH detections, as one track."""
    from poseaug_training.data.h36m import load_h36m
    from poseaug_training.evaluation.temporal_tests import SequenceTest, h36m_sequences

    data = load_h36m(h36m, subjects=["S9"], with_detections=True)
    seq = h36m_sequences(data, ["S9"], "sh")
    rows = np.flatnonzero(seq.track == 0)[:frames]
    t = seq.test
    test = type(t)(
        t.pixels[rows], t.visible[rows], t.intrinsics[rows], t.target[rows], t.action[rows],
        t.actions,
    )  # fmt: skip
    i = test.intrinsics[0]
    camera = poseaug_pb2.CameraIntrinsics(
        fx=i[0], fy=i[1], cx=i[2], cy=i[3], width=int(i[9]), height=int(i[10]),
        radial=i[4:7].tolist(), tangential=i[7:9].tolist(),
    )  # fmt: skip
    return SequenceTest(test, np.zeros(len(rows), np.int64)), camera


def test_service_lifts_a_real_s9_track_like_the_temporal_bundle(h36m: Path) -> None:
    """A real S9 track (SH detections, its calibrated camera): the server's answer (the
    whole-track form) is the bundle's own window model's to 1e-5 m, steadier than the
    single-frame default's on the same frames; a causal stream, one frame per message (the
    step form), gives the causal bundle's window answers."""
    from poseaug_training.evaluation.temporal_tests import smoothness, windowed
    from poseaug_training.evaluation.wild_tests import bundle_lifter, model_inputs, score

    seq, camera = s9_track(h36m)
    pixels = seq.test.pixels.astype(np.float32)
    inputs = model_inputs(seq.test, "camera_rays")
    own = windowed(bundle_lifter(MODELS / TEMPORAL)[0], *window(TEMPORAL))(inputs, seq.track)
    causal_lifter = windowed(bundle_lifter(MODELS / CAUSAL)[0], *window(CAUSAL))
    causal_own = causal_lifter(inputs[:60], seq.track[:60])
    with running_server(MODELS) as server:
        request = poseaug_pb2.Lift2Dto3DRequest(
            keypoints=tensor(pixels), camera=camera, model=TEMPORAL, track_ids=[7] * len(pixels)
        )
        temporal = array(server.stub.Lift2Dto3D(request, timeout=120).pose3d)
        single = array(
            server.stub.Lift2Dto3D(
                poseaug_pb2.Lift2Dto3DRequest(keypoints=tensor(pixels), camera=camera),
                timeout=120,
            ).pose3d
        )
        frames = [
            poseaug_pb2.StreamLift2Dto3DRequest(
                request=poseaug_pb2.Lift2Dto3DRequest(
                    keypoints=tensor(pixels[k : k + 1]), camera=camera, model=CAUSAL, track_ids=[7]
                )
            )
            for k in range(60)
        ]
        streamed = [array(r.response.pose3d)[0] for r in server.stub.StreamLift2Dto3D(iter(frames))]
    np.testing.assert_allclose(temporal, own, atol=1e-5)
    np.testing.assert_allclose(np.stack(streamed), causal_own, atol=1e-5)
    steady, jittery = smoothness(temporal, seq), smoothness(single, seq)
    assert steady["accel_mm"] < 0.5 * jittery["accel_mm"]
    # The error itself is about the same on one short track (50.5 vs 49.6 mm with 1.0.0); the
    # sequence tests over all of S9/S11 are in the manifest (next test).
    assert score(temporal, seq.test)["mpjpe_mm"] < 1.1 * score(single, seq.test)["mpjpe_mm"]


@pytest.mark.parametrize("lookahead", [40, 13])
def test_centred_streams_of_two_people_answer_as_the_window_model(
    h36m: Path, lookahead: int
) -> None:
    """Two people per message (the S9 track and the same frames mirrored), lookahead 40 (the
    step form) and 13 (windows, the future past it repeating the newest frame): each answer is
    the window model's on what the stream had seen, to 1e-5 m."""
    from poseaug_training.evaluation.temporal_tests import windowed
    from poseaug_training.evaluation.wild_tests import bundle_lifter, model_inputs

    seq, camera = s9_track(h36m, frames=120)
    first = seq.test.pixels.astype(np.float32)
    second = first.copy()
    second[..., 0] = camera.width - second[..., 0]  # mirrored: another person's moves
    lifter = windowed(bundle_lifter(MODELS / TEMPORAL)[0], *window(TEMPORAL), lookahead=lookahead)
    own = [
        lifter(model_inputs(replace(seq.test, pixels=pixels), "camera_rays"), seq.track)
        for pixels in (first, second)
    ]
    messages = [
        poseaug_pb2.StreamLift2Dto3DRequest(
            request=poseaug_pb2.Lift2Dto3DRequest(
                keypoints=tensor(np.stack([first[k], second[k]])),
                camera=camera,
                model=TEMPORAL,
                track_ids=[3, 4],
            ),
            lookahead=lookahead,
        )
        for k in range(len(first))
    ]
    with running_server(MODELS) as server:
        answers = list(server.stub.StreamLift2Dto3D(iter(messages), timeout=300))
    assert [a.request_index for a in answers] == list(range(len(first)))
    streamed = np.stack([array(a.response.pose3d) for a in answers])
    np.testing.assert_allclose(streamed, np.stack(own, 1), atol=1e-5)


def test_temporal_bundles_beat_the_single_frame_default_on_the_same_sequences() -> None:
    """The sequence tests of S9/S11 (SH detections every frame; unseen cameras with and
    without missing joints, as 2 s clips): the single-frame default on the same frames is in
    the temporal manifests under temporal_single_frame_default."""
    for name in (TEMPORAL, CAUSAL):
        m = manifest(name)["metrics"]
        base = "temporal_single_frame_default"
        # At least 40% (centred: 50%) less acceleration error on real detections.
        bound = 0.5 if name == TEMPORAL else 0.6
        assert m["temporal.sh2d.accel_mm"] <= bound * m[f"{base}.sh2d.accel_mm"], name
        for test in ("sh2d", "gt2d", "unseen_camera", "unseen_no_camera", "occluded4"):
            assert m[f"temporal.{test}.mpjpe_mm"] < m[f"{base}.{test}.mpjpe_mm"], (name, test)
    # Answering without lookahead: the causal bundle beats the centred one with its future cut.
    centred, causal = manifest(TEMPORAL)["metrics"], manifest(CAUSAL)["metrics"]
    assert causal["temporal.sh2d.mpjpe_mm"] < centred["temporal_lookahead0.sh2d.mpjpe_mm"]
    assert centred["temporal.sh2d.mpjpe_mm"] < causal["temporal.sh2d.mpjpe_mm"]
