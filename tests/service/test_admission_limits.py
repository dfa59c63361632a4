"""Per-method limits of the admission layer (issue 12): message sizes per method, the byte
budget, bounded `ops`, short echoes of unknown names, /metrics on loopback, the loop-lag
metric."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from poseaug.v1 import poseaug_pb2
from poseaug_service.admission import Admission, ByteBudget
from poseaug_service.config import parse_config
from poseaug_service.errors import InvalidArgumentError
from poseaug_service.limits import PARSE_COST, SMALL_MESSAGE_BYTES, MethodLimits
from poseaug_service.prescan import (
    check_augment,
    check_stream_augment,
    lift_check,
    stream_lift_check,
)
from poseaug_service.request_reader import RequestReader
from tests.support.metrics import scrape
from tests.support.protos import lift_request, tensor
from tests.support.server import running_server

LIFT = "/poseaug.v1.PoseAugService/Lift2Dto3D"


def _identity(data: bytes) -> bytes:
    return data


def _unknown_field(size: int) -> bytes:
    """A message holding one unknown length-delimited field (field 15) of `size` bytes."""
    head = bytearray(b"\x7a")
    n = size
    while True:
        byte, n = n & 0x7F, n >> 7
        head.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(head) + bytes(size)


@pytest.mark.parametrize(
    "method",
    [
        "/grpc.health.v1.Health/Check",
        "/poseaug.v1.PoseAugService/ListModels",
        "/poseaug.v1.PoseAugService/GetModelInfo",
    ],
)
def test_small_methods_refuse_big_messages_unparsed(server, method: str) -> None:
    call = server.channel.unary_unary(method, _identity, _identity)
    call(_unknown_field(16), timeout=10)  # small unknown fields are fine
    with pytest.raises(grpc.RpcError) as error:
        call(_unknown_field(SMALL_MESSAGE_BYTES + 1), timeout=10)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "over this method's limit" in error.value.details()


def test_unknown_model_name_is_echoed_short(server) -> None:
    kp = np.zeros((1, 17, 2), np.float32)
    with pytest.raises(grpc.RpcError) as error:
        server.stub.Lift2Dto3D(lift_request(kp, model="m" * 1_000_000), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("model: unknown model 'mmm")
    assert "(1000000 characters)" in error.value.details()
    assert len(error.value.details()) < 300


@pytest.mark.parametrize("stream", [False, True])
def test_more_than_three_ops_are_refused(server, stream: bool) -> None:
    ops = [poseaug_pb2.AUGMENT_OP_BA] * 4
    request = poseaug_pb2.AugmentRequest(poses3d=tensor(np.zeros((1, 17, 3))), ops=ops)
    with pytest.raises(grpc.RpcError) as error:
        if stream:
            list(server.stub.StreamAugment(poseaug_pb2.StreamAugmentRequest(request=request)))
        else:
            server.stub.Augment(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ops: at most 3 entries" in error.value.details()


def test_loop_lag_is_published(server) -> None:
    text = scrape(server.metrics_url)
    for name in (
        "poseaug_event_loop_lag_seconds",
        "poseaug_event_loop_lag_max_seconds",
        "poseaug_event_loop_lag_samples_seconds_count",
        "poseaug_inflight_bytes",
    ):
        assert f"\n{name} " in text, name


def test_metrics_stay_on_loopback_unless_asked() -> None:
    assert parse_config(["--host", "0.0.0.0"]).metrics_host == "127.0.0.1"
    assert parse_config(["--metrics-host", "0.0.0.0"]).metrics_host == "0.0.0.0"


def test_every_setting_has_a_flag_and_the_dataclass_defaults() -> None:
    """The flags fill the dataclass field by field; without flags every field keeps the
    dataclass's default (they are written once, in ServerConfig)."""
    from dataclasses import fields

    from poseaug_service.config import ServerConfig, build_parser

    dests = {a.dest for a in build_parser()._actions}
    assert {f.name for f in fields(ServerConfig)} <= dests
    assert parse_config([]) == ServerConfig(models=Path("models"))
    flipped = parse_config(["--models", "m", "--ort-spinning", "--grace-s", "2.5"])
    assert flipped == ServerConfig(models=Path("m"), ort_spinning=True, grace_s=2.5)


def test_numeric_flags_refuse_values_under_their_bound(capsys) -> None:
    """Every bounded field (its bound kept on the field) refuses one under it, naming the flag."""
    from dataclasses import fields

    from poseaug_service.config import ServerConfig

    bounded = {f.name: f.metadata["at_least"] for f in fields(ServerConfig) if f.metadata}
    assert {"max_batch": 1, "port": 0, "grace_s": 0}.items() <= bounded.items()
    for name, bound in bounded.items():
        flag = "--" + name.replace("_", "-")
        with pytest.raises(SystemExit):
            parse_config([flag, str(bound - 1)])
        assert f"{flag} must be >= {bound}, got {bound - 1}" in capsys.readouterr().err


def test_budget_must_hold_one_largest_request() -> None:
    with pytest.raises(SystemExit):
        parse_config(["--max-message-mb", "512"])
    config = parse_config(["--max-message-mb", "512", "--max-inflight-mb", str(512 * PARSE_COST)])
    assert config.max_inflight_bytes == 512 * PARSE_COST * 2**20


