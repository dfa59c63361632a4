"""Benchmark of temporal lifting over streams: tracked frames per second and per-frame latency.

    .venv/bin/python bench/temporal_serve.py [--models models] [--streams 64] [--seconds 6]

One server holds a temporal bundle and a single-frame camera-aware one (by default the first
temporal bundle of --models in name order, the causal wild-temporal-causal-vpose, and
wild-poseaug-vpose; `--temporal NAME` picks another, e.g. the 81-frame wild-temporal-vpose
answering at lookahead 0). `--streams` concurrent
StreamLift2Dto3D streams each play one tracked person: one frame per message, the next sent
when the previous answer arrives (causal, lookahead 0), as a live video pipeline would. The
same run with the single-frame bundle (no track ids) lifts the same frames. Printed: frames/s,
per-frame latency p50 / p99, and the temporal/single-frame ratios (one run, same host).
Targets are here, never in tests; this host is a shared 2-core CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from poseaug.v1 import poseaug_pb2, poseaug_pb2_grpc  # noqa: E402
from poseaug_service.bundle import find_bundle_dirs  # noqa: E402
from poseaug_service.server import event_loop_factory  # noqa: E402
from tests.support.protos import tensor  # noqa: E402
from tests.support.server import running_server  # noqa: E402

CAMERA = poseaug_pb2.CameraIntrinsics(fx=1000.0, fy=1000.0, cx=960.0, cy=540.0)


def pick_models(models: Path, temporal: str | None = None) -> tuple[str, str]:
    """(temporal bundle, single-frame camera-aware bundle) names in `models`; `temporal` picks
    the temporal one (default: the first in name order)."""
    single = None
    temporals = []
    for folder in find_bundle_dirs(models):
        lifter = json.loads((folder / "manifest.json").read_text())["lifter"]
        if lifter.get("temporal"):
            temporals.append(folder.name)
        elif lifter.get("normalization") == "camera_rays":
            single = folder.name if single is None or "poseaug" in folder.name else single
    if not temporals or single is None:
        raise SystemExit(f"{models}: needs a temporal and a single-frame camera-aware bundle")
    if temporal is not None and temporal not in temporals:
        raise SystemExit(f"{temporal!r} is not a temporal bundle of {models}: {temporals}")
    return temporal or temporals[0], single


def walking(frames: int, seed: int) -> np.ndarray:
    """[frames, 17, 2] pixels of one person drifting across a 1920 x 1080 image."""
    rng = np.random.default_rng(seed)
    body = rng.normal(0, 60, (17, 2))
    path = np.linspace(0, 400, frames)[:, None] * rng.normal(0, 1, 2)
    return (np.array([960.0, 540.0]) + body[None] + path[:, None]).astype(np.float32)


def play(address: str, model: str, streams: int, seconds: float, tracked: bool) -> dict:
    """`streams` concurrent streams, one frame per message, each sent after the last answer."""

    async def run() -> tuple[list[float], float]:
        latencies: list[float] = []
        async with grpc.aio.insecure_channel(address) as channel:
            stub = poseaug_pb2_grpc.PoseAugServiceStub(channel)
            stop_at = time.perf_counter() + seconds

            async def person(i: int) -> None:
                track = walking(4096, i)
                queue: asyncio.Queue = asyncio.Queue()

                async def messages():
                    k = 0
                    while time.perf_counter() < stop_at:
                        request = poseaug_pb2.Lift2Dto3DRequest(
                            keypoints=tensor(track[k % len(track)][None]),
                            camera=CAMERA,
                            model=model,
                            track_ids=[i] if tracked else [],
                        )
                        await queue.put(time.perf_counter())
                        yield poseaug_pb2.StreamLift2Dto3DRequest(request=request)
                        await answered.wait()
                        answered.clear()
                        k += 1

                answered = asyncio.Event()
                async for _ in stub.StreamLift2Dto3D(messages()):
                    latencies.append(time.perf_counter() - await queue.get())
                    answered.set()

            t0 = time.perf_counter()
            await asyncio.gather(*(person(i) for i in range(streams)))
            return latencies, time.perf_counter() - t0

    with asyncio.Runner(loop_factory=event_loop_factory("auto")) as runner:
        latencies, wall = runner.run(run())
    flat = np.asarray(latencies)
    return {
        "frames_s": len(flat) / wall,
        "p50_ms": 1e3 * float(np.percentile(flat, 50)),
        "p99_ms": 1e3 * float(np.percentile(flat, 99)),
        "frames": len(flat),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--temporal", default=None, help="temporal bundle name (default: first)")
    args = parser.parse_args()
    temporal, single = pick_models(args.models, args.temporal)
    with running_server(args.models, metrics=False) as server:
        play(server.address, temporal, 4, 1.0, True)  # warm both sessions
        play(server.address, single, 4, 1.0, False)
        results = {}
        for _ in range(2):  # alternate, so both see the same background load
            for name, model, tracked in (("temporal", temporal, True), ("single", single, False)):
                r = play(server.address, model, args.streams, args.seconds / 2, tracked)
                prev = results.get(name)
                if prev is not None:  # pool the two halves
                    total = prev["frames"] + r["frames"]
                    r["frames_s"] = (prev["frames_s"] + r["frames_s"]) / 2
                    r["p50_ms"] = (prev["p50_ms"] + r["p50_ms"]) / 2
                    r["p99_ms"] = max(prev["p99_ms"], r["p99_ms"])
                    r["frames"] = total
                results[name] = r
    t, s = results["temporal"], results["single"]
    print(f"models: temporal {temporal}, single-frame {single}; {args.streams} streams, causal")
    for name, r in results.items():
        print(
            f"{name:>9}: {r['frames_s']:8.0f} frames/s  p50 {r['p50_ms']:6.2f} ms  "
            f"p99 {r['p99_ms']:6.2f} ms  ({r['frames']} frames)"
        )
    print(
        f"temporal / single-frame: throughput {t['frames_s'] / s['frames_s']:.2f}x, "
        f"p50 {t['p50_ms'] / s['p50_ms']:.2f}x, p99 {t['p99_ms'] / s['p99_ms']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
