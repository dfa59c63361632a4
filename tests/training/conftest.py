"""Fixtures of the training tests: a small synthetic Human3.6M-layout dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.synthetic_h36m import make_fake_h36m


@pytest.fixture(scope="session")
def fake_h36m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_h36m(tmp_path_factory.mktemp("fake_h36m"), subjects=("S1", "S5", "S9", "S11"))
