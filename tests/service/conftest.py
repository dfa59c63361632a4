"""Fixtures of the service tests: synthetic bundles and real server processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.support.bundles import make_bundle
from tests.support.server import ServerHandle, running_server

LIMIT = 5000  # --max-poses-per-request of the shared server


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """'alpha' (default, with augmentor) and 'beta' (lifter only, other weights)."""
    root = tmp_path_factory.mktemp("models")
    make_bundle(root, "alpha", default=True, seed=0)
    make_bundle(root, "beta", default=False, with_augmentor=False, seed=7, version="2.0.0")
    return root


@pytest.fixture(scope="session")
def server(models_dir: Path) -> Iterator[ServerHandle]:
    """The shared server: small batches so that requests above 64 poses are split."""
    with running_server(
        models_dir,
        "--max-batch",
        "64",
        "--max-queue-delay-us",
        "2000",
        "--grpc-workers",
        "128",
        "--max-poses-per-request",
        str(LIMIT),
        "--max-message-mb",
        "2",
    ) as handle:
        yield handle


class Lifter:
    """In-process ONNX Runtime on a bundle's lifter: the reference the server must match."""

    def __init__(self, path: Path) -> None:
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def __call__(self, normalized: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(normalized, dtype=np.float32)
        return self.session.run(["pose3d"], {"keypoints": x})[0]


@pytest.fixture(scope="session")
def lifter(models_dir: Path) -> Lifter:
    return Lifter(models_dir / "alpha" / "lifter.onnx")


@pytest.fixture(scope="session")
def augmentor(models_dir: Path) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(models_dir / "alpha" / "augmentor.onnx"), providers=["CPUExecutionProvider"]
    )
