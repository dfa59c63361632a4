"""The `poseaug` command against the real server: every command, file format and error path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from poseaug_client import Camera
from poseaug_client.cli import main
from tests.clients.conftest import DEFAULT_MODEL, LIFT_ONLY_MODEL
from tests.support.server import free_port

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def poseaug(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def poseaug_process(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the CLI as its own process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "poseaug_client.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def coco_results(keypoints: np.ndarray, visibility: np.ndarray) -> list[dict]:
    """Detections as a COCO keypoint results file holds them."""
    triples = np.concatenate([keypoints, visibility[..., None]], axis=-1)
    return [
        {
            "image_id": 100 + i,
            "category_id": 1,
            "keypoints": [float(v) for v in triples[i].ravel()],
            "score": 0.5 + i / 100,
        }
        for i in range(len(keypoints))
    ]


def test_lift_npz_to_npz_with_scores_format_and_image_size(
    server, client, keypoints, tmp_path, capsys
) -> None:
    scores = np.random.default_rng(4).uniform(0, 1, keypoints.shape[:2])
    np.savez(tmp_path / "in.npz", keypoints=keypoints, scores=scores)
    code, out, _ = poseaug(
        capsys, "lift", "--server", server.address, "--input", tmp_path / "in.npz",
        "--output", tmp_path / "out.npz", "--image-size", "1920x1080", "--format", "h36m17",
        "--batch-size", "5", "--model", DEFAULT_MODEL,
    )  # fmt: skip
    assert code == 0 and "lifted 23 poses" in out
    with np.load(tmp_path / "out.npz") as result:
        np.testing.assert_array_equal(
            result["pose3d"], client.lift(keypoints, image_size=(1920, 1080))
        )
        assert list(result["joint_names"])[:2] == ["hip", "right_hip"]


def test_lift_npy_with_confidence_column_to_json(server, client, tmp_path, capsys) -> None:
    triples = np.random.default_rng(5).uniform(100, 900, (4, 16, 3)).astype(np.float32)
    np.save(tmp_path / "in.npy", triples)
    code, _, _ = poseaug(
        capsys, "lift", "--server", server.address, "--input", tmp_path / "in.npy",
        "--output", tmp_path / "out.json", "--format", "mpii16", "--model", LIFT_ONLY_MODEL,
    )  # fmt: skip
    assert code == 0
    records = json.loads((tmp_path / "out.json").read_text())
    expected = client.lift(triples[..., :2], format="mpii16", model=LIFT_ONLY_MODEL)
    assert [set(r) for r in records] == [{"pose3d"}] * 4
    np.testing.assert_allclose(np.array([r["pose3d"] for r in records]), expected, atol=1e-6)


def test_lift_coco_results_json(server, client, tmp_path, capsys) -> None:
    rng = np.random.default_rng(6)
    keypoints = rng.uniform(0, 640, (6, 17, 2)).astype(np.float32)
    visibility = rng.uniform(0, 2, (6, 17)).astype(np.float32)  # detector confidences, > 1 too
    (tmp_path / "dets.json").write_text(json.dumps(coco_results(keypoints, visibility)))
    code, _, _ = poseaug(
        capsys, "lift", "--server", server.address, "--input", tmp_path / "dets.json",
        "--output", tmp_path / "out.json", "--image-size", "640x480",
    )  # fmt: skip
    assert code == 0
    records = json.loads((tmp_path / "out.json").read_text())
    assert [r["image_id"] for r in records] == [100 + i for i in range(6)]
    assert records[1]["score"] == pytest.approx(0.51)
    expected = client.lift(
        keypoints, format="coco17", image_size=(640, 480), scores=np.clip(visibility, 0, 1)
    )
    np.testing.assert_allclose(np.array([r["pose3d"] for r in records]), expected, atol=1e-6)
    code, _, _ = poseaug(
        capsys, "lift", "--server", server.address, "--input", tmp_path / "dets.json",
        "--output", tmp_path / "out.npz", "--image-size", "640x480",
    )  # fmt: skip
    with np.load(tmp_path / "out.npz") as result:
        assert list(result["image_id"]) == [100 + i for i in range(6)]
        np.testing.assert_array_equal(result["pose3d"], expected)


def test_lift_coco_dataset_file_uses_each_image_size(server, client, tmp_path, capsys) -> None:
    rng = np.random.default_rng(7)
    keypoints = rng.uniform(0, 600, (3, 17, 2)).astype(np.float32)
    annotations = coco_results(keypoints, np.full((3, 17), 2.0))
    annotations[2]["image_id"] = 100  # two people in image 100
    images = [{"id": 100, "width": 640, "height": 480}, {"id": 101, "width": 1920, "height": 1080}]
    (tmp_path / "gt.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    code, _, _ = poseaug(
        capsys, "lift", "--server", server.address, "--input", tmp_path / "gt.json",
        "--output", tmp_path / "out.npz",
    )  # fmt: skip
    assert code == 0
    sizes = np.array([[640, 480], [1920, 1080], [640, 480]])
    with np.load(tmp_path / "out.npz") as result:
        expected = client.lift(keypoints, format="coco17", image_size=sizes)
        np.testing.assert_array_equal(result["pose3d"], expected)


def test_augment_writes_poses_keypoints_and_parameters(
    server, client, poses3d, tmp_path, capsys
) -> None:
    np.savez(tmp_path / "in.npz", pose3d=poses3d)
    code, out, _ = poseaug(
        capsys, "augment", "--server", server.address, "--input", tmp_path / "in.npz",
        "--count", "3", "--ops", "ba,bl,rt", "--seed", "8", "--output", tmp_path / "out.npz",
    )  # fmt: skip
    assert code == 0 and "33 poses" in out
    expected = client.augment(poses3d, count=3, seed=8)
    with np.load(tmp_path / "out.npz") as result:
        np.testing.assert_array_equal(result["pose3d"], expected.poses3d)
        np.testing.assert_array_equal(result["keypoints"], expected.keypoints2d)
        for name, value in expected.params.items():
            np.testing.assert_array_equal(result[name], value)
        np.testing.assert_array_equal(result["source_index"], np.repeat(np.arange(11), 3))
        assert int(result["seed"]) == 8


def test_augment_streamed_with_progress_camera_and_ops(
    server, client, poses3d, tmp_path, capsys
) -> None:
    np.save(tmp_path / "in.npy", poses3d)
    code, _, err = poseaug(
        capsys, "augment", "--server", server.address, "--input", tmp_path / "in.npy",
        "--count", "2", "--ops", "bl,rt", "--seed", "3", "--camera", "500,500,320,240,640,480",
        "--batch-size", "4", "--progress", "--output", tmp_path / "out.npz",
    )  # fmt: skip
    assert code == 0 and "22/22" in err
    camera = {"fx": 500, "fy": 500, "cx": 320, "cy": 240, "width": 640, "height": 480}
    expected = client.augment(poses3d, count=2, ops="bl,rt", seed=3, camera=camera)
    with np.load(tmp_path / "out.npz") as result:
        np.testing.assert_array_equal(result["keypoints"], expected.keypoints2d)
        assert "bone_angle_offsets" not in result.files


def test_augment_camera_fov_and_output_options(server, client, poses3d, tmp_path, capsys) -> None:
    np.save(tmp_path / "in.npy", poses3d)
    base = ["augment", "--server", server.address, "--input", tmp_path / "in.npy", "--seed", "2"]
    code, _, _ = poseaug(
        capsys, *base, "--camera", "1500,1500,960,540", "--image-size", "1920x1080",
        "--keypoint-format", "coco17", "--redraw-implausible", "--max-tilt", "45",
        "--output", tmp_path / "a.npz",
    )  # fmt: skip
    assert code == 0
    camera = Camera(1500, 1500, 960, 540, 1920, 1080)
    expected = client.augment(
        poses3d, seed=2, camera=camera, keypoint_format="coco17", redraw_implausible=True,
        max_tilt_deg=45,
    )  # fmt: skip
    with np.load(tmp_path / "a.npz") as result:
        np.testing.assert_array_equal(result["pose3d"], expected.poses3d)
        np.testing.assert_array_equal(result["keypoints"], expected.keypoints2d)
        np.testing.assert_array_equal(
            result["outside_joint_limits"], expected.params["outside_joint_limits"]
        )
        assert str(result["keypoint_format"]) == "coco17"
    code, _, _ = poseaug(
        capsys, *base, "--fov", "90", "--image-size", "1280x720", "--placement", "learned",
        "--output", tmp_path / "b.npz",
    )  # fmt: skip
    assert code == 0
    fov = Camera.from_fov(1280, 720, 90)
    expected = client.augment(poses3d, seed=2, camera=fov, placement="learned")
    with np.load(tmp_path / "b.npz") as result:
        np.testing.assert_array_equal(result["keypoints"], expected.keypoints2d)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--camera", "1500,1500,960,540"], "--camera needs the image size"),
        (["--image-size", "640x480"], "--image-size goes with --camera or --fov"),
        (["--camera", "500,500,320,240,640,480", "--image-size", "800x600"], "differ"),
    ],
)
def test_augment_camera_needs_its_size(server, poses3d, tmp_path, extra, message) -> None:
    np.save(tmp_path / "in.npy", poses3d)
    result = poseaug_process(
        "augment", "--server", server.address, "--input", tmp_path / "in.npy",
        "--output", tmp_path / "out.npz", *extra,
    )  # fmt: skip
    assert_one_line_error(result, 1, message)


@pytest.mark.parametrize("command", ["lift", "augment"])
def test_plot_writes_a_png(server, keypoints, poses3d, tmp_path, capsys, command) -> None:
    if command == "lift":
        np.savez(tmp_path / "in.npz", keypoints=keypoints)
    else:
        np.savez(tmp_path / "in.npz", pose3d=poses3d)
    code, _, err = poseaug(
        capsys, command, "--server", server.address, "--input", tmp_path / "in.npz",
        "--output", tmp_path / "out.npz", "--plot", tmp_path / "plot.png",
    )  # fmt: skip
    assert code == 0, err
    data = (tmp_path / "plot.png").read_bytes()
    assert data.startswith(PNG_MAGIC)
    import matplotlib.image

    height, width = matplotlib.image.imread(tmp_path / "plot.png").shape[:2]
    assert width > height > 100  # three columns of panels, two rows


def test_models_and_health(server, capsys) -> None:
    code, out, _ = poseaug(capsys, "models", "--server", server.address)
    assert code == 0
    assert DEFAULT_MODEL in out and LIFT_ONLY_MODEL in out and "test.synthetic.mpjpe_mm" in out
    code, out, _ = poseaug(capsys, "models", "--server", server.address, "--json")
    listed = {m["name"]: m for m in json.loads(out)}
    assert listed[DEFAULT_MODEL]["is_default"] and not listed[LIFT_ONLY_MODEL]["has_augmentor"]
    code, out, _ = poseaug(capsys, "health", "--server", server.address)
    assert (code, out.strip()) == (0, "SERVING")
    code, _, err = poseaug(capsys, "health", "--server", server.address, "--service", "x.Y")
    assert code == 1 and "unknown service 'x.Y'" in err


def test_connection_options_are_accepted(server, tmp_path, capsys, monkeypatch) -> None:
    token = tmp_path / "token"
    token.write_text("abc")
    code, out, _ = poseaug(
        capsys, "health", "--server", server.address, "--server", server.address,
        "--timeout", "5", "--attempts", "2", "--token-file", token, "-v",
    )  # fmt: skip
    assert (code, out.strip()) == (0, "SERVING")
    monkeypatch.setenv("POSEAUG_SERVER", server.address)
    assert poseaug(capsys, "health", "--token", "abc")[:2] == (0, "SERVING\n")


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert text in lines[-1], result.stderr
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("poseaug: error: ")


def test_unreachable_server_is_one_line(tmp_path) -> None:
    np.savez(tmp_path / "in.npz", keypoints=np.zeros((2, 17, 2)))
    address = f"127.0.0.1:{free_port()}"
    for args in (
        ["health"],
        ["models"],
        ["lift", "--input", tmp_path / "in.npz", "--output", tmp_path / "o.npz"],
    ):
        result = poseaug_process(*args, "--server", address, "--attempts", "2")
        assert_one_line_error(result, 1, f"cannot reach server {address}")
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize(
    ("make_input", "extra", "code", "message"),
    [
        (None, [], 1, "input file not found"),
        (lambda p: np.savez(p / "in.npz", points=np.zeros((2, 17, 2))), [], 1, "no 'keypoints'"),
        (lambda p: np.savez(p / "in.npz", keypoints=np.zeros((2, 17))), [], 1, "[N, K, 2]"),
        (lambda p: np.save(p / "in.npy", np.zeros((2, 16, 2))), [], 1, "format h36m17 needs 17"),
        (lambda p: (p / "in.txt").write_text("x"), [], 1, "input must be one of"),
        (lambda p: (p / "in.json").write_text("{not json"), [], 1, "cannot read"),
        (lambda p: (p / "in.json").write_text('[{"keypoints": [1, 2]}]'), [], 1, "51 numbers"),
        (lambda p: (p / "in.json").write_text("[]"), [], 1, "no detections"),
        (
            lambda p: np.savez(p / "in.npz", keypoints=np.zeros((2, 17, 2))),
            ["--output", "o.csv"],
            1,
            "must end in .npz or .json",
        ),
        (
            lambda p: np.savez(p / "in.npz", keypoints=np.zeros((2, 17, 2))),
            ["--image-size", "big"],
            2,
            "WIDTHxHEIGHT",
        ),
        (
            lambda p: np.savez(p / "in.npz", keypoints=np.full((2, 17, 2), np.nan)),
            [],
            1,
            "INVALID_ARGUMENT: keypoints",
        ),
        (
            lambda p: np.savez(p / "in.npz", keypoints=np.zeros((2, 17, 2))),
            ["--model", "nope"],
            1,
            "model",
        ),
        (
            lambda p: np.savez(p / "in.npz", keypoints=np.zeros((2, 17, 2))),
            ["--timeout", "0.00001"],
            1,
            "no answer from",
        ),
    ],
)
def test_lift_errors_are_one_line(server, tmp_path, make_input, extra, code, message) -> None:
    if make_input is not None:
        make_input(tmp_path)
    inputs = [p for p in tmp_path.iterdir() if p.name.startswith("in.")]
    source = inputs[0] if inputs else tmp_path / "missing.npz"
    output = tmp_path / (extra[1] if extra[:1] == ["--output"] else "out.npz")
    extra = [] if extra[:1] == ["--output"] else extra
    result = poseaug_process(
        "lift", "--server", server.address, "--input", source, "--output", output, *extra
    )
    assert_one_line_error(result, code, message)


@pytest.mark.parametrize(
    ("array", "extra", "message"),
    [
        (np.zeros((2, 16, 3)), [], "pose3d must have shape [N, 17, 3]"),
        (np.zeros((2, 17, 3)), ["--ops", "xy"], "ops: unknown op"),
        (np.zeros((2, 17, 3)), ["--model", LIFT_ONLY_MODEL], LIFT_ONLY_MODEL),
    ],
)
def test_augment_errors_are_one_line(server, tmp_path, array, extra, message) -> None:
    np.savez(tmp_path / "in.npz", pose3d=array)
    result = poseaug_process(
        "augment", "--server", server.address, "--input", tmp_path / "in.npz",
        "--output", tmp_path / "out.npz", *extra,
    )  # fmt: skip
    assert_one_line_error(result, 1, message)


def test_plot_without_matplotlib_says_how_to_install(server, keypoints, tmp_path) -> None:
    blocker = tmp_path / "blocker" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('matplotlib blocked by the test')\n")
    np.savez(tmp_path / "in.npz", keypoints=keypoints)
    env = {"PYTHONPATH": str(blocker.parent), "PATH": "/usr/bin:/bin"}
    result = poseaug_process(
        "lift", "--server", server.address, "--input", tmp_path / "in.npz",
        "--output", tmp_path / "out.npz", "--plot", tmp_path / "p.png", env=env,
    )  # fmt: skip
    assert_one_line_error(result, 1, "pip install 'poseaug-client[plot]'")
    assert not (tmp_path / "out.npz").exists(), "fails before doing the work"


def test_installed_entry_point(server) -> None:
    script = Path(sys.executable).parent / "poseaug"
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    result = subprocess.run(
        [script, "health", "--server", server.address], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout.strip()) == (0, "SERVING")
