"""The README's first lift and augment, run as written against the real server serving the
shipped bundles (on a free port: the README's 127.0.0.1:50051 is swapped for it here), and the
example clip: it is what its script makes, and it lifts to sensible 3D."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from poseaug_client import Camera, PoseAugClient
from poseaug_client.contract import COCO_NAMES, H36M_JOINT_NAMES
from tests.conftest import REPO
from tests.support.server import ServerHandle, running_server

README_ADDRESS = "127.0.0.1:50051"
CLIP = REPO / "examples" / "two_people_walking"


@pytest.fixture(scope="module")
def shipped_server() -> Iterator[ServerHandle]:
    with running_server(REPO / "models", metrics=False) as handle:
        yield handle


def first_lift_blocks() -> tuple[str, str]:
    """(the shell block, the Python block) of the README's "A first lift"."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## A first lift\n", 1)[1].split("\n## ", 1)[0]
    shell = re.findall(r"```sh\n(.*?)```", section, re.S)
    python = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(shell) == 1 and len(python) == 1, "the first lift has one sh and one python block"
    return shell[0], python[0]


def in_clone(tmp_path: Path) -> Path:
    """A working folder that looks like a fresh clone's root for the examples' paths."""
    (tmp_path / "examples").symlink_to(REPO / "examples")
    return tmp_path


def test_readme_commands_run_as_written(shipped_server: ServerHandle, tmp_path: Path) -> None:
    shell, _ = first_lift_blocks()
    assert README_ADDRESS not in shell  # the CLI's default server is the README's address
    bin_dir = Path(sys.executable).parent  # this venv has what .venv-serve has, and more
    script = shell.replace(".venv-serve/bin/", f"{bin_dir}/")
    env = dict(os.environ, POSEAUG_SERVER=shipped_server.address)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=in_clone(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lifted = np.load(tmp_path / "walk3d.npz")
    assert lifted["pose3d"].shape == (300, 17, 3)
    assert sorted(set(lifted["track_ids"].tolist())) == [1, 2]
    assert lifted["joint_inferred"].any()  # the clip's low scores were inferred
    augmented = np.load(tmp_path / "aug.npz")
    assert augmented["pose3d"].shape == (1200, 17, 3)
    for page, mode in (("walk.html", '"mode":"tracks"'), ("aug.html", '"mode":"augment"')):
        assert mode in (tmp_path / page).read_text()
    assert "wild-temporal-vpose" in done.stdout  # `poseaug models`


def test_readme_python_runs_as_written(shipped_server: ServerHandle, tmp_path: Path) -> None:
    _, python = first_lift_blocks()
    assert README_ADDRESS in python
    (tmp_path / "first_lift.py").write_text(python.replace(README_ADDRESS, shipped_server.address))
    done = subprocess.run(
        [sys.executable, "first_lift.py"],
        cwd=in_clone(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("(300, 17, 3) metres;") and "joints inferred" in lines[0]
    assert int(lines[0].split(";")[1].split()[0]) > 0
    assert lines[1] == "(60, 17, 3) (60, 17, 2)"


def make_clip() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_clip", CLIP / "make_clip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_clip_is_what_its_script_makes(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(CLIP / "make_clip.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (tmp_path / "camera.json").read_text() == (CLIP / "camera.json").read_text()
    made = json.loads((tmp_path / "detections.json").read_text())
    committed = json.loads((CLIP / "detections.json").read_text())
    assert [(d["image_id"], d["track_id"]) for d in made] == [
        (d["image_id"], d["track_id"]) for d in committed
    ]
    values = np.array([d["keypoints"] for d in made])
    assert np.allclose(values, [d["keypoints"] for d in committed], atol=0.11)  # rounding only
    scores = values.reshape(-1, 17, 3)[..., 2]
    assert 0.02 < np.mean(scores < 0.3) < 0.1  # a few low-score joints
    # The README's --camera is this camera.
    camera = json.loads((CLIP / "camera.json").read_text())
    fields = ",".join(f"{camera[k]:g}" for k in ("fx", "fy", "cx", "cy", "width", "height"))
    assert f"--camera {fields}" in (REPO / "README.md").read_text()


def test_example_clip_lifts_close_to_its_own_3d(shipped_server: ServerHandle) -> None:
    clip = make_clip()
    detections, truth = clip.make_clip(0)  # truth [2 people, frames, 17 COCO joints, 3]
    triples = np.array([d["keypoints"] for d in detections], np.float32).reshape(-1, 17, 3)
    with PoseAugClient(shipped_server.address) as client:
        result = client.lift_result(
            triples[..., :2],
            format="coco17",
            scores=triples[..., 2],
            camera=Camera(**clip.CAMERA),
            track_ids=[d["track_id"] for d in detections],
            model="wild-temporal-vpose",
        )
    frames = truth.shape[1]
    lifted = result.poses3d.reshape(frames, 2, 17, 3).transpose(1, 0, 2, 3)
    shared = [n for n in H36M_JOINT_NAMES if n in COCO_NAMES]  # hips, knees, ankles, arms
    mid_hip = truth[..., [COCO_NAMES.index("left_hip"), COCO_NAMES.index("right_hip")], :]
    expected = truth[..., [COCO_NAMES.index(n) for n in shared], :] - mid_hip.mean(
        -2, keepdims=True
    )
    got = lifted[..., [H36M_JOINT_NAMES.index(n) for n in shared], :]
    error_mm = 1000 * np.linalg.norm(got - expected, axis=-1).mean()
    # About 90 mm when made (the lifter's hips and shoulders are Human3.6M's joint centres,
    # not the clip's); a mirrored, upside-down or misplaced clip is far above this.
    assert error_mm < 130, error_mm
