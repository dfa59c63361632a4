"""Augment poses/s of this tree against an earlier checkout, interleaved in one run.

    git worktree add --detach /tmp/before <commit>
    .venv/bin/python bench/augment_throughput.py --before /tmp/before [--rounds 6]

Starts two servers on the same bundle (the default of --models, or --model): one from this
tree, one from the checkout at --before (its service and client sources put first on
PYTHONPATH, the same interpreter and packages). Times Augment (256 poses x 16, unary) and
StreamAugment (102,400 rows in chunks of 4,096), as bench/serve.py does, alternating the two
servers every round so that both see the same background load on a shared host, and prints
each one's median poses/s and the ratio (this tree / before) per round and overall.
Target (issue 21): ratio >= 1.0 with Augment's new defaults (placement, tilt bound, joint
limits) against the Augment of before them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from poseaug.v1 import poseaug_pb2, poseaug_pb2_grpc  # noqa: E402
from poseaug_service.bundle import find_bundle_dirs  # noqa: E402
from tests.support.protos import tensor  # noqa: E402
from tests.support.server import running_server  # noqa: E402

UNARY_POSES, UNARY_COUNT = 256, 16
STREAM_COUNT, STREAM_CHUNK = 400, 4096


def one_bundle(models: Path, name: str | None, scratch: Path) -> Path:
    """A repository holding only the bundle under test (both servers load the same files)."""
    for d in find_bundle_dirs(models):
        manifest = json.loads((d / "manifest.json").read_text())
        if (name and d.name == name) or (not name and manifest.get("default")):
            (scratch / d.name).symlink_to(d.resolve())
            return scratch
    raise SystemExit(f"no bundle {name or '(default)'} with an augmentor in {models}")


def start(stack: contextlib.ExitStack, models: Path, pythonpath: str):
    """A server (closed with `stack`) whose poseaug_service / poseaug_client come from
    `pythonpath` first; a stub for it."""
    with mock.patch.dict(os.environ, {"PYTHONPATH": pythonpath}):
        handle = stack.enter_context(running_server(models, metrics=False))
    return poseaug_pb2_grpc.PoseAugServiceStub(handle.channel)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout of the earlier tree")
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--model", default=None, help="bundle folder name (default: the default)")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    before = args.before.resolve()
    before_path = f"{before / 'service' / 'src'}{os.pathsep}{before / 'clients' / 'python' / 'src'}"

    poses = np.zeros((UNARY_POSES, 17, 3), np.float32)
    poses[:, 1:] = np.random.default_rng(3).normal(0, 0.3, (UNARY_POSES, 16, 3))
    unary = poseaug_pb2.AugmentRequest(poses3d=tensor(poses), count=UNARY_COUNT, seed=1)
    stream = poseaug_pb2.StreamAugmentRequest(request=unary, chunk_size=STREAM_CHUNK)
    stream.request.count = STREAM_COUNT

    def unary_rate(stub) -> float:
        t = time.perf_counter()
        stub.Augment(unary)
        return UNARY_POSES * UNARY_COUNT / (time.perf_counter() - t)

    def stream_rate(stub) -> float:
        t = time.perf_counter()
        rows = sum(c.chunk.poses3d.shape[0] for c in stub.StreamAugment(stream))
        return rows / (time.perf_counter() - t)

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        models = one_bundle(args.models, args.model, Path(tmp))
        bundle = next(models.iterdir()).name
        stubs = {"before": start(stack, models, before_path), "now": start(stack, models, "")}
        for stub in stubs.values():  # warm up
            stub.Augment(unary)
        rates = {(k, m): [] for k in stubs for m in ("unary", "stream")}
        for _ in range(args.rounds):
            for measure, fn in (("unary", unary_rate), ("stream", stream_rate)):
                for k, stub in stubs.items():
                    rates[k, measure].append(fn(stub))
    print(f"bundle: {bundle}; before: {before}")
    for measure in ("unary", "stream"):
        b, n = np.array(rates["before", measure]), np.array(rates["now", measure])
        per_round = ", ".join(f"{r:.2f}" for r in n / b)
        print(
            f"{measure:6s} before {np.median(b):8,.0f}  now {np.median(n):8,.0f} poses/s  "
            f"ratio {np.median(n) / np.median(b):.2f} (per round {per_round})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
