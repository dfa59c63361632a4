"""Bounded memory for admitted callers (issue 24): one memory budget that track state, owed
answers, queued work and responses count in, refusals that name the part, streams refused
RESOURCE_EXHAUSTED (never INTERNAL) while their callers keep sending, the budget back at zero
once streams end, --max-streams-per-peer, and the allocator module."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from poseaug.v1 import poseaug_pb2
from poseaug_service import allocator
from poseaug_service.errors import ResourceExhaustedError
from poseaug_service.memory_budget import MEMORY_PARTS, ByteBudget, Holding
from tests.support.bundles import make_bundle
from tests.support.metrics import metric, scrape
from tests.support.protos import lift_request
from tests.support.server import running_server

TRACKS = 256
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def temporal_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 9-frame centred toy lifter with its step form (lookahead 4)."""
    root = tmp_path_factory.mktemp("toy_models")
    make_bundle(root, "centre", with_augmentor=False, lifter="dilated_centre", forms=True)
    return root


def stream_messages(count: int, hold_s: float, seed: int) -> Iterator:
    """`count` messages of TRACKS poses (track ids 0..TRACKS-1), lookahead 4, then the stream
    is held open `hold_s` before the caller closes its side."""
    rng = np.random.default_rng(seed)
    ids = list(range(TRACKS))
    for k in range(count):
        kp = rng.uniform(100, 900, (TRACKS, 17, 2)).astype(np.float32)
        request = lift_request(kp, model="centre", track_ids=ids)
        yield poseaug_pb2.StreamLift2Dto3DRequest(request=request, lookahead=4 if k == 0 else 0)
    time.sleep(hold_s)


def run_stream(address: str, count: int, hold_s: float, seed: int, out: list) -> None:
    """One stream through grpcio's own client; appends (code, details)."""
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream(
            "/poseaug.v1.PoseAugService/StreamLift2Dto3D",
            poseaug_pb2.StreamLift2Dto3DRequest.SerializeToString,
            poseaug_pb2.StreamLift2Dto3DResponse.FromString,
        )
        try:
            for _ in call(stream_messages(count, hold_s, seed), timeout=60):
                pass
            out.append((grpc.StatusCode.OK, ""))
        except grpc.RpcError as exc:
            out.append((exc.code(), exc.details()))


def budget_in_use(url: str) -> float:
    return metric(scrape(url), "poseaug_memory_budget_bytes")


def test_a_refusal_names_the_part_and_nothing_is_taken() -> None:
    budget = ByteBudget(10 * MIB)
    holding = Holding(budget)
    holding.grow(6 * MIB, "tracks")
    with pytest.raises(ResourceExhaustedError) as error:
        holding.grow(5 * MIB, "owed")
    assert "owed (stream messages whose answers are owed)" in str(error.value)
    assert "tracks 6" in str(error.value)  # what is in use, by part
    assert budget.used == 6 * MIB and budget.parts["owed"] == 0
    holding.resize(2 * MIB, "tracks")
    assert budget.parts["tracks"] == 2 * MIB
    holding.close()
    assert budget.used == 0 and set(budget.parts.values()) == {0}


