"""Dynamic batching under load: merging, bounded queue, no cross-talk with a bulk request."""

from __future__ import annotations

import asyncio
import threading

import grpc
import numpy as np

from poseaug.v1 import poseaug_pb2, poseaug_pb2_grpc
from tests.service.conftest import Lifter
from tests.support.metrics import metric, scrape
from tests.support.protos import array, lift_request, normalize_reference, tensor
from tests.support.server import running_server


def run_callers(n: int, fn) -> list[BaseException]:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            barrier.wait()
            fn(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_callers_share_runs(models_dir, lifter: Lifter) -> None:
    """64 simultaneous single-pose callers with a 50 ms window: far fewer runs than calls.

    The calls leave as one burst from asyncio tasks: threads released by a barrier reach the
    server one by one on a loaded host, and calls that never overlap are lone callers, which
    the batcher rightly never holds back."""
    callers = 64
    rng = np.random.default_rng(0)
    inputs = [rng.random((1, 17, 2)).astype(np.float32) * 900 for _ in range(callers)]
    flags = ("--max-batch", "256", "--max-queue-delay-us", "50000")

    async def burst(address: str) -> list:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = poseaug_pb2_grpc.PoseAugServiceStub(channel)
            return await asyncio.gather(*(stub.Lift2Dto3D(lift_request(x)) for x in inputs))

    with running_server(models_dir, *flags) as srv:
        responses = asyncio.run(burst(srv.address))
        text = scrape(srv.metrics_url)
    runs = metric(text, "poseaug_batch_size_count", kind="lift")
    poses = metric(text, "poseaug_batch_size_sum", kind="lift")
    assert poses == callers
    assert runs < callers / 2, f"{runs} ORT runs for {callers} concurrent single-pose calls"
    for x, response in zip(inputs, responses, strict=True):
        expected = lifter(normalize_reference(x, 1000, 1000))
        assert np.abs(array(response.pose3d) - expected).max() <= 1e-5


def test_full_queue_answers_resource_exhausted(models_dir, lifter: Lifter) -> None:
    flags = ("--max-queue", "1", "--max-batch", "8", "--max-queue-delay-us", "0")
    kp = np.random.default_rng(0).random((20_000, 17, 2)).astype(np.float32) * 1000
    expected = lifter(normalize_reference(kp, 1000, 1000))
    codes: list[grpc.StatusCode] = []
    with running_server(models_dir, *flags) as srv:

        def call(i: int) -> None:
            try:
                got = array(srv.stub.Lift2Dto3D(lift_request(kp)).pose3d)
                assert np.abs(got - expected).max() <= 1e-5
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                codes.append(err.code())
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
                assert "queue is full" in err.details()

        assert run_callers(12, call) == []
        text = scrape(srv.metrics_url)
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    assert grpc.StatusCode.OK in codes
    rejected = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert metric(text, "poseaug_errors_total", code="RESOURCE_EXHAUSTED") == rejected


def test_small_callers_interleave_with_a_bulk_request(server, lifter: Lifter) -> None:
    """A bulk request split into chunks and small concurrent ones all get their own rows."""
    rng = np.random.default_rng(3)
    bulk = rng.random((5000, 17, 2)).astype(np.float32) * 1000
    small = [rng.random((1 + i % 3, 17, 2)).astype(np.float32) * 1000 for i in range(30)]
    out: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        kp = bulk if i == 0 else small[i - 1]
        out[i] = array(server.stub.Lift2Dto3D(lift_request(kp)).pose3d)

    assert run_callers(31, call) == []
    for i in range(31):
        kp = bulk if i == 0 else small[i - 1]
        assert np.abs(out[i] - lifter(normalize_reference(kp, 1000, 1000))).max() <= 1e-5


def test_augment_jobs_are_bounded(models_dir) -> None:
    """With --max-queue 1 a second concurrent augmentation job is refused, not queued."""
    poses = np.zeros((200, 17, 3), np.float32)
    poses[:, 1:, 1] = np.linspace(0.1, 1.0, 16)
    request = poseaug_pb2.StreamAugmentRequest(
        request=poseaug_pb2.AugmentRequest(poses3d=tensor(poses), count=1000, seed=1),
        chunk_size=1000,
    )
    codes: list[grpc.StatusCode] = []
    with running_server(models_dir, "--max-queue", "1") as srv:

        def call(i: int) -> None:
            try:
                for _ in srv.stub.StreamAugment(request):
                    pass
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                codes.append(err.code())

        assert run_callers(4, call) == []
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
