"""Replay the Dockerfile's `cpu` target without Docker: its build stages' exact RUN commands
(fresh `python -m venv`, pip with deploy/requirements-cpu.txt, the two packages) on a copy of
the build context that .dockerignore admits, then its exact ENTRYPOINT + CMD and HEALTHCHECK,
with the image's absolute paths mapped under a temporary root, free ports and 127.0.0.1 for
0.0.0.0. The GPU target differs only in its requirement file, whose pins test_dockerfile.py
checks against this one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from packaging.utils import canonicalize_name

from poseaug.v1 import poseaug_pb2_grpc
from tests.deploy.dockerfile import (
    Dockerfile,
    DockerIgnore,
    parse_dockerfile,
    parse_env,
    walk_context,
)
from tests.deploy.launch import wait_for_port
from tests.deploy.requirements import pinned_version, pins
from tests.support.bundles import make_bundle
from tests.support.protos import array, lift_request, normalize_reference
from tests.support.server import REPO, free_port, stop_server, wait_serving

TARGET = "cpu"
MODEL = "recipe-test"
pytestmark = pytest.mark.slow


class ImageRoot:
    """The image's file system under a temporary folder: '/opt/venv' -> root/opt/venv."""

    def __init__(self, root: Path, dockerfile: Dockerfile) -> None:
        self.root = root
        paths = {i.text for s in dockerfile.stages for i in s.all("WORKDIR")}
        for stage in dockerfile.stages:
            for copy in stage.all("COPY"):
                flags, args = copy.flags_and_args()
                if "from" in flags:
                    paths.add(args[-1])
        self.paths = sorted((p.rstrip("/") for p in paths if p.startswith("/")), key=len)[::-1]

    def host(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def map(self, text: str) -> str:
        """Rewrite the image's absolute paths inside a command or an ENV value."""
        for path in self.paths:
            text = re.sub(rf"(?<![\w/]){re.escape(path)}(?=/|\b|$)", str(self.host(path)), text)
        return text


def copy_into(sources: list[str], dest: Path, context: list[str]) -> None:
    """COPY semantics for files and folders of the (filtered) build context."""
    for source in sources:
        files = [p for p in context if p == source or p.startswith(source + "/")]
        assert files, f"COPY {source}: nothing of it is in the build context"
        for rel in files:
            inside = rel[len(source) :].lstrip("/")
            target = dest / (inside or Path(rel).name) if inside or dest.is_dir() else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, target)


def host_env() -> dict[str, str]:
    """This machine's environment (its pip settings included) as the base image's stand-in:
    `python` is this Python 3.11, no virtual environment is active, no token is set."""
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "POSEAUG_TOKEN", "PIP_REQUIRE_VIRTUALENV"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def replay_build(dockerfile: Dockerfile, stage_name: str, image: ImageRoot, context) -> None:
    env = host_env()
    workdir = image.root
    for stage in dockerfile.chain(stage_name):
        for instruction in stage.instructions:
            keyword, text = instruction.keyword, instruction.text
            if keyword == "ENV":
                env.update(parse_env(image.map(text), env))
            elif keyword == "WORKDIR":
                workdir = image.host(text)
                workdir.mkdir(parents=True, exist_ok=True)
            elif keyword == "COPY":
                flags, args = instruction.flags_and_args()
                assert not flags, f"build stages copy from the context only: {text}"
                dest = workdir / args[-1]
                if args[-1].endswith("/"):
                    dest.mkdir(parents=True, exist_ok=True)
                copy_into(args[:-1], dest, context)
            elif keyword == "RUN":
                result = subprocess.run(
                    ["bash", "-c", image.map(text)],
                    cwd=workdir,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=400,
                )
                assert result.returncode == 0, f"RUN {text}\n{result.stdout}\n{result.stderr}"
            else:
                assert keyword in {"ARG", "LABEL"}, f"replay does not know {keyword}"


