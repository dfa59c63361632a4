"""Windows of tracked frames for temporal bundles, gathered lazily so a request costs R times
less memory than its windows would.

A temporal lifter answers one frame from a window of `frames` consecutive frames of one track
(the answered frame at `anchor`). `Windows` holds the prepared per-frame inputs once plus an
int32 index [N, frames] into them; the batcher slices it like an array ([a:b] gathers just
that batch's windows), so a request of N poses never holds N x frames inputs at once.

A unary request whose tracks are long enough goes to the bundle's whole-track form instead
(`lifter.whole_track`), which computes each layer's position once per frame rather than once
per window: `TrackChunks` cuts each track into stretches of K answered frames plus the
`frames - 1` around them, one row each (K chosen per request to waste the fewest frames), and
`poses` puts the answers back in request order.

Frames outside a track repeat its first or newest frame (edge padding, as in training).
"""

from __future__ import annotations

import numpy as np

__all__ = ["TrackChunks", "Windows", "lifter_inputs", "request_windows", "window_offsets"]

# Answered frames per whole-track row: the power of two in this range that wastes the fewest
# frames on the request's tracks (each row also holds `frames - 1` frames of context).
CHUNK_OUTPUTS = tuple(2**k for k in range(3, 11))
# Tracks shorter than this share of the window, on average, go to the window model: for them a
# whole-track row would be mostly context (for the shipped lifters the window model is then at
# most about as costly).
WHOLE_TRACK_MIN_SHARE = 0.25


class Windows:
    """Lazy [N, frames, 17, C] windows: `frames_in[index]`, gathered per slice."""

    def __init__(self, frames_in: np.ndarray, index: np.ndarray) -> None:
        self.frames_in = frames_in
        self.index = index
        self.shape = (index.shape[0], index.shape[1], *frames_in.shape[1:])
        self.dtype = frames_in.dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return self.frames_in.nbytes + self.index.nbytes

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.frames_in[self.index[rows]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.frames_in[self.index]
        return out if dtype is None else out.astype(dtype)


def window_offsets(frames: int, anchor: int) -> np.ndarray:
    """[frames] positions of a window's frames relative to the answered one."""
    return np.arange(frames, dtype=np.int64) - anchor


def _tracks(track_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(order, starts, lengths, position): the request's rows in track order (each track's rows
    together, in request order), where each track starts in that order and how long it is,
    and each sorted row's position within its track."""
    order = np.argsort(track_ids, kind="stable")
    sorted_ids = track_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    lengths = np.diff(np.r_[starts, len(track_ids)])
    position = np.arange(len(track_ids)) - np.repeat(starts, lengths)
    return order, starts, lengths, position


def request_windows(
    frames_in: np.ndarray, track_ids: np.ndarray | None, frames: int, anchor: int
) -> Windows:
    """Windows for the poses of one request: poses sharing a track id are that track's frames
    in request order; without track ids every pose is its own track (its window repeats it)."""
    n = len(frames_in)
    offsets = window_offsets(frames, anchor)
    if track_ids is None:
        return Windows(frames_in, np.repeat(np.arange(n, dtype=np.int32)[:, None], frames, 1))
    order, starts, lengths, position = _tracks(track_ids)
    which = np.repeat(np.arange(len(starts)), lengths)
    pos = np.clip(position[:, None] + offsets, 0, (lengths[which] - 1)[:, None])
    index_sorted = order[starts[which][:, None] + pos]  # row of each window frame
    index = np.empty_like(index_sorted)
    index[order] = index_sorted
    return Windows(frames_in, index.astype(np.int32))


class TrackChunks(Windows):
    """Lazy rows [n, K + frames - 1, 17, C] of a request's tracks for the whole-track form,
    and where each pose's answer lands among the rows' K answers each."""

    def __init__(self, frames_in: np.ndarray, index: np.ndarray, picks: np.ndarray) -> None:
        super().__init__(frames_in, index)
        self.picks = picks  # [N] each pose's answer in the rows' answers, flattened

    @property
    def row_frames(self) -> int:
        return self.index.shape[1]

    def poses(self, answers: np.ndarray) -> np.ndarray:
        """The whole-track form's answers [n, K, 17, 3] -> the request's poses [N, 17, 3]."""
        return answers.reshape(-1, *answers.shape[2:])[self.picks]


def chunk_outputs(lengths: np.ndarray, frames: int) -> int:
    """Answered frames per whole-track row for tracks of `lengths`: the CHUNK_OUTPUTS size that
    makes the fewest frames in all."""
    cost = [int((-(-lengths // k) * (k + frames - 1)).sum()) for k in CHUNK_OUTPUTS]
    return CHUNK_OUTPUTS[int(np.argmin(cost))]


def track_chunks(
    frames_in: np.ndarray, track_ids: np.ndarray, frames: int, anchor: int
) -> TrackChunks:
    """The whole-track rows of one request (see TrackChunks); poses sharing a track id are
    that track's frames in request order."""
    order, starts, lengths, position = _tracks(track_ids)
    k = chunk_outputs(lengths, frames)
    rows_per_track = -(-lengths // k)
    first_row = np.cumsum(rows_per_track) - rows_per_track  # each track's first row
    track = np.repeat(np.arange(len(starts)), rows_per_track)  # each row's track
    row_start = k * (np.arange(len(track)) - first_row[track])  # its first answered position
    # A row holds the frames from `anchor` before its first answered position to
    # `frames - 1 - anchor` after its last, clamped to the track.
    pos = row_start[:, None] + np.arange(k + frames - 1) - anchor
    pos = np.clip(pos, 0, (lengths[track] - 1)[:, None])
    index = order[starts[track][:, None] + pos].astype(np.int32)
    # Position p of a track is answer p % K of its row p // K: its rows' answers run on.
    picks = np.empty(len(track_ids), np.int64)
    picks[order] = first_row[np.repeat(np.arange(len(starts)), lengths)] * k + position
    return TrackChunks(frames_in, index, picks)


def lifter_inputs(parsed) -> np.ndarray | Windows:
    """What a parsed unary request (lifting.LiftInput) feeds its model: its keypoints for a
    single-frame lifter, its tracks' rows for the whole-track form where the model has one and
    the tracks are long enough (WHOLE_TRACK_MIN_SHARE), else the windows of its tracks."""
    model = parsed.model
    frames, anchor = model.temporal_frames, model.temporal_anchor
    if frames <= 1:
        return parsed.keypoints
    ids = parsed.track_ids
    if (
        ids is not None
        and model.whole_track is not None
        and len(ids) >= WHOLE_TRACK_MIN_SHARE * frames * len(np.unique(ids))
    ):
        return track_chunks(parsed.keypoints, ids, frames, anchor)
    return request_windows(parsed.keypoints, ids, frames, anchor)
