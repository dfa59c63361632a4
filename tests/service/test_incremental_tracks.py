"""Incremental temporal lifting, below gRPC: a stream's tracks stepped through the step form
(layer_state.py, stream_tracks.py) and a request's tracks cut for the whole-track form
(track_windows.py) give the window model's poses, on real ONNX Runtime sessions of a small
VideoPose3D-shaped lifter (tests/support/dilated_toy.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from poseaug_service.bundle import load_bundle
from poseaug_service.config import ServerConfig
from poseaug_service.lifting import LiftInput
from poseaug_service.sessions import LoadedModel, load_model
from poseaug_service.stream_tracks import Owed, StreamTracks
from poseaug_service.track_windows import TrackChunks, lifter_inputs, request_windows
from tests.support import dilated_toy
from tests.support.bundles import make_bundle

TOLERANCE = 1e-5  # metres


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LoadedModel]:
    """The toy lifters, centred and causal, with their forms; and each without them (the same
    weights: the window model alone)."""
    root = tmp_path_factory.mktemp("toy")
    config = ServerConfig(models=root)
    out = {}
    for name, lifter, forms in (
        ("centre", "dilated_centre", True),
        ("causal", "dilated_causal", True),
        ("centre_windows", "dilated_centre", False),
        ("causal_windows", "dilated_causal", False),
    ):
        folder = make_bundle(root, name, with_augmentor=False, lifter=lifter, forms=forms)
        out[name] = load_model(load_bundle(folder), config)
    out["centre_again"] = load_model(load_bundle(root / "centre"), config)  # a reload
    return out


def frames(n: int, seed: int) -> np.ndarray:
    """[n, 17, 3] rays of a person moving, every joint seen."""
    rng = np.random.default_rng(seed)
    kp = rng.normal(0, 0.2, (n, 17, 3)).astype(np.float32)
    kp[..., :2] += np.linspace(-0.5, 0.5, n)[:, None, None] * rng.normal(0, 1, 2)
    kp[..., 2] = 1.0
    return kp


def message(model: LoadedModel, poses: np.ndarray, ids: list[int]) -> LiftInput:
    return LiftInput(model, poses, None, "", track_ids=np.array(ids, np.int64))


def stream_script(length: int = 40) -> list[tuple[list[int], list[int]]]:
    """(track ids, frame numbers) per message: track 1 in every message, track 2 from message
    3 on, skipping messages 10-12, track 3 only in messages 20-22, track 1 twice in message 30
    (two frames of one track in one message)."""
    script = []
    for m in range(length):
        ids = [1] + ([2] if m >= 3 and not 10 <= m <= 12 else []) + ([3] if 20 <= m <= 22 else [])
        if m == 30:
            ids.append(1)
        script.append(ids)
    counters: dict[int, int] = {}
    out = []
    for ids in script:
        nums = []
        for t in ids:
            nums.append(counters.get(t, 0))
            counters[t] = nums[-1] + 1
        out.append((ids, nums))
    return out


def play(
    model_of, lookahead: int, script, seed: int = 0
) -> tuple[dict[int, np.ndarray], list[Owed], StreamTracks]:
    """A stream as the servicer runs it: steps where the step form serves it, windows for
    the rest; returns each message's poses, the answered messages and the track state."""
    tracks = StreamTracks(lookahead, max_tracks=8, idle_s=60)
    track_frames = {t: frames(64, seed + t) for t in (1, 2, 3)}
    answers: dict[int, np.ndarray] = {}
    answered: list[Owed] = []

    def answer(owed: Owed) -> None:
        n = len(owed.parsed.keypoints)
        poses = np.empty((n, 17, 3), np.float32) if owed.pose3d is None else owed.pose3d.copy()
        rows = owed.missing()
        if len(rows):
            poses[rows] = owed.parsed.model.run_lifter(np.asarray(tracks.windows(owed)))
        answers[owed.index] = poses
        answered.append(owed)

    for m, (ids, nums) in enumerate(script):
        model = model_of(m)
        poses = np.stack([track_frames[t][k] for t, k in zip(ids, nums, strict=True)])
        for run in tracks.add(message(model, poses, ids)):
            tracks.stepped(run, model.run_step(run.inputs()))
        for owed in tracks.ready():
            answer(owed)
    for owed in tracks.flush():
        answer(owed)
    return answers, answered, tracks


