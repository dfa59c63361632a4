"""Temporal (format 3) bundles over gRPC: track ids in a unary call, stateful streams with and
without lookahead, and the refusals, on the real server over loopback.

The temporal test lifter ("window_probe": 5-frame windows answering the middle frame) answers
per joint the x ray of its window's first, answered and last frame. Each test frame here has
all its joints at one x ray, x = its label / 1000 through the camera below, so every answer
reads back which frames the server put in the window.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from poseaug.v1 import poseaug_pb2
from poseaug_service.bundle import BundleError, load_bundle
from poseaug_service.config import ServerConfig
from poseaug_service.sessions import load_model
from tests.support.bundles import WINDOW_ANCHOR, WINDOW_FRAMES, make_bundle
from tests.support.protos import array, tensor
from tests.support.server import ServerHandle, running_server

TEMPORAL, SINGLE = "temporal", "single"
CAM = poseaug_pb2.CameraIntrinsics(fx=1000.0, fy=1000.0, cx=0.0, cy=0.0)
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    root = tmp_path_factory.mktemp("temporal-models")
    make_bundle(root, SINGLE, default=True, with_augmentor=False, lifter="rays_echo")
    make_bundle(root, TEMPORAL, default=False, with_augmentor=False, lifter="window_probe")
    flags = ("--max-batch", "64", "--max-stream-tracks", "4")
    with running_server(root, *flags, metrics=False) as handle:
        yield handle


def pixels(labels: list[float]) -> np.ndarray:
    """[N, 17, 2] frames whose joints all sit at u = label (x ray = label / 1000)."""
    out = np.zeros((len(labels), 17, 2), np.float32)
    out[..., 0] = np.asarray(labels, np.float32)[:, None]
    return out


def request(labels: list[float], tracks: list[int] | None = None, model: str = TEMPORAL):
    return poseaug_pb2.Lift2Dto3DRequest(
        keypoints=tensor(pixels(labels)), camera=CAM, model=model, track_ids=tracks or []
    )


def windows(response: poseaug_pb2.Lift2Dto3DResponse) -> list[list[float]]:
    """Per pose, the labels of the window's (first, answered, last) frame."""
    return np.rint(array(response.pose3d)[:, 1, :] * 1000).tolist()


def test_model_info_tells_the_window(temporal_server) -> None:
    models = temporal_server.stub.ListModels(poseaug_pb2.ListModelsRequest()).models
    info = {m.name: m for m in models}
    assert info[TEMPORAL].temporal_frames == WINDOW_FRAMES
    assert info[TEMPORAL].temporal_lookahead == WINDOW_FRAMES - 1 - WINDOW_ANCHOR
    assert info[SINGLE].temporal_frames == 1 and info[SINGLE].temporal_lookahead == 0


def test_a_request_s_tracks_are_lifted_with_centred_windows(temporal_server) -> None:
    # Track 9: frames 1..4; track 2: frames 10, 11, interleaved as a tracker would send them.
    resp = temporal_server.stub.Lift2Dto3D(request([1, 10, 2, 11, 3, 4], tracks=[9, 2, 9, 2, 9, 9]))
    assert windows(resp) == [
        [1, 1, 3],  # window 1 1 1 2 3: the track's start repeats
        [10, 10, 11],
        [1, 2, 4],
        [10, 11, 11],
        [1, 3, 4],
        [2, 4, 4],  # window 2 3 4 4 4: its end repeats
    ]
    # Without track ids every pose stands alone; single-frame bundles ignore track ids.
    assert windows(temporal_server.stub.Lift2Dto3D(request([5, 6]))) == [[5, 5, 5], [6, 6, 6]]
    single = temporal_server.stub.Lift2Dto3D(request([5, 6], tracks=[1, 1], model=SINGLE))
    assert np.allclose(array(single.pose3d)[:, 1, 0], [0.005, 0.006])


