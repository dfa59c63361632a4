"""Shared fixtures: repository paths and the Human3.6M data location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def h36m_dir() -> Path:
    """Where the licensed Human3.6M arrays live (never copied into the repository)."""
    return Path(os.environ.get("POSEAUG_H36M", REPO.parent / "shared" / "data" / "h36m")).resolve()


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def h36m() -> Path:
    """Path of the real data; skips (naming the path) where it is missing."""
    path = h36m_dir()
    if not (path / "h36m_3d_17j.npz").is_file():
        pytest.skip(f"Human3.6M arrays not found at {path} (set POSEAUG_H36M)")
    return path
