"""Benchmark of the PoseAug server against in-process ONNX Runtime (one run, ratios printed).

    .venv/bin/python bench/serve.py [--models models] [--seconds 4]

Batching off is the same server with `--max-batch 1`, every run on the all-cores session.
Uses the default bundle of --models, or (when there is none) a VideoPose3D-1f-sized lifter
(~8.5M parameters, built with onnx.helper by tests/support/bundles.py) so numbers are
realistic. Measures: in-process ORT poses/s at batch 1 and 1024; service bulk lifting poses/s
and its ratio to in-process; 64 concurrent single-pose callers with batching on vs off
(throughput, p50, p99); one caller's single-pose p50; Augment poses/s; and the floor, a
server with an empty handler. CPU time per call (client and server processes) and ORT's CPU time
per pose give the host's CPU ceiling: the poses/s no batching server could exceed here.
Targets (2-core CPU):
bulk >= 0.9x in-process, batching on >= 4x off at 64 callers, single-pose p50 <= in-process
p50 + 1 ms. Timing targets live here, never in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from poseaug.v1 import poseaug_pb2, poseaug_pb2_grpc  # noqa: E402
from poseaug_service.bundle import find_bundle_dirs  # noqa: E402
from poseaug_service.camera_rays import (  # noqa: E402
    default_intrinsics,
    pixels_to_rays,
    ray_input,
)
from poseaug_service.config import ServerConfig  # noqa: E402
from poseaug_service.providers import available_cores  # noqa: E402
from poseaug_service.server import event_loop_factory  # noqa: E402
from poseaug_service.sessions import session_options  # noqa: E402
from tests.reliability.procfs import cpu_seconds  # noqa: E402
from tests.support.bundles import make_bundle  # noqa: E402
from tests.support.protos import lift_request, tensor  # noqa: E402
from tests.support.server import free_port, running_server  # noqa: E402


def pick_bundle(models: Path, scratch: Path) -> tuple[Path, Path, str]:
    """(models dir, default bundle folder, note) — builds the fallback bundle if needed."""
    dirs = find_bundle_dirs(models)
    for d in dirs:
        if json.loads((d / "manifest.json").read_text()).get("default"):
            return models, d, f"default bundle {d.name} of {models}"
    if dirs:
        return models, dirs[0], f"bundle {dirs[0].name} of {models} (none marked default)"
    folder = make_bundle(scratch, "bench-vpose", lifter="vpose")
    return scratch, folder, "no bundle in models/: built a VPose-1f-sized MLP (8.5M parameters)"


def timed_loop(fn, seconds: float, min_iters: int = 3) -> list[float]:
    """Call fn repeatedly for `seconds` (at least min_iters times); per-call seconds."""
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < min_iters:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def model_input(px: np.ndarray, channels: int) -> np.ndarray:
    """What the server feeds the lifter for pixels of a 1000 x 1000 image: screen coordinates
    (format 1), or rays through the default camera with every joint seen (camera-aware)."""
    if channels == 2:
        return (px / 1000 * 2 - 1).astype(np.float32)
    rays, _ = pixels_to_rays(px, default_intrinsics(1000.0, 1000.0))
    return ray_input(rays, np.ones(px.shape[:2], dtype=bool))


def in_process_session(lifter: Path) -> ort.InferenceSession:
    """In-process ORT with the faster of the server's session options and ORT's defaults."""
    server_opts = session_options(ServerConfig(models=Path()))
    best, best_time = None, np.inf
    probe = ort.InferenceSession(str(lifter), providers=["CPUExecutionProvider"])
    x = model_input(pixels(1024, 1), probe.get_inputs()[0].shape[-1])
    for opts in (server_opts, ort.SessionOptions()):
        session = ort.InferenceSession(str(lifter), opts, providers=["CPUExecutionProvider"])
        session.run(None, {"keypoints": x})
        t = min(timed_loop(lambda s=session: s.run(None, {"keypoints": x}), 0.5))
        if t < best_time:
            best, best_time = session, t
    return best


def pixels(n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, 17, 2)) * 1000).astype(np.float32)


def concurrent_callers(
    address: str, callers: int, seconds: float, server_pid: int
) -> dict[str, float]:
    """`callers` concurrent callers, each sending single-pose requests back to back.

    The callers are asyncio tasks on one grpc.aio channel, on uvloop when it is installed: a
    light client, so that on a small host the measurement is not dominated by 64 client
    threads fighting over the GIL. Also returns the CPU time per call of this (client) process
    and of the server process.
    """

    async def run() -> tuple[list[float], float]:
        latencies: list[float] = []
        async with grpc.aio.insecure_channel(address) as channel:
            stub = poseaug_pb2_grpc.PoseAugServiceStub(channel)
            await stub.Lift2Dto3D(lift_request(pixels(1, 0)))
            stop_at = time.perf_counter() + seconds

            async def caller(i: int) -> None:
                request = lift_request(pixels(1, i))
                while time.perf_counter() < stop_at:
                    t = time.perf_counter()
                    await stub.Lift2Dto3D(request)
                    latencies.append(time.perf_counter() - t)

            t0 = time.perf_counter()
            await asyncio.gather(*(caller(i) for i in range(callers)))
            return latencies, time.perf_counter() - t0

    client_cpu, server_cpu = time.process_time(), cpu_seconds(server_pid)
    with asyncio.Runner(loop_factory=event_loop_factory("auto")) as runner:
        latencies, wall = runner.run(run())
    flat = np.asarray(latencies)
    return {
        "poses_s": len(flat) / wall,
        "p50_ms": 1e3 * float(np.percentile(flat, 50)),
        "p99_ms": 1e3 * float(np.percentile(flat, 99)),
        "client_cpu_us": 1e6 * (time.process_time() - client_cpu) / len(flat),
        "server_cpu_us": 1e6 * (cpu_seconds(server_pid) - server_cpu) / len(flat),
    }


async def _echo_server(port: int) -> None:
    """PoseAugService whose Lift2Dto3D answers an empty message at once: the cost of a gRPC
    call itself on this host, with no parsing, batching or model."""

    class Echo(poseaug_pb2_grpc.PoseAugServiceServicer):
        async def Lift2Dto3D(self, request, context):  # noqa: N802 (gRPC method name)
            return poseaug_pb2.Lift2Dto3DResponse()

    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    poseaug_pb2_grpc.add_PoseAugServiceServicer_to_server(Echo(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("READY", flush=True)
    await server.wait_for_termination()


@contextlib.contextmanager
def echo_server() -> Iterator[tuple[str, int]]:
    """The empty-handler server in its own process (as the real server runs); yields its
    address and pid."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--echo-server", str(port)], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"READY"
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        proc.kill()
        proc.wait()


