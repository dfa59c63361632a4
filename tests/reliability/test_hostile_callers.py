"""Hostile callers against the real server (issue 12): none of them, with or without a token,
can lock others out, freeze the event loop or run the server out of memory.

- 1,030 health Watch streams and 1,030 tokenless Lift2Dto3D calls that never send their
  message, over 8 channels: authenticated calls and health checks still succeed.
- An Augment request with 15 million `ops` entries: INVALID_ARGUMENT, and health checks
  keep answering within 0.5 s meanwhile.
- Four concurrent 200 MB Lift2Dto3D messages without a token: refused UNAUTHENTICATED with
  the server's memory growing by far less than one message.
- Eight concurrent 100 MB health Check messages (health needs no token): read one at a
  time and refused, the server growing by a few times one message, not eight.
- 25 million empty `image_sizes` (50 MB, 600 MB once parsed) with a token: INVALID_ARGUMENT
  before parsing, the server growing by about the message's own bytes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from poseaug.v1 import poseaug_pb2
from tests.reliability.procfs import rss_mib
from tests.support.bundles import make_bundle
from tests.support.metrics import metric, scrape
from tests.support.protos import lift_request
from tests.support.server import CHANNEL_OPTIONS, running_server

TOKEN = "hostile-test-token-0123456789"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
HOSTILE = 1030
CHANNELS = 8
WATCH = "/grpc.health.v1.Health/Watch"
CHECK = "/grpc.health.v1.Health/Check"
LIFT = "/poseaug.v1.PoseAugService/Lift2Dto3D"
AUGMENT = "/poseaug.v1.PoseAugService/Augment"
HEALTH_BUDGET_S = 0.5
RSS_BUDGET_MIB = 512


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    make_bundle(root, "guarded")
    return root


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("token") / "tokens"
    path.write_text(TOKEN + "\n")
    return path


def _identity(data: bytes) -> bytes:
    return data


async def _never() -> object:
    """A request stream that sends nothing: the call's message never arrives."""
    await asyncio.Event().wait()
    yield b""  # pragma: no cover


async def _first(call) -> grpc.StatusCode:
    """OK once a Watch stream delivers its first status, else the code it ended with."""
    try:
        await asyncio.wait_for(call.read(), 20)
        return grpc.StatusCode.OK
    except grpc.aio.AioRpcError as error:
        return error.code()


async def _code(call) -> grpc.StatusCode:
    try:
        await call
        return grpc.StatusCode.OK
    except grpc.aio.AioRpcError as error:
        return error.code()


async def _lock_out_attempt(address: str) -> dict:
    hostile = [grpc.aio.insecure_channel(address) for _ in range(CHANNELS)]
    good = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
    check = health_pb2.HealthCheckRequest().SerializeToString()
    try:
        watch = [c.unary_stream(WATCH, _identity, _identity) for c in hostile]
        lift = [c.stream_unary(LIFT, _identity, _identity) for c in hostile]
        streams = [watch[i % CHANNELS](check) for i in range(HOSTILE)]
        silent = [lift[i % CHANNELS](_never()) for i in range(HOSTILE)]
        watched = await asyncio.gather(*(_first(s) for s in streams))
        silenced = await asyncio.wait_for(asyncio.gather(*(_code(c) for c in silent)), 60)

        # with every hostile call made, authenticated callers and health checks get through
        kp = np.random.default_rng(0).uniform(0, 1000, (5, 17, 2)).astype(np.float32)
        request = lift_request(kp).SerializeToString()
        good_lift = good.unary_unary(LIFT, _identity, _identity)
        good_check = good.unary_unary(CHECK, _identity, _identity)
        started = time.monotonic()
        answers = await asyncio.gather(
            *(_code(good_lift(request, metadata=AUTH, timeout=20)) for _ in range(40)),
            *(_code(good_check(check, timeout=20)) for _ in range(10)),
        )
        took = time.monotonic() - started
        # a caller with a token whose message never comes is cut after --request-arrival-s
        slow = good.stream_unary(LIFT, _identity, _identity)
        started = time.monotonic()
        cut = await _code(slow(_never(), metadata=AUTH, timeout=30))
        cut_after = time.monotonic() - started
        open_watches = sum(1 for s in streams if s.done() is False)
        for s in streams:
            s.cancel()
        return {
            "watched": watched,
            "silenced": silenced,
            "answers": answers,
            "took": took,
            "cut": cut,
            "cut_after": cut_after,
            "open_watches": open_watches,
        }
    finally:
        for c in [*hostile, good]:
            await c.close()


