"""Temporal bundles with the step and whole-track forms, on the real server over loopback: unary
requests with track ids and streams (causal, centred at full and partial lookahead, several
people per message, several streams at once) answer as the same bundle without the forms
(its window model alone) does."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from poseaug.v1 import poseaug_pb2
from tests.support.bundles import make_bundle
from tests.support.protos import array, tensor
from tests.support.server import ServerHandle, running_server

CAM = poseaug_pb2.CameraIntrinsics(fx=1000.0, fy=1000.0, cx=0.0, cy=0.0)
TOLERANCE = 1e-5  # metres


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """'centre' and 'causal' ship the forms; '*-windows' are the same weights without them."""
    root = tmp_path_factory.mktemp("incremental-models")
    make_bundle(root, "single", default=True, with_augmentor=False, lifter="rays_echo")
    for kind in ("centre", "causal"):
        lifter = f"dilated_{kind}"
        make_bundle(root, kind, default=False, with_augmentor=False, lifter=lifter)
        make_bundle(root, f"{kind}-windows", False, False, lifter=lifter, forms=False)
    with running_server(root, "--max-batch", "64", metrics=False) as handle:
        yield handle


def pixels(n: int, seed: int) -> np.ndarray:
    """[n, 17, 2] pixels of a person moving through the camera above."""
    rng = np.random.default_rng(seed)
    rays = rng.normal(0, 0.2, (n, 17, 2)) + np.linspace(-0.4, 0.4, n)[:, None, None]
    return (rays * 1000).astype(np.float32)


def request(model: str, frames: np.ndarray, ids: list[int]) -> poseaug_pb2.Lift2Dto3DRequest:
    return poseaug_pb2.Lift2Dto3DRequest(
        keypoints=tensor(frames), camera=CAM, model=model, track_ids=ids
    )


def test_unary_tracks_are_lifted_by_the_whole_track_form_as_by_windows(server) -> None:
    rng = np.random.default_rng(0)
    for lengths in ({4: 120, 11: 37, 5: 2}, {1: 9}, {1: 2, 2: 2, 3: 1}):
        ids = np.concatenate([np.full(n, t) for t, n in lengths.items()])
        rng.shuffle(ids)
        frames = pixels(len(ids), len(ids))
        for kind in ("centre", "causal"):
            got = server.stub.Lift2Dto3D(request(kind, frames, ids.tolist()))
            ref = server.stub.Lift2Dto3D(request(f"{kind}-windows", frames, ids.tolist()))
            np.testing.assert_allclose(array(got.pose3d), array(ref.pose3d), atol=TOLERANCE)
            assert got.model == kind


def script(messages: int, seed: int) -> list[tuple[list[int], np.ndarray]]:
    """(track ids, pixels) per message: 2-3 people, one leaving for a few messages, one
    arriving late, as a tracker would send them."""
    people = {t: pixels(messages + 1, seed + t) for t in (10, 20, 30)}
    seen = {t: 0 for t in people}
    out = []
    for m in range(messages):
        ids = [10] + ([20] if not 8 <= m <= 10 else []) + ([30] if m >= 5 else [])
        frames = []
        for t in ids:
            frames.append(people[t][seen[t]])
            seen[t] += 1
        out.append((ids, np.stack(frames)))
    return out


def play(server: ServerHandle, model: str, lookahead: int, messages) -> list[np.ndarray]:
    stream = [
        poseaug_pb2.StreamLift2Dto3DRequest(request=request(model, f, ids), lookahead=lookahead)
        for ids, f in messages
    ]
    answers = list(server.stub.StreamLift2Dto3D(iter(stream)))
    assert [a.request_index for a in answers] == list(range(len(messages)))
    return [array(a.response.pose3d) for a in answers]


@pytest.mark.parametrize(
    ("kind", "lookahead"),
    [("causal", 0), ("centre", 4), ("centre", 2), ("centre", 0)],
)
def test_streams_answer_as_the_window_model(server, kind: str, lookahead: int) -> None:
    """Causal and full-lookahead streams run on steps, the partial lookaheads on windows."""
    messages = script(30, seed=lookahead)
    got = play(server, kind, lookahead, messages)
    ref = play(server, f"{kind}-windows", lookahead, messages)
    for m, (g, r) in enumerate(zip(got, ref, strict=True)):
        np.testing.assert_allclose(g, r, atol=TOLERANCE, err_msg=f"message {m}")


def test_concurrent_streams_share_step_runs_and_keep_their_own_states(server) -> None:
    """Streams at once (their steps merged into the same runs) each get their own answers."""
    scripts = [script(25, seed=100 * s) for s in range(6)]
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda s: play(server, "centre", 4, s), scripts))
    for s, messages in enumerate(scripts):
        ref = play(server, "centre-windows", 4, messages)
        for g, r in zip(got[s], ref, strict=True):
            np.testing.assert_allclose(g, r, atol=TOLERANCE)
