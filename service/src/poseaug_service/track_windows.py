"""Windows of tracked frames for temporal bundles, gathered lazily so a request costs R times
less memory than its windows would.

A temporal lifter answers one frame from a window of `frames` consecutive frames of one track
(the answered frame at `anchor`). `Windows` holds the prepared per-frame inputs once plus an
int32 index [N, frames] into them; the batcher slices it like an array ([a:b] gathers just
that batch's windows), so a request of N poses never holds N x frames inputs at once.

Window rows outside a track repeat its first or newest frame (edge padding, as in training).
"""

from __future__ import annotations

import numpy as np

__all__ = ["Windows", "lifter_inputs", "request_windows", "window_offsets"]


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


def request_windows(
    frames_in: np.ndarray, track_ids: np.ndarray | None, frames: int, anchor: int
) -> Windows:
    """Windows for the poses of one request: poses sharing a track id are that track's frames
    in request order; without track ids every pose is its own track (its window repeats it)."""
    n = len(frames_in)
    offsets = window_offsets(frames, anchor)
    if track_ids is None:
        return Windows(frames_in, np.repeat(np.arange(n, dtype=np.int32)[:, None], frames, 1))
    order = np.argsort(track_ids, kind="stable")  # each track's rows together, in order
    sorted_ids = track_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    lengths = np.diff(np.r_[starts, n])
    which = np.repeat(np.arange(len(starts)), lengths)
    position = np.arange(n) - starts[which]
    pos = np.clip(position[:, None] + offsets, 0, (lengths[which] - 1)[:, None])
    index_sorted = order[starts[which][:, None] + pos]  # row of each window frame
    index = np.empty_like(index_sorted)
    index[order] = index_sorted
    return Windows(frames_in, index.astype(np.int32))


def lifter_inputs(parsed) -> np.ndarray | Windows:
    """What a parsed unary request (lifting.LiftInput) feeds its model: its keypoints for a
    single-frame lifter, the windows of its tracks for a temporal one."""
    model = parsed.model
    if model.temporal_frames <= 1:
        return parsed.keypoints
    return request_windows(
        parsed.keypoints, parsed.track_ids, model.temporal_frames, model.temporal_anchor
    )