def stream(server: ServerHandle, messages: list[poseaug_pb2.StreamLift2Dto3DRequest]):
    return list(server.stub.StreamLift2Dto3D(iter(messages)))


def test_a_causal_stream_answers_each_frame_from_its_past(temporal_server) -> None:
    msgs = [
        poseaug_pb2.StreamLift2Dto3DRequest(request=request([t, 100 + t], tracks=[1, 2]))
        for t in range(1, 5)
    ]
    answers = stream(temporal_server, msgs)
    assert [a.request_index for a in answers] == [0, 1, 2, 3]
    # Frame t's window: t-2 .. t, the future repeating the newest frame.
    assert [windows(a.response)[0] for a in answers] == [[1, 1, 1], [1, 2, 2], [1, 3, 3], [2, 4, 4]]
    assert windows(answers[3].response)[1] == [102, 104, 104]


def test_lookahead_answers_late_with_future_frames_and_closing_flushes(temporal_server) -> None:
    msgs = [
        poseaug_pb2.StreamLift2Dto3DRequest(request=request([t], tracks=[7]), lookahead=2)
        for t in range(1, 6)
    ]
    answers = stream(temporal_server, msgs)
    assert [a.request_index for a in answers] == [0, 1, 2, 3, 4]
    assert [windows(a.response)[0] for a in answers] == [
        [1, 1, 3],
        [1, 2, 4],
        [1, 3, 5],
        [2, 4, 5],  # sent when the client closed: the missing future repeats the newest
        [3, 5, 5],
    ]


def code_of(fn) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        fn()
    return err.value.code(), err.value.details()


def test_bad_tracks_and_lookaheads_are_refused_naming_the_field(temporal_server) -> None:
    stub = temporal_server.stub
    code, details = code_of(lambda: stub.Lift2Dto3D(request([1, 2, 3], tracks=[1, 1])))
    assert code == INVALID and "track_ids" in details and "3" in details
    too_far = poseaug_pb2.StreamLift2Dto3DRequest(request=request([1], [1]), lookahead=3)
    code, details = code_of(lambda: stream(temporal_server, [too_far]))
    assert code == INVALID and "lookahead" in details and "0..2" in details
    single = poseaug_pb2.StreamLift2Dto3DRequest(
        request=request([1], [1], model=SINGLE), lookahead=1
    )
    code, details = code_of(lambda: stream(temporal_server, [single]))
    assert code == INVALID and "lookahead" in details
    changed = [
        poseaug_pb2.StreamLift2Dto3DRequest(request=request([1], [1]), lookahead=1),
        poseaug_pb2.StreamLift2Dto3DRequest(request=request([2], [1]), lookahead=2),
    ]
    code, details = code_of(lambda: stream(temporal_server, changed))
    assert code == INVALID and "lookahead" in details
    # The server was started with at most 4 live tracks per stream.
    many = [
        poseaug_pb2.StreamLift2Dto3DRequest(request=request([1, 2, 3], [1, 2, 3])),
        poseaug_pb2.StreamLift2Dto3DRequest(request=request([4, 5], [4, 5])),
    ]
    code, details = code_of(lambda: stream(temporal_server, many))
    assert code == INVALID and "request[1].track_ids" in details and "4 live tracks" in details
    # ... and still serves everyone afterwards.
    assert windows(stub.Lift2Dto3D(request([8]))) == [[8, 8, 8]]


def test_format_3_bundles_must_declare_a_fitting_window(tmp_path: Path) -> None:
    """A temporal manifest whose window disagrees with its graph, or a format 3 manifest
    without a window, is refused."""
    folder = make_bundle(tmp_path, "bad-window", with_augmentor=False, lifter="window_probe")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["lifter"]["temporal"]["frames"] = 7
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"\[N, 7, 17, C\]"):
        load_model(load_bundle(folder), ServerConfig(models=tmp_path))
    manifest["lifter"].pop("temporal")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"lifter\.temporal"):
        load_bundle(folder)