class _AbortedError(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code


class _Context:
    """The parts of grpc.aio.ServicerContext the request reader uses."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5000"

    async def read(self):
        raw, self._raw = self._raw, grpc.aio.EOF
        return raw

    async def abort(self, code, details):
        raise _AbortedError(code, details)


def test_byte_budget_refuses_before_parsing() -> None:
    parsed = []
    budget = ByteBudget(limit=PARSE_COST * 1000)
    limits = MethodLimits("service", max_message_bytes=2000, arrival_s=1, needs_token=True)
    admission = Admission(parse_config([]), budget)
    reader = RequestReader(admission, ThreadPoolExecutor(1), lambda m: limits)

    async def behavior(request, context):
        parsed.append(request)
        assert budget.used == PARSE_COST * len(request)
        return b"ok"

    handler = grpc.unary_unary_rpc_method_handler(behavior, request_deserializer=bytes)
    run = reader.handler(LIFT, handler).stream_unary

    async def call(raw: bytes):
        try:
            return await run(None, _Context(raw))
        except _AbortedError as exc:
            return exc.code

    assert asyncio.run(call(b"x" * 1000)) == b"ok" and budget.used == 0
    assert asyncio.run(call(b"x" * 1001)) == grpc.StatusCode.RESOURCE_EXHAUSTED  # budget
    assert asyncio.run(call(b"x" * 2001)) == grpc.StatusCode.RESOURCE_EXHAUSTED  # size
    budget.take(1)
    assert asyncio.run(call(b"x" * 1000)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(parsed) == 1 and budget.used == 1
    assert admission.pools["service"].used == 0  # every call gave its slot back


def test_health_checks_still_answer(server) -> None:
    check = server.channel.unary_unary("/grpc.health.v1.Health/Check", _identity, _identity)
    reply = health_pb2.HealthCheckResponse.FromString(
        check(health_pb2.HealthCheckRequest().SerializeToString(), timeout=10)
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_raw_byte_checks_bound_repeated_fields() -> None:
    sizes = [poseaug_pb2.ImageSize(width=4, height=3)] * 4
    lift = poseaug_pb2.Lift2Dto3DRequest(keypoints=tensor(np.zeros((4, 17, 2))), image_sizes=sizes)
    stream = poseaug_pb2.StreamLift2Dto3DRequest(request=lift).SerializeToString()
    lift_check(4)(lift.SerializeToString())
    stream_lift_check(4)(stream)
    with pytest.raises(InvalidArgumentError, match=r"^image_sizes: one entry per pose"):
        lift_check(3)(lift.SerializeToString())
    with pytest.raises(InvalidArgumentError, match=r"^request\.image_sizes: one entry per pose"):
        stream_lift_check(3)(stream)
    unpacked = b"\x10\x01" * 4  # AugmentRequest.ops, one tag per entry
    for raw in (unpacked, poseaug_pb2.AugmentRequest(ops=[1, 2, 3, 1]).SerializeToString()):
        with pytest.raises(InvalidArgumentError, match=r"^ops: at most 3"):
            check_augment(raw)
        with pytest.raises(InvalidArgumentError, match=r"^request\.ops: at most 3"):
            check_stream_augment(b"\x0a" + bytes([len(raw)]) + raw)
    check_augment(b"\x10\x01" * 3)
    for broken in (b"\x0a\xff", b"\x2a", b"\xff" * 12):  # the parser reports these
        lift_check(3)(broken)
        check_augment(broken)


async def _silent_calls(address: str, held: int) -> tuple[list, grpc.StatusCode, str, int]:
    """`held` Lift2Dto3D calls whose message never comes, then one more call and a health
    check; returns the held calls' codes, the extra call's code and details, health's
    status."""

    async def never():
        await asyncio.Event().wait()
        yield b""  # pragma: no cover

    async with grpc.aio.insecure_channel(address) as channel:
        silent = channel.stream_unary(LIFT, _identity, _identity)
        calls = [silent(never(), timeout=30) for _ in range(held)]
        await asyncio.sleep(0.5)  # they hold their slots now
        kp = np.zeros((1, 17, 2), np.float32)
        lift = channel.unary_unary(LIFT, _identity, _identity)
        try:
            await lift(lift_request(kp).SerializeToString(), timeout=10)
            code, details = grpc.StatusCode.OK, ""
        except grpc.aio.AioRpcError as error:
            code, details = error.code(), error.details()
        check = channel.unary_unary("/grpc.health.v1.Health/Check", _identity, _identity)
        reply = await check(health_pb2.HealthCheckRequest().SerializeToString(), timeout=10)
        codes = []
        for call in calls:  # cut after --request-arrival-s
            try:
                await call
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())
        return codes, code, details, health_pb2.HealthCheckResponse.FromString(reply).status


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--max-concurrent-rpcs", "2"), "(2); retry later"),
        (("--max-concurrent-rpcs", "8", "--max-rpcs-per-peer", "2"), "(2 from one address)"),
    ],
)
def test_full_service_pool_refuses_and_leaves_health_alone(models_dir, flags, words) -> None:
    with running_server(models_dir, *flags, "--request-arrival-s", "1.5", metrics=False) as srv:
        codes, code, details, status = asyncio.run(_silent_calls(srv.address, 2))
    assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED] * 2
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and words in details, details
    assert status == health_pb2.HealthCheckResponse.SERVING
