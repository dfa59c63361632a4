"""Deadlines and retries: UNAVAILABLE is retried with backoff, nothing else is."""

from __future__ import annotations

import asyncio
import threading

import grpc
import numpy as np
import pytest

from poseaug_client import AsyncPoseAugClient, PoseAugClient, PoseAugError
from tests.clients.helpers import request_count
from tests.support.server import free_port, running_server

FAST_BACKOFF = {"initial_backoff": 0.05, "max_backoff": 0.5}


def test_unreachable_server_fails_after_the_configured_attempts(retry_log) -> None:
    address = f"127.0.0.1:{free_port()}"
    client = PoseAugClient(address, max_attempts=3, **FAST_BACKOFF)
    with client, pytest.raises(PoseAugError) as info:
        client.models()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert len(retry_log.messages) == 2  # attempts 1 and 2 were retried, 3 was final
    assert "attempt 1/3" in retry_log.messages[0]


def test_one_attempt_means_no_retry(retry_log) -> None:
    client = PoseAugClient(f"127.0.0.1:{free_port()}", max_attempts=1)
    with client, pytest.raises(PoseAugError) as info:
        client.health()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert retry_log.messages == []


def test_invalid_argument_is_not_retried(server, keypoints, retry_log) -> None:
    bad = keypoints.copy()
    bad[2, 3] = np.nan
    before = request_count(server, "Lift2Dto3D", "INVALID_ARGUMENT")
    client = PoseAugClient(server.address, max_attempts=5, **FAST_BACKOFF)
    with client, pytest.raises(PoseAugError) as info:
        client.lift(bad)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert request_count(server, "Lift2Dto3D", "INVALID_ARGUMENT") - before == 1
    assert retry_log.messages == []


@pytest.mark.parametrize("kind", ["unary", "lift_stream", "augment_stream"])
def test_deadline_exceeded_is_a_poseaug_error(server, slow_keypoints, poses3d, kind) -> None:
    client = PoseAugClient(server.address, max_attempts=5)
    with client, pytest.raises(PoseAugError) as info:
        if kind == "unary":
            client.lift(slow_keypoints, timeout=1e-3)
        elif kind == "lift_stream":
            list(client.lift_stream([slow_keypoints] * 3, timeout=1e-3))
        else:
            list(client.augment_stream(poses3d, count=1024, timeout=1e-3))
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_every_client_retries_until_a_late_server_comes_up(
    model_dir, server, keypoints, poses3d, retry_log
) -> None:
    """Calls start against a port nobody listens on; the server starts once they are
    retrying; every call then succeeds with the same results as the running server's."""
    port = free_port()
    options = {"max_attempts": 200, "timeout": 120, **FAST_BACKOFF}
    results: dict[str, object] = {}

    def run(name, fn) -> threading.Thread:
        def target() -> None:
            try:
                results[name] = fn()
            except Exception as exc:  # reported by the assertions below
                results[name] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        return thread

    def async_augment():
        async def go():
            async with AsyncPoseAugClient(f"127.0.0.1:{port}", **options) as aclient:
                return await aclient.augment(poses3d, count=2, seed=1)

        return asyncio.run(go())

    late = PoseAugClient(f"127.0.0.1:{port}", **options)
    threads = [
        run("lift", lambda: late.lift(keypoints)),
        run("lift_stream", lambda: list(late.lift_stream([keypoints[:9], keypoints[9:]]))),
        run("augment_stream", lambda: list(late.augment_stream(poses3d, count=2, seed=1))),
        run("async_augment", async_augment),
    ]
    try:
        for _ in range(600):
            if len(retry_log.messages) >= 8 or not any(t.is_alive() for t in threads):
                break
            threading.Event().wait(0.05)
        assert len(retry_log.messages) >= 4, "the calls should be retrying by now"
        with running_server(model_dir, "--port", str(port)):
            for thread in threads:
                thread.join(120)
    finally:
        late.close()

    for name, value in results.items():
        assert not isinstance(value, Exception), f"{name}: {value!r}"
    with PoseAugClient(server.address) as reference:
        np.testing.assert_array_equal(results["lift"], reference.lift(keypoints))
        np.testing.assert_array_equal(np.concatenate(results["lift_stream"]), results["lift"])
        expected = reference.augment(poses3d, count=2, seed=1).poses3d
    np.testing.assert_array_equal(
        np.concatenate([c.poses3d for c in results["augment_stream"]]), expected
    )
    np.testing.assert_array_equal(results["async_augment"].poses3d, expected)
    assert {"Lift2Dto3D", "StreamLift2Dto3D", "StreamAugment", "Augment"} <= {
        message.split(" ")[0] for message in retry_log.messages
    }
