"""Clients that are not the Python library: the Node.js script and `buf curl` through server
reflection, both against the real server."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.clients.conftest import CAMERA_AWARE_MODEL, DEFAULT_MODEL, LIFT_ONLY_MODEL
from tests.conftest import REPO
from tests.support.server import free_port

NODE_DIR = REPO / "clients" / "node"


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node not found: install Node.js >= 18 to test clients/node")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.skip("clients/node/node_modules missing: run `npm ci --prefix clients/node`")
    return path


def run_node(node: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [node, str(NODE_DIR / "lift.js"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_node_lifts_the_sample_pose(node, server, client) -> None:
    result = run_node(node, "--server", server.address)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["model"] == DEFAULT_MODEL
    assert answer["joint_names"][0] == "hip" and len(answer["joint_names"]) == 17
    sample = json.loads((NODE_DIR / "lift-sample.json").read_text())
    expected = client.lift(np.array(sample, np.float32))
    np.testing.assert_allclose(np.array(answer["pose3d"]), expected[None], atol=1e-6)


def test_node_lifts_poses_from_a_file_in_any_format(node, server, client, tmp_path) -> None:
    keypoints = np.random.default_rng(8).uniform(0, 640, (3, 17, 2)).astype(np.float32)
    (tmp_path / "poses.json").write_text(json.dumps(keypoints.tolist()))
    result = run_node(
        node, "--server", server.address, "--input", tmp_path / "poses.json",
        "--format", "coco17", "--image-size", "640x480", "--model", LIFT_ONLY_MODEL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["model"] == LIFT_ONLY_MODEL
    expected = client.lift(keypoints, "coco17", (640, 480), model=LIFT_ONLY_MODEL)
    np.testing.assert_allclose(np.array(answer["pose3d"]), expected, atol=1e-6)


def test_node_sends_a_camera(node, camera_server, tmp_path) -> None:
    keypoints = np.random.default_rng(9).uniform(0, 1280, (2, 17, 2)).astype(np.float32)
    (tmp_path / "poses.json").write_text(json.dumps(keypoints.tolist()))
    common = ["--server", camera_server.address, "--input", tmp_path / "poses.json"]
    common += ["--model", CAMERA_AWARE_MODEL]
    result = run_node(node, *common, "--camera", "1200,1100,640,360")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    fed = np.array(answer["pose3d"])  # the camera-aware echo lifter returns its input
    rays = (keypoints - [640, 360]) / [1200, 1100]
    np.testing.assert_allclose(fed[:, 1:, :2], rays[:, 1:], atol=1e-6)
    assert answer["joint_inferred"] == [[0] * 17] * 2 and answer["default_camera"] is False
    # Without a camera: the default one, from the image size.
    result = run_node(node, *common, "--image-size", "1280x720")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["default_camera"] is True
    result = run_node(node, *common, "--camera", "1200,1100,640")
    assert result.returncode == 1 and result.stderr.startswith("lift.js: error: --camera")


def test_node_sends_track_ids(node, temporal_server, tmp_path) -> None:
    """The temporal test lifter answers (first, answered, last) frame of each window: the
    poses of track 4 (labels 1, 2, 3) are lifted as one track."""
    keypoints = np.zeros((4, 17, 2), np.float32)
    keypoints[..., 0] = np.array([1, 50, 2, 3], np.float32)[:, None]
    (tmp_path / "poses.json").write_text(json.dumps(keypoints.tolist()))
    common = ["--server", temporal_server.address, "--input", tmp_path / "poses.json"]
    result = run_node(node, *common, "--camera", "1000,1000,0,0", "--track-ids", "4,9,4,4")
    assert result.returncode == 0, result.stderr
    windows = np.rint(np.array(json.loads(result.stdout)["pose3d"])[:, 1, :] * 1000)
    assert windows.tolist() == [[1, 1, 3], [50, 50, 50], [1, 2, 3], [1, 3, 3]]
    result = run_node(node, *common, "--camera", "1000,1000,0,0", "--track-ids", "4,x")
    assert result.returncode == 1 and result.stderr.startswith("lift.js: error: --track-ids")


def test_node_errors_are_one_line(node, server, tmp_path) -> None:
    result = run_node(node, "--server", f"127.0.0.1:{free_port()}", "--timeout", "5")
    assert result.returncode == 1
    assert result.stderr.startswith("lift.js: error: UNAVAILABLE")
    (tmp_path / "bad.json").write_text(json.dumps([[[1, 2]] * 16]))
    result = run_node(node, "--server", server.address, "--input", tmp_path / "bad.json")
    assert result.returncode == 1
    assert result.stderr.startswith("lift.js: error: INVALID_ARGUMENT: keypoints")


@pytest.fixture(scope="module")
def buf() -> str:
    path = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
    if path is None:
        pytest.skip("buf not installed (requirements-dev.txt: buf-bin)")
    return path


def buf_curl(buf: str, address: str, method: str, body: dict | None = None) -> dict:
    """The README's command: gRPC over plaintext HTTP/2, schema from server reflection."""
    command = [buf, "curl", "--protocol", "grpc", "--http2-prior-knowledge"]
    if body is not None:
        command += ["-d", json.dumps(body)]
    command.append(f"http://{address}/poseaug.v1.PoseAugService/{method}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_buf_curl_lists_models_through_reflection(buf, server, client) -> None:
    answer = buf_curl(buf, server.address, "ListModels")
    assert answer["defaultModel"] == DEFAULT_MODEL
    assert [m["name"] for m in answer["models"]] == [m.name for m in client.models()]
    info = buf_curl(buf, server.address, "GetModelInfo", {"model": LIFT_ONLY_MODEL})
    assert info["model"]["name"] == LIFT_ONLY_MODEL
    assert "hasAugmentor" not in info["model"]  # proto3 JSON leaves out false


def test_buf_curl_lifts_base64_tensors(buf, server, client, keypoints) -> None:
    body = {
        "keypoints": {
            "shape": list(keypoints.shape),
            "data": base64.b64encode(keypoints.astype("<f4").tobytes()).decode(),
        },
        "image_size": {"width": 1000, "height": 1000},
    }
    answer = buf_curl(buf, server.address, "Lift2Dto3D", body)
    shape = [int(d) for d in answer["pose3d"]["shape"]]
    poses = np.frombuffer(base64.b64decode(answer["pose3d"]["data"]), "<f4").reshape(shape)
    np.testing.assert_array_equal(poses, client.lift(keypoints))
