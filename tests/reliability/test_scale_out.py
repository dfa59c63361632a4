"""Client-side load balancing over three replicas (what the headless Service gives clients in
Kubernetes): the poseaug client spreads calls round-robin, and when one replica is killed
under load every request is still answered, by exactly its own answer, once: calls that were
in flight on the dead replica come back UNAVAILABLE and are retried on the others."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest

from poseaug_client import PoseAugClient
from tests.reliability.traffic import LiftTraffic, distinct_input
from tests.support.bundles import make_bundle
from tests.support.metrics import metric, scrape
from tests.support.protos import normalize_reference
from tests.support.server import running_server

REPLICAS = 3
CALLERS = 6
CALLS_PER_CALLER = 30
POSES = 1500  # ~94 ORT runs of 16 per call: calls stay in flight long past the kill
STREAM_BATCHES = 60


class RetryLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying" in record.getMessage():
            self.messages.append(record.getMessage())


@pytest.fixture
def retry_log():
    handler = RetryLog()
    logger = logging.getLogger("poseaug_client")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def lifted_poses(srv) -> float:
    return metric(scrape(srv.metrics_url), "poseaug_poses_total")


def test_killing_a_replica_under_load_loses_no_request(tmp_path: Path, retry_log) -> None:
    make_bundle(tmp_path, "replicated", seed=3)
    session = ort.InferenceSession(
        str(tmp_path / "replicated" / "lifter.onnx"), providers=["CPUExecutionProvider"]
    )
    flags = ("--max-batch", "16", "--max-queue-delay-us", "0")
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(running_server(tmp_path, *flags, check_exit=(i != 1)))
            for i in range(REPLICAS)
        ]
        doomed = servers[1]
        client = stack.enter_context(
            PoseAugClient(
                ",".join(s.address for s in servers),
                max_attempts=6,
                initial_backoff=0.05,
                max_backoff=0.5,
                timeout=120,
            )
        )
        answers: dict[int, np.ndarray] = {}
        answered_twice: list[int] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def caller(c: int) -> None:
            for k in range(CALLS_PER_CALLER):
                index = c * CALLS_PER_CALLER + k
                try:
                    poses = client.lift(distinct_input(index, POSES))
                except BaseException as exc:
                    errors.append(exc)
                    return
                with lock:
                    if index in answers:
                        answered_twice.append(index)
                    answers[index] = poses

        stream_frames = [distinct_input(100_000 + k, 5) for k in range(STREAM_BATCHES)]
        streamed: list[np.ndarray] = []

        def streamer() -> None:
            try:
                for poses in client.lift_stream(iter(stream_frames)):
                    streamed.append(poses)
                    time.sleep(0.01)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=caller, args=(c,)) for c in range(CALLERS)]
        threads.append(threading.Thread(target=streamer))
        for t in threads:
            t.start()
        # kill only once every replica has served and the doomed one has a call in flight
        deadline = time.monotonic() + 60
        while not (
            all(lifted_poses(s) > 0 for s in servers)
            and metric(scrape(doomed.metrics_url), "poseaug_inflight_requests") >= 1
        ):
            assert time.monotonic() < deadline and not errors, errors
            time.sleep(0.005)
        done_at_kill = len(answers)
        doomed.process.kill()
        doomed.process.wait(30)
        for t in threads:
            t.join(timeout=120)
        survivors = [lifted_poses(s) for s in servers if s is not doomed]

    total = CALLERS * CALLS_PER_CALLER
    assert not errors, errors[:3]
    assert done_at_kill < total, "the replica died under load, not after it"
    assert answered_twice == []
    assert sorted(answers) == list(range(total)), "every request answered"
    inputs = np.concatenate([distinct_input(i, POSES) for i in range(total)])
    expected = session.run(["pose3d"], {"keypoints": normalize_reference(inputs, 1000, 1000)})[0]
    got = np.concatenate([answers[i] for i in range(total)])
    np.testing.assert_allclose(got, expected, atol=1e-5)  # each answer is its own input's

    assert len(streamed) == STREAM_BATCHES
    frames = np.concatenate(stream_frames)
    want = session.run(["pose3d"], {"keypoints": normalize_reference(frames, 1000, 1000)})[0]
    np.testing.assert_allclose(np.concatenate(streamed), want, atol=1e-5)

    assert retry_log.messages, "calls in flight on the killed replica were retried"
    assert all(m.split()[0] in ("Lift2Dto3D", "StreamLift2Dto3D") for m in retry_log.messages)
    assert all(p > 0 for p in survivors)


def test_aged_connections_are_recycled_without_failed_calls(tmp_path: Path) -> None:
    """--max-connection-age-s makes clients reconnect (and so re-resolve a headless Service's
    DNS and find new replicas); calls in flight at the GOAWAY still finish."""
    make_bundle(tmp_path, "aged")
    flags = ("--max-connection-age-s", "0.5", "--grace-s", "5")
    with running_server(tmp_path, *flags) as srv, LiftTraffic(srv.address, callers=4) as traffic:
        states: list[grpc.ChannelConnectivity] = []
        traffic.channel.subscribe(states.append, try_to_connect=False)
        deadline = time.monotonic() + 30
        while states.count(grpc.ChannelConnectivity.READY) < 3:
            assert time.monotonic() < deadline, f"connection never recycled: {states}"
            time.sleep(0.05)
        answered = traffic.count()
        traffic.wait_for(lambda: traffic.count() > answered + 50)
        traffic.stop()
    assert traffic.failures == [], traffic.failures[:3]
    assert traffic.count() > 100