def test_streams_over_the_budget_get_resource_exhausted_and_the_budget_empties(
    temporal_models: Path,
) -> None:
    """Hostile streams (256 tracks each, lookahead, held open) against a 4 MiB budget: some
    are refused RESOURCE_EXHAUSTED naming a part while they keep sending, none ends INTERNAL
    or UNKNOWN, and once every stream has ended the budget is back at zero."""
    flags = ("--max-message-mb", "1", "--max-inflight-mb", "4", "--grpc-workers", "4")
    with running_server(temporal_models, *flags) as server:
        results: list = []
        threads = [
            threading.Thread(target=run_stream, args=(server.address, 25, 0.5, k, results))
            for k in range(12)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = Counter(code for code, _ in results)
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, results
        assert codes[grpc.StatusCode.RESOURCE_EXHAUSTED] >= 1, codes
        refused = [d for code, d in results if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
        assert all(any(f"full: {part} (" in d for part in MEMORY_PARTS) for d in refused)
        deadline = time.monotonic() + 10
        while budget_in_use(server.metrics_url) and time.monotonic() < deadline:
            time.sleep(0.1)
        text = scrape(server.metrics_url)
        assert metric(text, "poseaug_memory_budget_bytes") == 0
        assert metric(text, "poseaug_inflight_bytes") == 0
        assert metric(text, "poseaug_memory_budget_refusals_total") >= 1
        # The server still answers.
        kp = np.full((1, 17, 2), 500.0, np.float32)
        server.stub.Lift2Dto3D(lift_request(kp, model="centre"))


def test_streams_per_peer_are_bounded(temporal_models: Path) -> None:
    flags = ("--max-streams-per-peer", "2")
    with running_server(temporal_models, *flags) as server:
        stop = threading.Event()
        opened = threading.Barrier(3)

        def held() -> Iterator:
            kp = np.full((1, 17, 2), 500.0, np.float32)
            request = lift_request(kp, model="centre")
            yield poseaug_pb2.StreamLift2Dto3DRequest(request=request)
            stop.wait(30)

        def hold_one() -> None:
            responses = server.stub.StreamLift2Dto3D(held(), timeout=60)
            next(responses)  # admitted and answered
            opened.wait(30)
            list(responses)

        holders = [threading.Thread(target=hold_one) for _ in range(2)]
        for t in holders:
            t.start()
        try:
            opened.wait(30)
            with pytest.raises(grpc.RpcError) as error:
                list(server.stub.StreamLift2Dto3D(held(), timeout=30))
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "too many open streams at once (2 from one address)" in error.value.details()
            # Unary calls from the same address are not streams.
            kp = np.full((1, 17, 2), 500.0, np.float32)
            server.stub.Lift2Dto3D(lift_request(kp, model="centre"))
        finally:
            stop.set()
            for t in holders:
                t.join()
        refusals = metric(
            scrape(server.metrics_url), "poseaug_admission_refusals_total", reason="peer_streams"
        )
        assert refusals == 1
        # Once those two ended, a third one is admitted.
        stop.clear()
        kp = np.full((1, 17, 2), 500.0, np.float32)
        request = lift_request(kp, model="centre")
        messages = [poseaug_pb2.StreamLift2Dto3DRequest(request=request)]
        assert len(list(server.stub.StreamLift2Dto3D(iter(messages), timeout=30))) == 1


def test_allocator_functions_are_callable() -> None:
    assert allocator.available()  # glibc (the project's hosts and image)
    assert allocator.configure() is True
    assert isinstance(allocator.trim(), bool)

    async def trims_after_a_drop() -> int:
        in_use = [100 * MIB]
        trimmer = allocator.Trimmer(
            used=lambda: in_use[0],
            high_water=lambda: 100 * MIB,
            idle=lambda: False,
            interval_s=0.01,
        )
        trimmer.start()
        await asyncio.sleep(0.05)
        before = trimmer.trims
        in_use[0] = 0  # the burst ended
        await asyncio.sleep(0.1)
        await trimmer.stop()
        return trimmer.trims - before

    assert asyncio.run(trims_after_a_drop()) >= 1

    async def trims_once_memory_freed_late_has_grown() -> tuple[int, int]:
        rss = [500 * MIB]
        trimmer = allocator.Trimmer(
            used=lambda: 0,
            high_water=lambda: 0,
            idle=lambda: False,
            interval_s=0.01,
            rss=lambda: rss[0],
            settle_s=0.02,
        )
        trimmer.start()
        await asyncio.sleep(0.1)
        steady = trimmer.trims  # the budget is empty but RSS has not grown: nothing to do
        rss[0] += 64 * MIB  # a late free: RSS above what the last trim left
        await asyncio.sleep(0.1)
        await trimmer.stop()
        return steady, trimmer.trims

    steady, trims = asyncio.run(trims_once_memory_freed_late_has_grown())
    assert steady == 0 and trims >= 1