def stepped_share(answered: list[Owed]) -> float:
    done = [o.done for o in answered if o.done is not None]
    return float(np.concatenate(done).mean()) if done else 0.0


@pytest.mark.parametrize(("name", "lookahead"), [("causal", 0), ("centre", 4)])
def test_stepped_streams_give_the_window_model_s_poses(models, name: str, lookahead: int) -> None:
    script = stream_script()
    # The same stream with the window model alone.
    ref, _, _ = play(lambda m: models[f"{name}_windows"], lookahead, script)
    got, answered, tracks = play(lambda m: models[name], lookahead, script)
    assert sorted(got) == sorted(ref) == list(range(len(script)))
    for m in ref:
        np.testing.assert_allclose(got[m], ref[m], atol=TOLERANCE, err_msg=f"message {m}")
    # Most poses came from steps; the rest (track 2 after its gap, track 3 too short to reach
    # its lookahead, the stream's end, the frame sent twice) from windows.
    share = stepped_share(answered)
    assert 0.7 < share < 1.0 if lookahead else share > 0.95
    # Each live track keeps its layer state: the kept inputs' taps.
    state = next(iter(tracks._live.values())).state
    assert state is not None and state.nbytes == 4 * models[name].step_layout.state_values
    assert tracks.nbytes >= 2 * state.nbytes


def test_steps_only_serve_the_model_s_full_lookahead(models) -> None:
    """A centred stream at a lookahead short of the full one is answered from windows (the
    steps would answer another frame): exactly as the window model."""
    script = stream_script(16)
    ref, _, _ = play(lambda m: models["centre_windows"], 2, script)
    got, answered, tracks = play(lambda m: models["centre"], 2, script)
    for m in ref:
        np.testing.assert_allclose(got[m], ref[m], atol=TOLERANCE)
    assert stepped_share(answered) == 0.0
    assert all(t.state is None for t in tracks._live.values())


def test_a_model_reload_mid_stream_restarts_the_state_without_changing_answers(models) -> None:
    """A new version's state starts at the first frame it sees; until it has seen a whole
    window, its tracks' answers come from windows, then from steps again."""
    script = stream_script()
    ref, _, _ = play(lambda m: models["centre_windows"], 4, script)
    got, answered, _ = play(
        lambda m: models["centre"] if m < 18 else models["centre_again"], 4, script
    )
    for m in ref:
        np.testing.assert_allclose(got[m], ref[m], atol=TOLERANCE)
    by_index = {o.index: o for o in answered}
    # Message 18's frame of track 1 is its state's first; steps answer again 8 frames later.
    first_again = 18 + dilated_toy.FRAMES - 1 - 4  # answered message, 4 frames behind
    assert not by_index[first_again - 1].done[0] and by_index[first_again].done[0]


def test_idle_tracks_are_forgotten_with_their_state(models) -> None:
    now = [0.0]
    tracks = StreamTracks(0, max_tracks=8, idle_s=10, clock=lambda: now[0])
    model = models["causal"]
    for ids in ([1, 2], [1, 2], [3]):
        msg = message(model, frames(len(ids), 0), ids)
        for run in tracks.add(msg):
            tracks.stepped(run, model.run_step(run.inputs()))
        tracks.ready()
        now[0] += 6.0  # track 1 and 2 last seen at 6 s, track 3 at 12 s
    per_track = 4 * model.step_layout.state_values
    assert tracks.live_tracks == 3 and tracks.nbytes >= 3 * per_track
    now[0] = 17.0
    tracks.add(message(model, frames(1, 1), [3]))
    assert tracks.live_tracks == 1 and tracks.nbytes < 2 * per_track


