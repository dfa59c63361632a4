"""During a model swap the lift queue holds requests for the old and the new version at once:
the dynamic batcher must never run one version's rows through the other's session."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tests.support.batching import BlockingBatcher
from tests.support.bundles import make_bundle


def session(folder: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(folder / "lifter.onnx"), providers=["CPUExecutionProvider"])


def test_queued_requests_of_two_versions_run_on_their_own_sessions(tmp_path: Path) -> None:
    old = session(make_bundle(tmp_path, "v1", seed=0, with_augmentor=False))
    new = session(make_bundle(tmp_path, "v2", seed=9, with_augmentor=False))
    gate = threading.Event()
    runs: list[tuple[str, int]] = []

    def run_old(x: np.ndarray) -> np.ndarray:
        gate.wait(30)  # holds the worker so that both versions pile up in the queue
        runs.append(("old", len(x)))
        return old.run(["pose3d"], {"keypoints": x})[0]

    def run_new(x: np.ndarray) -> np.ndarray:
        runs.append(("new", len(x)))
        return new.run(["pose3d"], {"keypoints": x})[0]

    def refuse(x: np.ndarray) -> np.ndarray:
        raise AssertionError("every request names its version")

    batcher = BlockingBatcher(refuse, max_batch=64, max_delay_s=0.0, max_queue=64, name="swap")
    rng = np.random.default_rng(2)
    inputs = [rng.uniform(-1, 1, (1 + i % 4, 17, 2)).astype(np.float32) for i in range(24)]
    # old, old, new, new, old, old, ... the order of a swap under concurrent callers
    versions = ["old" if (i // 2) % 2 == 0 else "new" for i in range(len(inputs))]
    try:
        pending = [
            batcher.submit(x, run=run_old if v == "old" else run_new)
            for x, v in zip(inputs, versions, strict=True)
        ]
        gate.set()
        outputs = [batcher.wait(p, timeout=30) for p in pending]
    finally:
        gate.set()
        batcher.close()
    for x, v, y in zip(inputs, versions, outputs, strict=True):
        expected = (old if v == "old" else new).run(["pose3d"], {"keypoints": x})[0]
        np.testing.assert_array_equal(y, expected)
    assert sum(n for _, n in runs) == sum(len(x) for x in inputs), "every row ran exactly once"
    assert len(runs) < len(inputs), "neighbours of the same version still share a run"
