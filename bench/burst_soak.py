"""Bursts of hostile but admitted callers against one real server with the shipped bundles:
does the memory budget hold, does memory come back, does a well-behaved caller keep being
answered?

    .venv/bin/python bench/burst_soak.py [--bursts 3] [--streams 30] [--messages 20]
        [--tracks 256] [--lookahead 40] [--unary 8] [--hold-s 5] [--max-inflight-mb 1024]
        [--models models] [-- SERVER FLAGS...]

Each burst opens `--streams` StreamLift2Dto3D streams to wild-temporal-vpose (lookahead
`--lookahead`), each sending `--messages` messages of `--tracks` poses (track ids 0..tracks-1)
as fast as the server takes them and then holding the stream open `--hold-s` before leaving
(cancelling: CANCELLED; `--half-close` closes its side instead and takes the owed answers), beside
`--unary` large unary calls (Lift2Dto3D of `--unary-poses` poses and Augment of 1,000 poses x
`--augment-count`), all through grpcio's own client. A good caller sends one single-pose
Lift2Dto3D every 50 ms throughout. Printed: the server's RSS at start-up, its peak during each
burst and after each burst's rest (`--rest-s`), the status codes seen, the good caller's p99.
The defaults run in 2-4 minutes on a 2-core host; the issue's size is `--streams 100`.

Targets: peak RSS <= start-up + 1.5 x --max-inflight-mb; after each burst within 300 MB of
start-up; the last burst ends no more than 100 MB above the first (no ratchet); no INTERNAL
or UNKNOWN; the good caller answered OK throughout. Exit status 1 when one is missed.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from poseaug.v1 import poseaug_pb2, poseaug_pb2_grpc  # noqa: E402
from tests.reliability.procfs import rss_mib  # noqa: E402
from tests.support.metrics import metric, scrape  # noqa: E402
from tests.support.protos import lift_request, tensor  # noqa: E402
from tests.support.server import CHANNEL_OPTIONS, running_server  # noqa: E402

TEMPORAL = "wild-temporal-vpose"
PEAK_OVER_BUDGET = 1.5
FINAL_OVER_START_MB = 300
RATCHET_MB = 100
GOOD_EVERY_S = 0.05
BAD_CODES = {"INTERNAL", "UNKNOWN"}


class Codes:
    """Status codes by kind of call, from every thread."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.lock = threading.Lock()

    def add(self, kind: str, code: grpc.StatusCode) -> None:
        with self.lock:
            self.counts[(kind, code.name)] += 1


def hostile_stream(address: str, args, seed: int, codes: Codes) -> None:
    rng = np.random.default_rng(seed)
    ids = list(range(args.tracks))
    base = rng.uniform(200, 1700, (args.tracks, 17, 2)).astype(np.float32)

    calls = []

    def messages():
        for k in range(args.messages):
            kp = base + rng.normal(0, 3, base.shape).astype(np.float32)
            request = lift_request(kp, 1920, 1080, model=TEMPORAL, track_ids=ids)
            yield poseaug_pb2.StreamLift2Dto3DRequest(
                request=request, lookahead=args.lookahead if k == 0 else 0
            )
        time.sleep(args.hold_s)
        if not args.half_close:
            calls[0].cancel()  # the caller leaves without closing its side

    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = poseaug_pb2_grpc.PoseAugServiceStub(channel)
        try:
            call = stub.StreamLift2Dto3D(messages(), timeout=600)
            calls.append(call)
            for _ in call:
                pass
            codes.add("stream", grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.add("stream", exc.code())
            if exc.code().name in BAD_CODES:
                print(f"  stream {seed}: {exc.code().name} {exc.details()}", flush=True)


def hostile_unary(address: str, args, k: int, codes: Codes) -> None:
    rng = np.random.default_rng(10_000 + k)
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = poseaug_pb2_grpc.PoseAugServiceStub(channel)
        try:
            if k % 2 == 0:
                kp = rng.uniform(0, 1000, (args.unary_poses, 17, 2)).astype(np.float32)
                stub.Lift2Dto3D(lift_request(kp), timeout=600)
                kind = "lift"
            else:
                kind = "augment"
                poses = rng.normal(0, 0.25, (1000, 17, 3)).astype(np.float32)
                request = poseaug_pb2.AugmentRequest(
                    poses3d=tensor(poses - poses[:, :1]), count=args.augment_count, seed=k
                )
                stub.Augment(request, timeout=600)
            codes.add(kind, grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.add("lift" if k % 2 == 0 else "augment", exc.code())
            if exc.code().name in BAD_CODES:
                print(f"  unary {k}: {exc.code().name} {exc.details()}", flush=True)


class GoodCaller(threading.Thread):
    """One single-pose Lift2Dto3D every GOOD_EVERY_S: (start time, latency, code) each."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.stop = threading.Event()
        self.calls: list[tuple[float, float, str]] = []

    def run(self) -> None:
        kp = np.full((1, 17, 2), 500.0, np.float32)
        kp[0, :, 1] += np.arange(17) * 20
        with grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS) as channel:
            stub = poseaug_pb2_grpc.PoseAugServiceStub(channel)
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    stub.Lift2Dto3D(lift_request(kp), timeout=30)
                    code = "OK"
                except grpc.RpcError as exc:
                    code = exc.code().name
                self.calls.append((started, time.monotonic() - started, code))
                self.stop.wait(max(0.0, GOOD_EVERY_S - (time.monotonic() - started)))


class RssWatch(threading.Thread):
    """The server's RSS every 0.1 s; `peak(since)` is the largest since a time."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.stop = threading.Event()
        self.samples: list[tuple[float, float]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), rss_mib(self.pid)))
            self.stop.wait(0.1)

    def peak(self, since: float) -> float:
        return max(r for t, r in self.samples if t >= since)