def test_a_request_s_long_tracks_go_to_the_whole_track_form(models) -> None:
    centre = models["centre"]
    rng = np.random.default_rng(3)
    lengths = {7: 50, 2: 23, 9: 1}
    ids = np.concatenate([np.full(n, t) for t, n in lengths.items()])
    rng.shuffle(ids)  # interleaved, as a tracker's output is
    poses = frames(len(ids), 4)
    parsed = message(centre, poses, ids.tolist())
    chunks = lifter_inputs(parsed)
    assert isinstance(chunks, TrackChunks)
    whole = chunks.poses(centre.run_whole_track(np.asarray(chunks)))
    windows = request_windows(poses, ids, centre.temporal_frames, centre.temporal_anchor)
    np.testing.assert_allclose(whole, centre.run_lifter(np.asarray(windows)), atol=TOLERANCE)
    # Rows are stretches of K answered frames and their context, K a power of two.
    k = chunks.row_frames - (centre.temporal_frames - 1)
    assert k in (8, 16, 32, 64) and len(chunks) <= sum(-(-n // k) for n in lengths.values())
    # Short tracks, or a bundle without the form, get windows.
    few = message(centre, poses[:6], [1, 2, 3, 1, 2, 3])
    assert not isinstance(lifter_inputs(few), TrackChunks)
    assert not isinstance(lifter_inputs(message(models["centre_windows"], poses, ids)), TrackChunks)


def test_a_manifest_step_form_that_disagrees_with_its_graph_is_refused(tmp_path: Path) -> None:
    import json

    from poseaug_service.bundle import BundleError

    folder = make_bundle(tmp_path, "bad-step", with_augmentor=False, lifter="dilated_centre")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["lifter"]["step"]["state"][1]["taps"] = [9, 6, 3]  # the graph reads two taps
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"past_block0 has shape .* needs \[N, 3, 8\]"):
        load_model(load_bundle(folder), ServerConfig(models=tmp_path))
    manifest["lifter"]["step"]["state"][1]["taps"] = [0]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"lifter\.step\.state\[1\]\.taps"):
        load_bundle(folder)


@pytest.mark.parametrize(("name", "lookahead"), [("centre", 4), ("centre_windows", 2)])
def test_the_budget_s_bound_covers_what_a_message_adds(models, name: str, lookahead: int) -> None:
    """`growth_bound`, which the memory budget reserves before a message is recorded, is at
    least what recording it adds to the stream's track state and what its owed answer keeps;
    `close` lets go of everything."""
    model = models[name]
    tracks = StreamTracks(lookahead, max_tracks=8, idle_s=60)
    track_frames = {t: frames(64, t) for t in (1, 2, 3)}
    for ids, nums in stream_script():
        poses = np.stack([track_frames[t][k] for t, k in zip(ids, nums, strict=True)])
        parsed = message(model, poses, ids)
        grows, keeps = tracks.growth_bound(parsed)
        before = tracks.nbytes
        for run in tracks.add(parsed):
            tracks.stepped(run, model.run_step(run.inputs()))
        owed = tracks._owed[-1]
        assert tracks.nbytes - before <= grows
        assert owed.nbytes <= keeps
        tracks.ready()
    assert tracks.nbytes > 0
    tracks.close()
    assert tracks.nbytes == 0 and tracks.live_tracks == 0


def test_poses_without_track_ids_keep_no_layer_state(models) -> None:
    """A stepped stream's poses without track ids are one-frame tracks no step could answer:
    answered from windows, with no layer state kept (or reserved) for them."""
    model = models["centre"]
    tracks = StreamTracks(4, max_tracks=8, idle_s=60)
    parsed = LiftInput(model, frames(3, 0), None, "")
    grows, _ = tracks.growth_bound(parsed)
    assert tracks.add(parsed) == [] and grows == 0
    owed = tracks.flush()[0]
    assert owed.done is None and all(t.state is None for t in owed.tracks)
    poses = model.run_lifter(np.asarray(tracks.windows(owed)))
    assert poses.shape == (3, 17, 3)