def interleaved(a, b, rounds: int) -> tuple[list[float], list[float]]:
    """Time a() and b() alternately, so both see the same background load on a shared host."""
    ta, tb = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        a()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        b()
        tb.append(time.perf_counter() - t)
    return ta, tb


def augment_rates(stub, seconds: float) -> dict[str, float]:
    poses = np.zeros((256, 17, 3), np.float32)
    poses[:, 1:] = np.random.default_rng(3).normal(0, 0.3, (256, 16, 3))
    aug = poseaug_pb2.AugmentRequest(poses3d=tensor(poses), count=16, seed=1)
    t = timed_loop(lambda: stub.Augment(aug), seconds / 2, min_iters=2)
    out = {"augment_poses_s": 256 * 16 * len(t) / sum(t)}
    sreq = poseaug_pb2.StreamAugmentRequest(request=aug, chunk_size=4096)
    sreq.request.count = 400  # 102,400 output poses
    t0 = time.perf_counter()
    rows = sum(c.chunk.poses3d.shape[0] for c in stub.StreamAugment(sreq))
    out["stream_augment_poses_s"] = rows / (time.perf_counter() - t0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each phase")
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--flags", default="", help="extra server flags, space separated")
    parser.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        with asyncio.Runner(loop_factory=event_loop_factory("auto")) as runner:
            runner.run(_echo_server(args.echo_server))
        return 0
    extra = args.flags.split()
    started = time.perf_counter()
    r: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch, contextlib.ExitStack() as stack:
        models, bundle, note = pick_bundle(args.models, Path(scratch))
        print(f"model: {note}")
        print(f"ORT {ort.__version__}; providers available here: {ort.get_available_providers()}")
        session = in_process_session(bundle / "lifter.onnx")
        flags = [*extra, "--default-model", bundle.name]
        on = stack.enter_context(running_server(models, *flags, metrics=False))
        # Batching off at its best: every batch-1 run on the all-cores session (the one-thread
        # busy-host session halves a batch-1 run's speed and only pays off for batches).
        off_flags = ["--max-batch", "1", "--busy-intra-op-threads", str(available_cores())]
        off = stack.enter_context(running_server(models, *flags, *off_flags, metrics=False))
        print(f"server flags: {' '.join(flags)} (batching off adds {' '.join(off_flags)})")
        info = on.stub.GetModelInfo(poseaug_pb2.GetModelInfoRequest()).model
        print(f"server providers: {list(info.providers)}")

        # In-process vs service, alternated call by call (shared, noisy host).
        x1 = pixels(1, 2)
        single = lift_request(x1)
        channels = session.get_inputs()[0].shape[-1]
        normalized1 = model_input(x1, channels)
        on.stub.Lift2Dto3D(single)
        t_ort, t_srv = interleaved(
            lambda: session.run(None, {"keypoints": normalized1}),
            lambda: on.stub.Lift2Dto3D(single),
            rounds=max(50, int(args.seconds * 100)),
        )
        r["b1_poses_s"] = len(t_ort) / sum(t_ort)
        r["b1_p50_ms"] = 1e3 * float(np.median(t_ort))
        r["single_p50_ms"] = 1e3 * float(np.median(t_srv))

        t = min(
            timed_loop(
                lambda: session.run(None, {"keypoints": model_input(pixels(1024, 0), channels)}),
                0.5,
            )
        )
        bulk_n = int(max(4096, min(262_144, 1024 / t * args.seconds / 6))) // 1024 * 1024
        xb = pixels(bulk_n, 1)
        normalized = model_input(xb, channels)
        bulk = lift_request(xb)

        def in_process_bulk() -> None:
            for i in range(0, bulk_n, 1024):
                session.run(None, {"keypoints": normalized[i : i + 1024]})

        t_ort, t_srv = interleaved(in_process_bulk, lambda: on.stub.Lift2Dto3D(bulk), rounds=3)
        r["b1024_poses_s"] = bulk_n * len(t_ort) / sum(t_ort)
        r["bulk_poses_s"] = bulk_n * len(t_srv) / sum(t_srv)
        cpu = []
        for _ in range(2):
            t = time.process_time()
            in_process_bulk()
            cpu.append((time.process_time() - t) / bulk_n)
        r["ort_cpu_us"] = 1e6 * min(cpu)  # all intra-op threads, per pose at batch 1024

        # Concurrent single-pose callers, batching on and off in alternating windows.
        c = f"c{args.callers}"
        runs: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
        for _ in range(2):
            for name, srv in (("on", on), ("off", off)):
                runs[name].append(
                    concurrent_callers(srv.address, args.callers, args.seconds / 2, srv.process.pid)
                )
        for name, results in runs.items():
            for key in results[0]:
                r[f"{name}_{c}_{key}"] = float(np.mean([x[key] for x in results]))

        if info.has_augmentor:
            r.update(augment_rates(on.stub, args.seconds))

        # The floor: what an empty handler costs here, so the ratios above can be read
        # against what any Python gRPC server on this host could reach.
        with echo_server() as (address, pid), grpc.insecure_channel(address) as channel:
            echo = poseaug_pb2_grpc.PoseAugServiceStub(channel)
            echo.Lift2Dto3D(single)
            t = timed_loop(lambda: echo.Lift2Dto3D(single), 1.0)
            r["echo_p50_ms"] = 1e3 * float(np.median(t))
            load = concurrent_callers(address, args.callers, args.seconds / 2, pid)
            r[f"echo_{c}_calls_s"] = load["poses_s"]
            r["echo_client_cpu_us"] = load["client_cpu_us"]
            r["echo_server_cpu_us"] = load["server_cpu_us"]

    bulk_ratio = r["bulk_poses_s"] / r["b1024_poses_s"]
    batch_ratio = r[f"on_{c}_poses_s"] / r[f"off_{c}_poses_s"]
    single_over = r["single_p50_ms"] - r["b1_p50_ms"]

    def load(name: str) -> str:
        k = f"{name}_{c}"
        return (
            f"{r[k + '_poses_s']:.0f} poses/s, p50 {r[k + '_p50_ms']:.1f} ms, "
            f"p99 {r[k + '_p99_ms']:.1f} ms"
        )

    rows = [
        ("in-process ORT, batch 1", f"{r['b1_poses_s']:.0f} poses/s, p50 {r['b1_p50_ms']:.2f} ms"),
        ("in-process ORT, batch 1024", f"{r['b1024_poses_s']:.0f} poses/s"),
        (f"service bulk lift (N={bulk_n})", f"{r['bulk_poses_s']:.0f} poses/s"),
        ("service single caller, 1 pose", f"p50 {r['single_p50_ms']:.2f} ms"),
        (f"{args.callers} callers x 1 pose, batching on", load("on")),
        (f"{args.callers} callers x 1 pose, batching off", load("off")),
    ]
    rows.append(
        (
            "gRPC floor: empty handler",
            f"1 caller p50 {r['echo_p50_ms']:.2f} ms; {args.callers} callers "
            f"{r[f'echo_{c}_calls_s']:.0f} calls/s",
        )
    )
    if "augment_poses_s" in r:
        rows.append(("Augment (256 x 16, unary)", f"{r['augment_poses_s']:.0f} poses/s"))
        rows.append(("StreamAugment (102,400 rows)", f"{r['stream_augment_poses_s']:.0f} poses/s"))
    print()
    for name, value in rows:
        print(f"  {name:<36} {value}")
    print()
    checks = [
        ("bulk / in-process batch 1024", bulk_ratio, bulk_ratio >= 0.9, ">= 0.90"),
        (f"batching on / off at {args.callers} callers", batch_ratio, batch_ratio >= 4, ">= 4.0"),
        ("single p50 - in-process p50 (ms)", single_over, single_over <= 1.0, "<= 1.0"),
    ]
    for name, value, ok, target in checks:
        print(f"  {name:<36} {value:7.2f}  target {target:<8} {'met' if ok else 'MISSED'}")
    # The CPU ceiling: the client, an empty-handler server and ORT's own arithmetic (at its
    # most efficient batch) share this host's cores; no batching server can go beyond that.
    cores = available_cores()
    least_us = r["echo_client_cpu_us"] + r["echo_server_cpu_us"] + r["ort_cpu_us"]
    ceiling = cores * 1e6 / least_us
    off, reached = r[f"off_{c}_poses_s"], r[f"on_{c}_poses_s"] / ceiling
    print(
        f"\n  CPU per single-pose call at {args.callers} callers: batching on: client "
        f"{r[f'on_{c}_client_cpu_us']:.0f} us + server {r[f'on_{c}_server_cpu_us']:.0f} us;"
        f"\n  empty handler: client {r['echo_client_cpu_us']:.0f} us + server "
        f"{r['echo_server_cpu_us']:.0f} us; ORT {r['ort_cpu_us']:.0f} us per pose at batch 1024."
        f"\n  CPU ceiling: {cores} cores / {least_us:.0f} us = {ceiling:.0f} poses/s, "
        f"{ceiling / off:.1f}x batching off (batching on reached {reached:.0%} of it);"
        f"\n  a bare call's round trip ({r['echo_p50_ms']:.2f} ms) is part of every "
        "single-pose p50."
    )
    print(f"\n  wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