def test_hostile_streams_do_not_lock_out_callers(models: Path, token_file: Path) -> None:
    flags = ("--token-file", str(token_file), "--request-arrival-s", "1")
    with running_server(models, *flags) as srv:
        result = asyncio.run(_lock_out_attempt(srv.address))
        text = scrape(srv.metrics_url)
    watched, silenced = result["watched"], result["silenced"]
    held = watched.count(grpc.StatusCode.OK)
    print(
        f"watch streams held {held}, refused {watched.count(grpc.StatusCode.RESOURCE_EXHAUSTED)}"
        f"; silent tokenless lifts {dict((c.name, silenced.count(c)) for c in set(silenced))}; "
        f"40 lifts + 10 checks in {result['took']:.2f} s; silent call with token cut after "
        f"{result['cut_after']:.2f} s"
    )
    assert set(result["answers"]) == {grpc.StatusCode.OK}, result["answers"]
    assert set(silenced) == {grpc.StatusCode.UNAUTHENTICATED}
    assert held <= 16 and set(watched) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert result["cut"] == grpc.StatusCode.DEADLINE_EXCEEDED and result["cut_after"] < 5
    refusals = metric(text, "poseaug_admission_refusals_total", method=WATCH)
    assert refusals == watched.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= HOSTILE - 16
    assert metric(text, "poseaug_auth_failures_total", reason="missing") >= HOSTILE


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _checks_while(channel: grpc.Channel, busy: threading.Event, latencies: list) -> None:
    check = channel.unary_unary(CHECK, _identity, _identity)
    request = health_pb2.HealthCheckRequest().SerializeToString()
    while not busy.is_set():
        started = time.perf_counter()
        check(request, timeout=10)
        latencies.append(time.perf_counter() - started)
        time.sleep(0.01)


def test_huge_ops_list_is_refused_without_freezing_the_loop(models: Path) -> None:
    ops = 15_000_000
    poses = np.zeros((1, 17, 3), np.float32).tobytes()
    tensor = poseaug_pb2.Tensor(shape=[1, 17, 3], data=poses).SerializeToString()
    head = b"\x0a" + _varint(len(tensor)) + tensor
    packed = head + b"\x12" + _varint(ops) + b"\x01" * ops
    unpacked = head + b"\x10\x01" * ops
    with running_server(models) as srv:
        channel = srv.new_channel()
        augment = channel.unary_unary(AUGMENT, _identity, _identity)
        done, latencies = threading.Event(), []
        checker = threading.Thread(target=_checks_while, args=(channel, done, latencies))
        checker.start()
        codes = []
        try:
            time.sleep(0.3)
            for message in (packed, unpacked, packed):
                try:
                    augment(message, timeout=60)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.append(error.code())
                    assert "ops" in error.details(), error.details()
            time.sleep(0.3)
        finally:
            done.set()
            checker.join(30)
            channel.close()
        text = scrape(srv.metrics_url)
    lag = metric(text, "poseaug_event_loop_lag_max_seconds")
    print(
        f"{len(latencies)} health checks, slowest {max(latencies) * 1000:.0f} ms; "
        f"largest event loop lag {lag * 1000:.0f} ms"
    )
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * 3
    assert len(latencies) > 10 and max(latencies) < HEALTH_BUDGET_S
    assert lag < HEALTH_BUDGET_S


