"""Windows of tracked frames: a unary request's tracks, and a stream's track state with and
without lookahead (small arrays made here; the gRPC path is in test_temporal_lift.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from poseaug_service.errors import InvalidArgumentError
from poseaug_service.stream_tracks import StreamTracks
from poseaug_service.track_windows import request_windows


def frames(values: list[float]) -> np.ndarray:
    """[N, 17, 3] frames whose every entry is the given value (easy to read back)."""
    return np.repeat(np.asarray(values, np.float32)[:, None, None], 17, 1).repeat(3, 2)


def labels(windows) -> list[list[float]]:
    return np.asarray(windows)[:, :, 0, 0].tolist()


def test_a_request_s_tracks_get_centred_windows_with_edge_padding() -> None:
    # Two interleaved tracks: 7 -> frames 0, 1, 2 and 3 -> frames 10, 11.
    x = frames([0, 10, 1, 11, 2])
    w = request_windows(x, np.array([7, 3, 7, 3, 7]), frames=3, anchor=1)
    assert w.shape == (5, 3, 17, 3)
    assert labels(w) == [[0, 0, 1], [10, 10, 11], [0, 1, 2], [10, 11, 11], [1, 2, 2]]
    # Sliced like an array, as the batcher does.
    assert labels(w[1:3]) == [[10, 10, 11], [0, 1, 2]]
    # Causal windows (the answered frame last) look back only.
    assert labels(request_windows(x, np.array([7, 3, 7, 3, 7]), 3, 2))[4] == [0, 1, 2]
    # Without track ids each pose stands alone.
    assert labels(request_windows(x, None, 3, 1))[1] == [10, 10, 10]
    # The index is what a request holds, not N x frames inputs.
    assert w.nbytes < x.nbytes * 2


def model(frames_: int = 5, anchor: int = 2, name: str = "t") -> SimpleNamespace:
    """A model without the step form: every answer comes from windows."""
    return SimpleNamespace(
        name=name,
        temporal_frames=frames_,
        temporal_anchor=anchor,
        temporal_lookahead=frames_ - 1 - anchor,
        step_layout=None,
    )


def message(values: list[float], tracks: list[int] | None, m=None) -> SimpleNamespace:
    return SimpleNamespace(
        model=m or model(),
        keypoints=frames(values),
        track_ids=None if tracks is None else np.array(tracks),
    )


def add(s: StreamTracks, msg: SimpleNamespace, prefix: str = "") -> list:
    """Record a message (no step runs without the step form); the messages now answerable."""
    assert s.add(msg, prefix) == []
    return s.ready()


def test_a_causal_stream_answers_each_message_from_past_frames() -> None:
    s = StreamTracks(lookahead=0, max_tracks=8, idle_s=60)
    answers = []
    for t in range(4):
        (owed,) = add(s, message([t, 100 + t], [1, 2]))
        answers.append(labels(s.windows(owed)))
    # Window of 5 with the answered frame at 2: future frames repeat the newest.
    assert answers[0] == [[0, 0, 0, 0, 0], [100, 100, 100, 100, 100]]
    assert answers[3][0] == [1, 2, 3, 3, 3]
    assert s.live_tracks == 2


def test_lookahead_delays_answers_and_closing_flushes_them() -> None:
    s = StreamTracks(lookahead=2, max_tracks=8, idle_s=60)
    assert add(s, message([0], [5])) == [] and add(s, message([1], [5])) == []
    (first,) = add(s, message([2], [5]))
    assert first.index == 0 and labels(s.windows(first)) == [[0, 0, 0, 1, 2]]
    (second,) = add(s, message([3], [5]))
    assert second.index == 1 and labels(s.windows(second)) == [[0, 0, 1, 2, 3]]
    rest = s.flush()
    assert [o.index for o in rest] == [2, 3]
    assert labels(s.windows(rest[0])) == [[0, 1, 2, 3, 3]]
    assert labels(s.windows(rest[1])) == [[1, 2, 3, 3, 3]]


def test_a_stream_keeps_only_the_frames_its_windows_need() -> None:
    s = StreamTracks(lookahead=0, max_tracks=8, idle_s=60)
    for t in range(100):
        (owed,) = add(s, message([t], [1]))
    assert labels(s.windows(owed)) == [[97, 98, 99, 99, 99]]
    track = next(iter(s._live.values()))
    assert len(track.frames) <= 5


def test_too_many_tracks_are_refused_and_idle_tracks_are_forgotten() -> None:
    now = [0.0]
    s = StreamTracks(lookahead=0, max_tracks=3, idle_s=10, clock=lambda: now[0])
    add(s, message([0, 0, 0], [1, 2, 3]))
    with pytest.raises(InvalidArgumentError) as err:
        s.add(message([0], [4]), prefix="request[1].")
    assert err.value.field == "request[1].track_ids"
    now[0] = 11.0  # tracks 1-3 idle for longer than 10 s
    (owed,) = add(s, message([9], [4]))
    assert s.live_tracks == 1 and labels(s.windows(owed)) == [[9, 9, 9, 9, 9]]


def test_single_frame_models_need_no_windows() -> None:
    s = StreamTracks(lookahead=0, max_tracks=8, idle_s=60)
    msg = message([4, 5], [1, 2], m=model(frames_=1, anchor=0))
    (owed,) = add(s, msg)
    assert s.windows(owed) is msg.keypoints and s.live_tracks == 0


def test_a_lookahead_stream_holds_small_messages_only() -> None:
    s = StreamTracks(lookahead=2, max_tracks=3, idle_s=60)
    with pytest.raises(InvalidArgumentError) as err:
        s.add(message([1, 2, 3, 4], [1, 1, 1, 1]), prefix="request[0].")
    assert err.value.field == "request[0].keypoints"
    assert add(s, message([1, 2, 3], [1, 1, 1])) == []
    # Frames are copies: a held frame does not keep its message's array alive.
    track = next(iter(s._live.values()))
    assert all(f.base is None for f in track.frames)
