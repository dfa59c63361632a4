"""Fixtures of the client tests: tiny model bundles and one real server shared by the session."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from poseaug_client import PoseAugClient
from tests.support.bundles import make_bundle
from tests.support.server import ServerHandle, running_server

DEFAULT_MODEL = "tiny"
LIFT_ONLY_MODEL = "liftonly"
CAMERA_AWARE_MODEL = "aware"
TEMPORAL_MODEL = "temporal"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two bundles: the default with an augmentor, and a lifter-only one."""
    root = tmp_path_factory.mktemp("models")
    make_bundle(root, DEFAULT_MODEL, default=True)
    make_bundle(root, LIFT_ONLY_MODEL, default=False, with_augmentor=False, seed=7)
    return root


@pytest.fixture(scope="session")
def server(model_dir: Path) -> Iterator[ServerHandle]:
    with running_server(model_dir) as handle:
        yield handle


@pytest.fixture(scope="session")
def camera_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A format 1 bundle (the default) beside a camera-aware one whose lifter echoes its
    input (x, y, visible per joint; joint 0 zeroed), for the camera and scores options."""
    root = tmp_path_factory.mktemp("camera-models")
    make_bundle(root, DEFAULT_MODEL, default=True, with_augmentor=False)
    make_bundle(root, CAMERA_AWARE_MODEL, default=False, with_augmentor=False, lifter="rays_echo")
    with running_server(root, metrics=False) as handle:
        yield handle


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A temporal bundle (the default) whose lifter tells which frames filled each window
    (tests/support/bundles.py "window_probe"), beside a camera-aware single-frame one."""
    root = tmp_path_factory.mktemp("temporal-models")
    make_bundle(root, TEMPORAL_MODEL, default=True, with_augmentor=False, lifter="window_probe")
    make_bundle(root, CAMERA_AWARE_MODEL, default=False, with_augmentor=False, lifter="rays_echo")
    with running_server(root, metrics=False) as handle:
        yield handle


@pytest.fixture
def client(server: ServerHandle) -> Iterator[PoseAugClient]:
    with PoseAugClient(server.address) as c:
        yield c


@pytest.fixture
def keypoints() -> np.ndarray:
    """23 random H36M-17 poses in pixels of a 1000 x 1000 image."""
    return np.random.default_rng(0).uniform(100, 900, (23, 17, 2)).astype(np.float32)


@pytest.fixture
def slow_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """46,000 poses: lifting them takes the server far longer than a 1 ms deadline, so a
    deadline test does not race the server (a 10-pose call can beat a client's timer)."""
    return np.tile(keypoints, (2000, 1, 1))


@pytest.fixture
def poses3d() -> np.ndarray:
    """11 random root-relative 3D poses, metres."""
    poses = np.random.default_rng(1).normal(0, 0.3, (11, 17, 3)).astype(np.float32)
    return poses - poses[:, :1]


class RetryLog(logging.Handler):
    """Collects the client's retry warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying" in record.getMessage():
            self.messages.append(record.getMessage())


@pytest.fixture
def retry_log() -> Iterator[RetryLog]:
    handler = RetryLog()
    logger = logging.getLogger("poseaug_client")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
