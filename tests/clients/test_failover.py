"""A server dies mid-stream: the streaming iterators reconnect to the next server and deliver
every batch / row exactly once, in order."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from poseaug_client import PoseAugClient
from tests.support.server import running_server


@pytest.fixture
def doomed_and_spare(model_dir):
    """Two servers with the same bundles; the first one will be killed."""
    with running_server(model_dir, check_exit=False) as doomed, running_server(model_dir) as spare:
        yield doomed, spare


def failover_client(doomed, spare) -> PoseAugClient:
    # host names: the client's own rotation, whose first call goes to the first address
    return PoseAugClient(
        f"localhost:{doomed.port},localhost:{spare.port}",
        max_attempts=5,
        initial_backoff=0.05,
        max_backoff=0.2,
    )


def test_lift_stream_resends_unanswered_batches(
    doomed_and_spare, client, keypoints, retry_log
) -> None:
    doomed, spare = doomed_and_spare
    answered = threading.Semaphore(0)

    def batches():
        for i in range(len(keypoints)):
            if i == 8:  # some batches answered, some in flight: pull the plug
                for _ in range(3):
                    answered.acquire(timeout=30)
                doomed.process.kill()
                doomed.process.wait(30)
            yield keypoints[i : i + 1]

    got = []
    with failover_client(doomed, spare) as streaming:
        for poses in streaming.lift_stream(batches()):
            got.append(poses)
            answered.release()
    assert any("StreamLift2Dto3D" in m for m in retry_log.messages), "the stream was reopened"
    assert len(got) == len(keypoints)
    np.testing.assert_array_equal(np.concatenate(got), client.lift(keypoints))


def test_augment_stream_resumes_after_the_rows_it_delivered(
    doomed_and_spare, client, poses3d, retry_log
) -> None:
    doomed, spare = doomed_and_spare
    chunks = []
    with failover_client(doomed, spare) as streaming:
        for chunk in streaming.augment_stream(poses3d, count=1024, seed=2, chunk_size=64):
            if not chunks:
                doomed.process.kill()
                doomed.process.wait(30)
            chunks.append(chunk)
    if not any("StreamAugment" in m for m in retry_log.messages):
        pytest.skip("the whole job was buffered before the server died; nothing to resume")
    offsets = [c.offset for c in chunks]
    rows = [len(c.poses3d) for c in chunks]
    assert offsets == list(np.cumsum([0, *rows[:-1]])), "no gap, no repeat"
    expected = client.augment(poses3d, count=1024, seed=2)
    np.testing.assert_array_equal(np.concatenate([c.poses3d for c in chunks]), expected.poses3d)
