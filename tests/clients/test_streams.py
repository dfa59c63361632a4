"""Streaming iterators (StreamLift2Dto3D, StreamAugment) of both clients against the server."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from poseaug_client import AsyncPoseAugClient, PoseAugClient, PoseAugError
from tests.clients.helpers import request_count


def video_batches(keypoints: np.ndarray) -> list[object]:
    """Uneven batches, an empty one, and a mapping with its own image size and scores."""
    return [
        keypoints[:5],
        keypoints[5:5],
        keypoints[5:6],
        {"keypoints": keypoints[6:15], "image_size": (1920, 1080), "scores": np.ones((9, 17))},
        keypoints[15:],
    ]


def expected_lifts(client: PoseAugClient, keypoints: np.ndarray) -> list[np.ndarray]:
    return [
        client.lift(keypoints[:5]),
        np.zeros((0, 17, 3), np.float32),
        client.lift(keypoints[5:6]),
        client.lift(keypoints[6:15], image_size=(1920, 1080)),
        client.lift(keypoints[15:]),
    ]


def assert_batches_equal(got: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert [g.shape for g in got] == [e.shape for e in expected]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("limit", [65536, 2])
def test_lift_stream_yields_each_batch_in_order(server, client, keypoints, limit) -> None:
    before = request_count(server, "StreamLift2Dto3D")
    with PoseAugClient(server.address, max_poses_per_call=limit) as streaming:
        got = list(streaming.lift_stream(iter(video_batches(keypoints))))
    assert request_count(server, "StreamLift2Dto3D") - before == 1
    assert_batches_equal(got, expected_lifts(client, keypoints))


def test_lift_stream_bad_batch_raises_after_the_good_ones(client, keypoints) -> None:
    batches = [keypoints[:4], keypoints[4:8], np.zeros((3, 16, 2)), keypoints[8:]]
    got = []
    with pytest.raises(PoseAugError) as info:
        for poses in client.lift_stream(batches):
            got.append(poses)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message.startswith("batch 2: keypoints")
    assert_batches_equal(got, [client.lift(keypoints[:4]), client.lift(keypoints[4:8])])


def test_lift_stream_server_rejection_is_a_poseaug_error(client, keypoints) -> None:
    bad = keypoints[:3].copy()
    bad[1, 2, 1] = np.inf
    with pytest.raises(PoseAugError) as info:
        list(client.lift_stream([keypoints[:3], bad]))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_lift_stream_can_stop_early(client, keypoints) -> None:
    stream = client.lift_stream(keypoints[i : i + 1] for i in range(len(keypoints)))
    first = next(stream)
    stream.close()  # cancels the call; the client stays usable
    np.testing.assert_array_equal(first, client.lift(keypoints[:1]))


@pytest.mark.parametrize("chunk_size", [1, 5, 4096])
def test_augment_stream_chunks_join_to_the_unary_result(client, poses3d, chunk_size) -> None:
    chunks = list(client.augment_stream(poses3d, count=3, seed=9, chunk_size=chunk_size))
    assert [c.offset for c in chunks] == list(range(0, 33, chunk_size))
    assert all(len(c.poses3d) <= chunk_size for c in chunks)
    whole = client.augment(poses3d, count=3, seed=9)
    np.testing.assert_array_equal(np.concatenate([c.poses3d for c in chunks]), whole.poses3d)
    np.testing.assert_array_equal(
        np.concatenate([c.keypoints2d for c in chunks]), whole.keypoints2d
    )
    for name, value in whole.params.items():
        np.testing.assert_array_equal(np.concatenate([c.params[name] for c in chunks]), value)


def test_augment_stream_progress_bar(client, poses3d, capsys) -> None:
    list(client.augment_stream(poses3d, count=2, chunk_size=4, progress=True))
    err = capsys.readouterr().err
    assert "augment" in err and "22/22" in err


def test_augment_stream_rejects_bad_chunk_size(client, poses3d) -> None:
    with pytest.raises(PoseAugError) as info:
        list(client.augment_stream(poses3d, chunk_size=0))
    assert info.value.message.startswith("chunk_size")


def test_async_client_matches_sync_client(server, client, keypoints, poses3d) -> None:
    async def run() -> dict:
        async with AsyncPoseAugClient(server.address, max_poses_per_call=4) as aclient:
            return {
                "health": await aclient.health(),
                "models": await aclient.models(),
                "info": await aclient.model_info(),
                "lift": await aclient.lift(keypoints, image_size=(640, 480)),
                "augment": await aclient.augment(poses3d, count=2, seed=3, ops="ba,rt"),
            }

    got = asyncio.run(run())
    assert got["health"] == "SERVING"
    assert got["models"] == client.models()
    assert got["info"] == client.model_info()
    np.testing.assert_array_equal(got["lift"], client.lift(keypoints, image_size=(640, 480)))
    expected = client.augment(poses3d, count=2, seed=3, ops="ba,rt")
    np.testing.assert_array_equal(got["augment"].poses3d, expected.poses3d)
    assert set(got["augment"].params) == set(expected.params)


def test_async_streams_from_sync_and_async_iterables(server, client, keypoints, poses3d) -> None:
    async def batches():
        for batch in video_batches(keypoints):
            await asyncio.sleep(0)
            yield batch

    async def run() -> tuple:
        async with AsyncPoseAugClient(server.address, max_poses_per_call=3) as aclient:
            from_async = [p async for p in aclient.lift_stream(batches())]
            from_sync = [p async for p in aclient.lift_stream(video_batches(keypoints))]
            chunks = [c async for c in aclient.augment_stream(poses3d, count=2, chunk_size=6)]
            return from_async, from_sync, chunks

    from_async, from_sync, chunks = asyncio.run(run())
    expected = expected_lifts(client, keypoints)
    assert_batches_equal(from_async, expected)
    assert_batches_equal(from_sync, expected)
    assert [c.offset for c in chunks] == [0, 6, 12, 18]
    np.testing.assert_array_equal(
        np.concatenate([c.poses3d for c in chunks]), client.augment(poses3d, count=2).poses3d
    )


def test_async_errors_are_poseaug_errors(server, keypoints, slow_keypoints) -> None:
    async def run() -> list[PoseAugError]:
        errors = []
        async with AsyncPoseAugClient(server.address) as aclient:
            for call in (
                lambda: aclient.lift(np.full((2, 17, 2), np.nan)),
                lambda: aclient.model_info("nope"),
                lambda: aclient.lift(slow_keypoints, timeout=1e-3),
            ):
                try:
                    await call()
                except PoseAugError as error:
                    errors.append(error)
        return errors

    codes = [e.code for e in asyncio.run(run())]
    assert codes[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert codes[1] in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    assert codes[2] == grpc.StatusCode.DEADLINE_EXCEEDED