def _sample_rss(pid: int, stop: threading.Event, samples: list[float]) -> None:
    while not stop.is_set():
        samples.append(rss_mib(pid))
        time.sleep(0.005)


def test_big_unauthenticated_messages_cost_no_memory(models: Path, token_file: Path) -> None:
    size = 200 * 1024 * 1024
    message = b"\x0a" + _varint(size) + bytes(size)  # Tensor-sized keypoints field of zeros
    with running_server(models, "--token-file", str(token_file)) as srv:
        pid = srv.process.pid
        before = rss_mib(pid)
        samples: list[float] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(pid, stop, samples))
        sampler.start()
        channels = [srv.new_channel() for _ in range(4)]
        try:
            calls = [c.unary_unary(LIFT, _identity, _identity) for c in channels]
            futures = [call.future(message, timeout=120) for call in calls]
            codes = []
            for future in futures:
                try:
                    future.result()
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.append(error.code())
            time.sleep(0.5)  # anything the server still took in shows by now
        finally:
            for c in channels:
                c.close()
            stop.set()
            sampler.join(10)
        growth = max(samples) - before
    print(f"server RSS {before:.0f} MiB before, peak growth {growth:.0f} MiB for 4 x 200 MB")
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 4
    assert growth < RSS_BUDGET_MIB


def test_big_health_messages_are_read_one_at_a_time(models: Path, token_file: Path) -> None:
    size = 100 * 1024 * 1024
    message = b"\x0a" + _varint(size) + bytes(size)  # HealthCheckRequest.service
    with running_server(models, "--token-file", str(token_file)) as srv:
        pid = srv.process.pid
        before = rss_mib(pid)
        samples: list[float] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(pid, stop, samples))
        sampler.start()
        channels = [srv.new_channel() for _ in range(8)]
        codes = []
        try:
            calls = [c.unary_unary(CHECK, _identity, _identity) for c in channels]
            for future in [call.future(message, timeout=60) for call in calls]:
                try:
                    future.result()
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.append(error.code())
            health = channels[0].unary_unary(CHECK, _identity, _identity)
            reply = health(health_pb2.HealthCheckRequest().SerializeToString(), timeout=10)
            time.sleep(0.3)
        finally:
            for c in channels:
                c.close()
            stop.set()
            sampler.join(10)
        growth = max(samples) - before
    print(f"server RSS {before:.0f} MiB before, peak growth {growth:.0f} MiB for 8 x 100 MB")
    # refused for their size, or cut while waiting their turn to be read
    assert set(codes) <= {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 1
    assert health_pb2.HealthCheckResponse.FromString(reply).status == 1  # SERVING
    assert growth < RSS_BUDGET_MIB


def test_empty_image_sizes_are_refused_before_parsing(models: Path) -> None:
    entries = 25_000_000
    message = b"\x2a\x00" * entries  # Lift2Dto3DRequest.image_sizes, each one empty
    with running_server(models) as srv:
        pid = srv.process.pid
        before = rss_mib(pid)
        samples: list[float] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(pid, stop, samples))
        sampler.start()
        channel = srv.new_channel()
        try:
            with pytest.raises(grpc.RpcError) as error:
                started = time.monotonic()
                channel.unary_unary(LIFT, _identity, _identity)(message, timeout=120)
            took = time.monotonic() - started
            time.sleep(0.3)
        finally:
            channel.close()
            stop.set()
            sampler.join(10)
        growth = max(samples) - before
    print(
        f"server RSS {before:.0f} MiB before, peak growth {growth:.0f} MiB for 50 MB of "
        f"sizes, refused in {took:.1f} s"
    )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("image_sizes: one entry per pose at most")
    assert growth < 250  # the message in gRPC and in Python; parsing it took 900 MiB
