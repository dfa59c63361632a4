"""Tracks through the Python client and CLI against a real server with a temporal bundle.

The temporal test lifter answers, per joint, the x ray of its window's first, answered and
last frame (5-frame windows answering the middle one). Each frame here has every joint at
u = its label (camera fx = 1000, cx = 0), so each answer reads back which frames the server
put in the window: (first, answered, last) labels.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from poseaug_client import AsyncPoseAugClient, Camera, PoseAugClient, PoseAugError
from tests.clients.test_cli import PNG_MAGIC, poseaug

CAMERA = Camera(fx=1000.0, fy=1000.0, cx=0.0, cy=0.0)


def frames(labels: list[float]) -> np.ndarray:
    out = np.zeros((len(labels), 17, 2), np.float32)
    out[..., 0] = np.asarray(labels, np.float32)[:, None]
    return out


def windows(poses: np.ndarray) -> list[list[float]]:
    return np.rint(np.asarray(poses)[:, 1, :] * 1000).tolist()


def test_lift_with_track_ids_sync_and_async(temporal_server) -> None:
    labels, tracks = [1, 10, 2, 11, 3], [4, 8, 4, 8, 4]
    expected = [[1, 1, 3], [10, 10, 11], [1, 2, 3], [10, 11, 11], [1, 3, 3]]
    with PoseAugClient(temporal_server.address) as client:
        info = client.model_info()
        assert info.temporal and info.temporal_frames == 5 and info.temporal_lookahead == 2
        got = client.lift(frames(labels), camera=CAMERA, track_ids=tracks)
        assert windows(got) == expected
        with pytest.raises(PoseAugError, match="track_ids"):
            client.lift(frames(labels), camera=CAMERA, track_ids=[1, 2])

    async def run() -> np.ndarray:
        async with AsyncPoseAugClient(temporal_server.address) as client:
            return await client.lift(frames(labels), camera=CAMERA, track_ids=np.array(tracks))

    assert windows(asyncio.run(run())) == expected


def test_lift_stream_keeps_tracks_and_honours_lookahead(temporal_server) -> None:
    batches = [
        {"keypoints": frames([t, 100 + t]), "track_ids": [1, 2], "camera": CAMERA}
        for t in range(1, 5)
    ]
    with PoseAugClient(temporal_server.address) as client:
        causal = [windows(p) for p in client.lift_stream(batches)]
        ahead = [windows(p) for p in client.lift_stream(batches, lookahead=2)]
    assert [w[0] for w in causal] == [[1, 1, 1], [1, 2, 2], [1, 3, 3], [2, 4, 4]]
    assert [w[0] for w in ahead] == [[1, 1, 3], [1, 2, 4], [1, 3, 4], [2, 4, 4]]
    assert ahead[1][1] == [101, 102, 104]

    async def run() -> list[list[list[float]]]:
        async with AsyncPoseAugClient(temporal_server.address) as client:
            return [windows(p) async for p in client.lift_stream(batches, lookahead=1)]

    assert [w[0] for w in asyncio.run(run())] == [[1, 1, 2], [1, 2, 3], [1, 3, 4], [2, 4, 4]]


def test_cli_lifts_a_tracker_s_coco_json_per_track_and_plots_one(
    temporal_server, tmp_path, capsys
) -> None:
    # Two people over three frames; the file lists frame 2 first (order must not matter).
    detections = []
    for image_id, label in ((2, 2), (0, 0), (1, 1)):
        for track, offset in ((5, 0), (9, 500)):
            triples = np.zeros((17, 3))
            triples[:, 0] = label + offset
            triples[:, 2] = 1.0
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": triples.ravel().tolist(),
                    "score": 0.9,
                    "track_id": track,
                }
            )
    (tmp_path / "tracked.json").write_text(json.dumps(detections))
    code, _, err = poseaug(
        capsys, "lift", "--server", temporal_server.address, "--input", tmp_path / "tracked.json",
        "--output", tmp_path / "out.json", "--camera", "1000,1000,0,0",
        "--plot", tmp_path / "track.png", "--track", "9",
    )  # fmt: skip
    assert code == 0, err
    records = json.loads((tmp_path / "out.json").read_text())
    assert [(r["image_id"], r["track_id"]) for r in records] == [
        (2, 5), (2, 9), (0, 5), (0, 9), (1, 5), (1, 9),
    ]  # fmt: skip
    # COCO's hip is the mean of the hips, so joint 1 still reads the frame's label.
    got = {(r["image_id"], r["track_id"]): windows(np.array([r["pose3d"]]))[0] for r in records}
    assert got[(0, 5)] == [0, 0, 2] and got[(1, 5)] == [0, 1, 2] and got[(2, 5)] == [0, 2, 2]
    assert got[(1, 9)] == [500, 501, 502]
    assert (tmp_path / "track.png").read_bytes()[:8] == PNG_MAGIC
    code, _, err = poseaug(
        capsys, "lift", "--server", temporal_server.address, "--input", tmp_path / "tracked.json",
        "--output", tmp_path / "out.json", "--camera", "1000,1000,0,0", "--track", "3",
    )  # fmt: skip
    assert code != 0 and "--track 3" in err
