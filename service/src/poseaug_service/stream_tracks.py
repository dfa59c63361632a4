"""The track state of one StreamLift2Dto3D stream: each track's recent frames, and the messages
whose answers are still owed.

With lookahead L, the answer to message m is owed until message m + L has arrived (or the
stream closes): `add` returns the messages that became answerable, in order, and `windows`
gathers each of their poses' windows from the tracks' frames as they are then, the frames not
yet seen repeating the newest (edge padding). With L = 0 every message is answered at once
from its tracks' current and past frames (causal).

Bounds: at most `max_tracks` live tracks (per model; a message that would pass it is refused,
naming its track_ids), each keeping copies of only the frames a window or an owed answer still
needs; with lookahead, at most `max_tracks` poses per message (owed messages are held until
answered); a track without a frame for `idle_s` seconds is forgotten (a track id seen again
later starts afresh).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from poseaug_service.errors import InvalidArgumentError
from poseaug_service.lifting import LiftInput
from poseaug_service.track_windows import Windows, window_offsets

__all__ = ["Owed", "StreamTracks"]


@dataclass(eq=False)
class Track:
    """The newest frames of one track; `first` is the position of frames[0] in the track."""

    anchor: int  # frames before the answered one in its model's window
    frames: list[np.ndarray] = field(default_factory=list)
    first: int = 0
    last_seen: float = 0.0

    @property
    def newest(self) -> int:
        return self.first + len(self.frames) - 1

    def append(self, frame: np.ndarray, now: float) -> int:
        self.frames.append(frame.copy())  # a view would keep its whole message alive
        self.last_seen = now
        return self.newest

    def keep_from(self, position: int) -> None:
        drop = min(max(0, position - self.first), len(self.frames) - 1)
        if drop > 0:
            del self.frames[:drop]
            self.first += drop


@dataclass(eq=False)
class Owed:
    """A message whose answer is owed: its parsed request, and the track and position of each
    pose (None for single-frame models, which need no windows)."""

    index: int
    parsed: LiftInput
    tracks: list[Track] | None
    positions: np.ndarray | None


class StreamTracks:
    """See the module docstring. Used from one stream's reader task only."""

    def __init__(
        self,
        lookahead: int,
        max_tracks: int,
        idle_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookahead = lookahead
        self.max_tracks = max_tracks
        self.idle_s = idle_s
        self._clock = clock
        self._live: dict[tuple[str, int], Track] = {}
        self._owed: deque[Owed] = deque()
        self._count = 0

    @property
    def live_tracks(self) -> int:
        return len(self._live)

    def add(self, parsed: LiftInput, prefix: str = "") -> list[Owed]:
        """Record a parsed message; returns the messages now answerable, in order."""
        index, self._count = self._count, self._count + 1
        model = parsed.model
        if model.temporal_frames <= 1:
            self._owed.append(Owed(index, parsed, None, None))
        else:
            self._owed.append(self._record(index, parsed, prefix))
        ready = []
        while len(self._owed) > self.lookahead:
            ready.append(self._owed.popleft())
        self._trim(ready)
        return ready

    def flush(self) -> list[Owed]:
        """Every answer still owed (the client closed its side)."""
        ready = list(self._owed)
        self._owed.clear()
        return ready

    def _record(self, index: int, parsed: LiftInput, prefix: str) -> Owed:
        now = self._clock()
        for key in [k for k, t in self._live.items() if now - t.last_seen > self.idle_s]:
            del self._live[key]
        name, n = parsed.model.name, len(parsed.keypoints)
        anchor = parsed.model.temporal_anchor
        if self.lookahead and n > self.max_tracks:
            raise InvalidArgumentError(
                f"{prefix}keypoints",
                f"{n} poses: a stream with lookahead keeps its messages until they are "
                f"answered, so each holds at most {self.max_tracks} poses (the live-track bound)",
            )
        ids = parsed.track_ids
        if ids is not None:
            keys = [(name, int(t)) for t in ids]
            new = len({k for k in keys if k not in self._live})
            if new and len(self._live) + new > self.max_tracks:
                raise InvalidArgumentError(
                    f"{prefix}track_ids",
                    f"{new} new tracks would pass this stream's {self.max_tracks} live tracks "
                    f"({len(self._live)} live; idle ones are dropped after {self.idle_s:g} s)",
                )
        tracks, positions = [], np.empty(n, np.int64)
        for i in range(n):
            if ids is None:
                track = Track(anchor)  # a pose without a track stands alone
            else:
                track = self._live.get(keys[i])
                if track is None:
                    track = self._live[keys[i]] = Track(anchor)
            positions[i] = track.append(parsed.keypoints[i], now)
            tracks.append(track)
        return Owed(index, parsed, tracks, positions)

    def _trim(self, ready: list[Owed]) -> None:
        """Drop frames no future window, owed answer or answer about to be built can use."""
        oldest: dict[int, int] = {}  # per track, the oldest position an owed answer has
        for owed in [*ready, *self._owed]:
            if owed.tracks is None:
                continue
            for track, p in zip(owed.tracks, owed.positions, strict=True):
                oldest[id(track)] = min(oldest.get(id(track), int(p)), int(p))
        for track in self._live.values():
            newest_next = track.newest + 1
            track.keep_from(min(newest_next, oldest.get(id(track), newest_next)) - track.anchor)

    def windows(self, owed: Owed) -> Windows | np.ndarray:
        """The lifter input of an answerable message: its keypoints for a single-frame model,
        its poses' windows for a temporal one."""
        if owed.tracks is None:
            return owed.parsed.keypoints
        model = owed.parsed.model
        offsets = window_offsets(model.temporal_frames, model.temporal_anchor)
        pools: dict[int, tuple[int, Track]] = {}
        parts, size = [], 0
        for track in owed.tracks:
            if id(track) not in pools:
                pools[id(track)] = (size, track)
                parts.append(np.stack(track.frames))
                size += len(track.frames)
        index = np.empty((len(owed.tracks), len(offsets)), np.int32)
        for i, (track, p) in enumerate(zip(owed.tracks, owed.positions, strict=True)):
            start = pools[id(track)][0]
            pos = np.clip(p + offsets, track.first, track.newest)
            index[i] = start + pos - track.first
        return Windows(np.concatenate(parts), index)