def burst(address: str, args, codes: Codes) -> None:
    threads = [
        threading.Thread(target=hostile_stream, args=(address, args, s, codes))
        for s in range(args.streams)
    ] + [
        threading.Thread(target=hostile_unary, args=(address, args, k, codes))
        for k in range(args.unary)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def p99(latencies: list[float]) -> float:
    return float(np.percentile(latencies, 99)) if latencies else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bursts", type=int, default=3)
    p.add_argument("--streams", type=int, default=30, help="hostile streams per burst (issue: 100)")
    p.add_argument("--messages", type=int, default=20, help="messages per stream (issue: 81)")
    p.add_argument("--tracks", type=int, default=256, help="poses (tracks) per message")
    p.add_argument("--lookahead", type=int, default=40)
    p.add_argument("--hold-s", type=float, default=5.0, help="streams stay open this long")
    p.add_argument(
        "--half-close",
        action="store_true",
        help="streams then close their side and take the owed answers (the server answers "
        "them from windows: minutes of CPU per burst on 2 cores) instead of leaving (CANCELLED)",
    )
    p.add_argument("--unary", type=int, default=8, help="large unary calls per burst")
    p.add_argument("--unary-poses", type=int, default=100_000, help="poses per large lift")
    p.add_argument("--augment-count", type=int, default=100, help="count of a large Augment")
    p.add_argument("--rest-s", type=float, default=10.0, help="wait after a burst, then RSS")
    p.add_argument("--max-inflight-mb", type=int, default=1024)
    p.add_argument("--models", type=Path, default=REPO / "models")
    p.add_argument("server_flags", nargs="*", help="extra poseaug-serve flags (after --)")
    args = p.parse_args()
    flags = ("--max-inflight-mb", str(args.max_inflight_mb), *args.server_flags)
    with running_server(args.models, *flags, start_timeout=180) as srv:
        pid = srv.process.pid
        good = GoodCaller(srv.address)
        good.start()
        time.sleep(3)  # the good caller warms the default bundle
        startup = rss_mib(pid)
        print(f"server pid {pid}; start-up RSS {startup:.0f} MiB; budget {args.max_inflight_mb}")
        watch = RssWatch(pid)
        watch.start()
        rows, all_codes, bad = [], Counter(), False
        for b in range(args.bursts):
            codes = Codes()
            began = time.monotonic()
            burst(srv.address, args, codes)
            ended = time.monotonic()
            peak = watch.peak(began)
            time.sleep(args.rest_s)
            final = rss_mib(pid)
            during = [(lat, c) for t, lat, c in good.calls if began <= t <= ended]
            good_codes = Counter(c for _, c in during)
            row = (b + 1, ended - began, peak, final, dict(codes.counts), good_codes, during)
            rows.append(row)
            all_codes.update(codes.counts)
            print(
                f"burst {b + 1}: {ended - began:.0f} s; RSS peak {peak:.0f} MiB "
                f"(+{peak - startup:.0f}), after {args.rest_s:g} s rest {final:.0f} MiB "
                f"(+{final - startup:.0f}); good caller p99 "
                f"{p99([lat for lat, _ in during]):.3f} s over {len(during)} calls "
                f"{dict(good_codes)}",
                flush=True,
            )
            lag = metric(scrape(srv.metrics_url), "poseaug_event_loop_lag_max_seconds")
            print(f"  codes: {dict(sorted(codes.counts.items()))}", flush=True)
            print(f"  event loop lag, largest since start: {lag:.3f} s", flush=True)
        good.stop.set()
        watch.stop.set()
        good.join()
    peak_limit = startup + PEAK_OVER_BUDGET * args.max_inflight_mb
    worst_peak = max(r[2] for r in rows)
    finals = [r[3] for r in rows]
    internal = sum(n for (_, code), n in all_codes.items() if code in BAD_CODES)
    good_failed = sum(n for r in rows for code, n in r[5].items() if code != "OK")
    checks = {
        f"peak {worst_peak:.0f} <= {peak_limit:.0f} MiB": worst_peak <= peak_limit,
        f"after bursts {max(finals) - startup:+.0f} MiB <= +{FINAL_OVER_START_MB}": max(finals)
        - startup
        <= FINAL_OVER_START_MB,
        f"no ratchet: last - first {finals[-1] - finals[0]:+.0f} MiB <= {RATCHET_MB}": finals[-1]
        - finals[0]
        <= RATCHET_MB,
        f"INTERNAL/UNKNOWN {internal} == 0": internal == 0,
        f"good caller not OK {good_failed} == 0": good_failed == 0,
    }
    for text, ok in checks.items():
        print(f"  {'met   ' if ok else 'MISSED'} {text}")
        bad = bad or not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