def substitute_flags(args: list[str], values: dict[str, str]) -> list[str]:
    out = list(args)
    for i, word in enumerate(out[:-1]):
        if word in values:
            out[i + 1] = values[word]
    return out


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory):
    """The `cpu` target's file system: its venv built by the Dockerfile's own commands."""
    dockerfile = parse_dockerfile(REPO / "Dockerfile")
    image = ImageRoot(tmp_path_factory.mktemp("image"), dockerfile)
    context = walk_context(REPO, DockerIgnore.read(REPO / ".dockerignore"))
    (venv_copy,) = [i.flags_and_args() for i in dockerfile.stage(TARGET).all("COPY")]
    replay_build(dockerfile, venv_copy[0]["from"], image, context)
    # The runtime stage's own COPY (models/) lands where the image has it; a test bundle joins.
    workdir = image.host(dockerfile.last(TARGET, "WORKDIR").text)
    for stage in dockerfile.chain(TARGET):
        for instruction in stage.all("COPY"):
            flags, args = instruction.flags_and_args()
            if "from" not in flags:
                copy_into(args[:-1], workdir / args[-1], context)
    return dockerfile, image, workdir


def test_cpu_image_recipe_serves_and_passes_its_healthcheck(image) -> None:
    dockerfile, root, workdir = image
    env = host_env()
    for stage in dockerfile.chain(TARGET):
        for instruction in stage.all("ENV"):
            env.update(parse_env(root.map(instruction.text), env))
    entrypoint = dockerfile.last(TARGET, "ENTRYPOINT").exec_form()
    cmd = dockerfile.last(TARGET, "CMD").exec_form()
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"

    models = root.host(cmd[cmd.index("--models") + 1])
    make_bundle(models, MODEL, default=False, seed=11)
    ports = {"--port": free_port(), "--health-port": free_port(), "--metrics-port": free_port()}
    command = [root.map(w) for w in entrypoint + cmd]
    command = substitute_flags(
        command, {"--host": "127.0.0.1"} | {k: str(v) for k, v in ports.items()}
    )
    executable = shutil.which(command[0], path=env["PATH"])
    assert executable and executable.startswith(str(root.root)), (
        "poseaug-serve from the image's venv"
    )

    log_path = root.root / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        port = wait_for_port(proc, log_path)
        assert port == ports["--port"]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            wait_serving(channel, 60)
            kp = np.random.default_rng(4).uniform(0, 1000, (6, 17, 2)).astype(np.float32)
            reply = poseaug_pb2_grpc.PoseAugServiceStub(channel).Lift2Dto3D(
                lift_request(kp, model=MODEL, request_id="recipe-1"), timeout=30
            )
        session = ort.InferenceSession(
            str(models / MODEL / "lifter.onnx"), providers=["CPUExecutionProvider"]
        )
        expected = session.run(["pose3d"], {"keypoints": normalize_reference(kp, 1000, 1000)})[0]
        np.testing.assert_allclose(array(reply.pose3d), expected, atol=1e-5)
        assert reply.request_id == "recipe-1" and reply.model == MODEL

        _, probe = dockerfile.last(TARGET, "HEALTHCHECK").healthcheck()
        probe = [w.replace(":50052", f":{ports['--health-port']}") for w in probe]
        result = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and result.stdout.strip() == "SERVING", result

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        result = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode != 0, "the HEALTHCHECK fails once the server is gone"
    finally:
        stop_server(proc)
    assert "CPUExecutionProvider" in log_path.read_text()


def test_cpu_image_holds_exactly_the_pinned_packages(image) -> None:
    _, root, _ = image
    python = root.host("/opt/venv/bin/python")
    freeze = subprocess.run(
        [python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    ).stdout
    installed = {
        canonicalize_name(re.match(r"[A-Za-z0-9_.-]+", line).group(0)): line
        for line in freeze.splitlines()
        if line.strip()
    }
    pinned = pins(TARGET)
    extra = (
        set(installed) - set(pinned) - {"pip", "setuptools", "poseaug-client", "poseaug-service"}
    )
    assert not extra, f"installed but not pinned in requirements-{TARGET}.txt: {extra}"
    for name, req in pinned.items():
        assert installed[name].endswith(f"=={pinned_version(req)}"), installed[name]
    assert "torch" not in installed and "poseaug-training" not in installed

    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
    complaints = [c for c in check.stdout.splitlines() if c.strip()]
    # service/pyproject.toml names onnxruntime-gpu for Linux x86-64; the CPU image swaps in the
    # CPU build on purpose. Nothing else may be missing.
    assert all("requires onnxruntime-gpu" in c for c in complaints), complaints

    providers = subprocess.run(
        [python, "-c", "import onnxruntime; print(onnxruntime.get_available_providers())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "CUDAExecutionProvider" not in providers and "CPUExecutionProvider" in providers
