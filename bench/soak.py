"""Bounded soak of the PoseAug server: concurrent callers mixing Lift2Dto3D, StreamLift2Dto3D,
Augment and StreamAugment for a fixed time against one real server process; prints requests
per RPC, errors by status code and the server's RSS (from /proc) over time.

    .venv/bin/python bench/soak.py [--seconds 30] [--callers 8] [--lifter linear|vpose]
                                   [--models DIR] [--warmup-s 5] [-- SERVER FLAGS...]

Targets: zero unexpected errors (every call OK) and RSS growth < 10% from the end of the
warm-up to the end of the run. Exit status 1 when a target is missed. Timing and memory
targets live here, never in tests.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from poseaug.v1 import poseaug_pb2, poseaug_pb2_grpc  # noqa: E402
from tests.reliability.procfs import peak_rss_mib, rss_mib  # noqa: E402
from tests.support.bundles import make_bundle  # noqa: E402
from tests.support.protos import lift_request, tensor  # noqa: E402
from tests.support.server import CHANNEL_OPTIONS, running_server  # noqa: E402

RSS_GROWTH_TARGET = 0.10
MIX = (("Lift2Dto3D", 50), ("StreamLift2Dto3D", 15), ("Augment", 20), ("StreamAugment", 15))


class Tally:
    """Calls and status codes per RPC, shared by the callers."""

    def __init__(self) -> None:
        self.calls: Counter = Counter()
        self.codes: Counter = Counter()
        self.poses: Counter = Counter()
        self.lock = threading.Lock()

    def record(self, method: str, code: grpc.StatusCode, poses: int = 0) -> None:
        with self.lock:
            self.calls[method] += 1
            self.codes[(method, code.name)] += 1
            self.poses[method] += poses


def source_poses(rng: np.random.Generator, n: int) -> np.ndarray:
    poses = rng.normal(0, 0.25, (n, 17, 3)).astype(np.float32)
    return poses - poses[:, :1]


def one_call(stub, method: str, rng: np.random.Generator, ids) -> int:
    """Make one call of `method` with random sizes; returns the poses it produced."""
    if method == "Lift2Dto3D":
        n = int(rng.integers(1, 65))
        kp = rng.uniform(0, 1000, (n, 17, 2)).astype(np.float32)
        reply = stub.Lift2Dto3D(lift_request(kp, request_id=f"soak-{next(ids)}"), timeout=30)
        assert reply.pose3d.shape[0] == n
        return n
    if method == "StreamLift2Dto3D":
        batches = [int(rng.integers(1, 33)) for _ in range(int(rng.integers(3, 9)))]
        messages = [
            poseaug_pb2.StreamLift2Dto3DRequest(
                request=lift_request(
                    rng.uniform(0, 1000, (n, 17, 2)).astype(np.float32),
                    request_id=f"soak-{next(ids)}",
                )
            )
            for n in batches
        ]
        replies = list(stub.StreamLift2Dto3D(iter(messages), timeout=60))
        assert [r.response.request_id for r in replies] == [m.request.request_id for m in messages]
        return sum(batches)
    if method == "Augment":
        n, count = int(rng.integers(1, 17)), int(rng.integers(1, 9))
        request = poseaug_pb2.AugmentRequest(
            poses3d=tensor(source_poses(rng, n)), count=count, seed=int(rng.integers(0, 2**62))
        )
        reply = stub.Augment(request, timeout=30)
        assert reply.poses3d.shape[0] == n * count
        return n * count
    n, count = int(rng.integers(4, 17)), int(rng.integers(16, 65))
    request = poseaug_pb2.StreamAugmentRequest(
        request=poseaug_pb2.AugmentRequest(
            poses3d=tensor(source_poses(rng, n)), count=count, seed=int(rng.integers(0, 2**62))
        ),
        chunk_size=int(rng.integers(32, 257)),
    )
    rows = sum(c.chunk.poses3d.shape[0] for c in stub.StreamAugment(request, timeout=60))
    assert rows == n * count
    return rows


def caller(address: str, seed: int, stop: threading.Event, tally: Tally, ids) -> None:
    rng = np.random.default_rng(seed)
    chooser = random.Random(seed)
    methods, weights = zip(*MIX, strict=True)
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = poseaug_pb2_grpc.PoseAugServiceStub(channel)
        while not stop.is_set():
            method = chooser.choices(methods, weights)[0]
            try:
                poses = one_call(stub, method, rng, ids)
            except grpc.RpcError as error:
                tally.record(method, error.code())
                continue
            tally.record(method, grpc.StatusCode.OK, poses)


def soak(address: str, pid: int, seconds: float, warmup_s: float, callers: int) -> dict:
    tally, stop, ids = Tally(), threading.Event(), itertools.count()
    threads = [
        threading.Thread(target=caller, args=(address, 1000 + i, stop, tally, ids), daemon=True)
        for i in range(callers)
    ]
    start_rss = rss_mib(pid)
    started = time.monotonic()
    for t in threads:
        t.start()
    samples: list[tuple[float, float]] = []
    while (elapsed := time.monotonic() - started) < seconds:
        samples.append((elapsed, rss_mib(pid)))
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    samples.append((time.monotonic() - started, rss_mib(pid)))
    after_warmup = [r for t, r in samples if t >= warmup_s] or [samples[-1][1]]
    steady = np.array([(t, r) for t, r in samples if t >= warmup_s] or samples[-1:])
    slope = float(np.polyfit(steady[:, 0], steady[:, 1], 1)[0]) * 60 if len(steady) > 2 else 0.0
    return {
        "tally": tally,
        "elapsed": samples[-1][0],
        "rss_start": start_rss,
        "rss_warm": after_warmup[0],
        "rss_end": samples[-1][1],
        "rss_peak": peak_rss_mib(pid),
        "slope_mib_per_min": slope,
    }


def report(result: dict, seconds: float) -> bool:
    tally: Tally = result["tally"]
    total = sum(tally.calls.values())
    print(f"soak: {result['elapsed']:.1f} s, {total} requests ({total / result['elapsed']:.0f}/s)")
    for method, _ in MIX:
        codes = {c: n for (m, c), n in tally.codes.items() if m == method}
        print(
            f"  {method:18} {tally.calls[method]:7d} calls {tally.poses[method]:9d} poses  {codes}"
        )
    errors = {f"{m} {c}": n for (m, c), n in tally.codes.items() if c != "OK"}
    print(f"errors by code: {errors or 'none'}")
    growth = result["rss_end"] / result["rss_warm"] - 1
    print(
        f"server RSS MiB: start {result['rss_start']:.1f}, after warm-up {result['rss_warm']:.1f},"
        f" end {result['rss_end']:.1f}, peak {result['rss_peak']:.1f}; growth after warm-up "
        f"{growth * 100:+.1f}% (target < {RSS_GROWTH_TARGET * 100:.0f}%), trend "
        f"{result['slope_mib_per_min']:+.2f} MiB/min"
    )
    ok = not errors and growth < RSS_GROWTH_TARGET and total > 0
    print(f"targets: {'MET' if ok else 'MISSED'}")
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="length of the soak (default 30)")
    p.add_argument("--callers", type=int, default=8, help="concurrent callers (default 8)")
    p.add_argument("--warmup-s", type=float, default=5.0, help="RSS growth is measured after it")
    p.add_argument("--models", type=Path, help="model repository (default: a synthetic bundle)")
    p.add_argument("--lifter", choices=("linear", "vpose"), default="linear")
    p.add_argument("server_flags", nargs="*", help="extra poseaug-serve flags (after --)")
    args = p.parse_args()
    if args.seconds <= args.warmup_s:
        p.error("--seconds must exceed --warmup-s")
    with tempfile.TemporaryDirectory(prefix="poseaug-soak-") as tmp:
        models = args.models
        if models is None:
            models = Path(tmp)
            make_bundle(models, "soak", lifter=args.lifter)
        with running_server(models, *args.server_flags) as srv:
            result = soak(srv.address, srv.process.pid, args.seconds, args.warmup_s, args.callers)
    return 0 if report(result, args.seconds) else 1


if __name__ == "__main__":
    sys.exit(main())
