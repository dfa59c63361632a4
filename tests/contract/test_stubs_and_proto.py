"""The contract: committed stubs match proto/, the proto is lint-clean, packages stay apart."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

PROTO = "poseaug/v1/poseaug.proto"
STUB_DIR = REPO / "clients" / "python" / "src" / "poseaug" / "v1"
GENERATED = ("poseaug_pb2.py", "poseaug_pb2.pyi", "poseaug_pb2_grpc.py")


def generate_stubs(proto_root: Path, out: Path) -> None:
    """Run the same generator as `make proto` into `out`."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{proto_root}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            str(proto_root / PROTO),
        ],
        check=True,
    )


def drifted_files(proto_root: Path, tmp: Path) -> list[str]:
    generate_stubs(proto_root, tmp)
    fresh = tmp / "poseaug" / "v1"
    return [n for n in GENERATED if not filecmp.cmp(fresh / n, STUB_DIR / n, shallow=False)]


def test_committed_stubs_match_proto(tmp_path: Path) -> None:
    drifted = drifted_files(REPO / "proto", tmp_path)
    assert not drifted, f"stubs out of date with {PROTO}: {drifted}; run `make proto`"


def test_drift_check_catches_a_hand_edited_proto(tmp_path: Path) -> None:
    edited_root = tmp_path / "proto"
    shutil.copytree(REPO / "proto", edited_root)
    path = edited_root / PROTO
    text = path.read_text()
    edited = text.replace("message Tensor {\n", "message Tensor {\n  bool x = 99;\n", 1)
    assert edited != text
    path.write_text(edited)
    out = tmp_path / "out"
    out.mkdir()
    assert drifted_files(edited_root, out), "a changed proto must make the stub check fail"


def test_buf_lint_clean() -> None:
    buf = shutil.which("buf", path=str(Path(sys.executable).parent))
    if buf is None:
        pytest.fail("buf not installed (requirements-dev.txt: buf-bin)")
    result = subprocess.run([buf, "lint"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_stubs_import_and_describe_the_service() -> None:
    from poseaug.v1 import poseaug_pb2, poseaug_pb2_grpc

    service = poseaug_pb2.DESCRIPTOR.services_by_name["PoseAugService"]
    assert {m.name for m in service.methods} == {
        "Lift2Dto3D",
        "StreamLift2Dto3D",
        "Augment",
        "StreamAugment",
        "ListModels",
        "GetModelInfo",
    }
    assert hasattr(poseaug_pb2_grpc, "PoseAugServiceStub")


@pytest.mark.parametrize("dist", ["service", "clients/python"])
def test_serving_side_never_depends_on_torch(dist: str) -> None:
    meta = tomllib.loads((REPO / dist / "pyproject.toml").read_text())
    deps = " ".join(meta["project"]["dependencies"]).lower()
    assert "torch" not in deps
    assert "poseaug-training" not in deps


def test_training_pins_cpu_torch() -> None:
    meta = tomllib.loads((REPO / "training" / "pyproject.toml").read_text())
    assert "torch==2.13.0" in meta["project"]["dependencies"]
