"""The track state of one StreamLift2Dto3D stream: each track's recent frames (and, where the
model's step form serves the stream, its layers' kept inputs), and the messages whose answers
are still owed.

With lookahead L, the answer to message m is owed until message m + L has arrived (or the
stream closes). With L = 0 every message is answered at once from its tracks' current and past
frames (causal). Each message goes through:
1. `add`: its frames join their tracks; it returns the step runs the message needs;
2. `stepped`, for each step run's outputs: where the stream's lookahead is its model's full
   lookahead (a causal model at 0, a centred one at `frames - 1 - anchor`) and the bundle ships
   the step form (`lifter.step`), each new frame is one step of its track's state (layer
   state: layer_state.py), whose answer is the pose of the frame L back in that track;
3. `ready`: the messages now answerable, in order. A pose whose answer no step gave (another
   lookahead, a bundle without the step form, a pose without a track id, a track that skipped
   messages so that its frame L later had not come, the stream's end, a model reload) is
   answered from `windows`: its window of the track's frames as they are then, the frames
   not yet seen repeating the newest (edge padding), by the window model. Both give the
   window model's answer.

Bounds: at most `max_tracks` live tracks (per model; a message that would pass it is refused,
naming its track_ids), each keeping copies of only the frames a window or an owed answer still
needs and, in step mode, its layer state (`LayerState.nbytes`: about 320 KB for the 81-frame
shipped lifter, 100 KB for the 27-frame one); so a stream holds at most `max_tracks` times
that (`nbytes` tells what it holds now). With lookahead, at most `max_tracks` poses per message
(owed messages are held until answered); a track without a frame for `idle_s` seconds is
forgotten with its state (a track id seen again later starts afresh).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from poseaug_service.errors import InvalidArgumentError
from poseaug_service.layer_state import LayerState
from poseaug_service.lifting import LiftInput
from poseaug_service.track_windows import Windows, window_offsets

__all__ = ["Owed", "StepRun", "StreamTracks"]


@dataclass(eq=False)
class Owed:
    """A message whose answer is owed: its parsed request, the track and position of each pose
    (None for single-frame models, which need no windows), and the poses the steps have
    answered so far (None: no step serves it)."""

    index: int
    parsed: LiftInput
    tracks: list[Track] | None
    positions: list[int] | None
    pose3d: np.ndarray | None = None  # [n, 17, 3]
    done: np.ndarray | None = None  # [n] bool: rows of pose3d that hold an answer
    closed: bool = False  # handed out by `ready` or `flush`: later steps no longer answer it

    @property
    def nbytes(self) -> int:
        """Bytes it keeps until answered: its parsed request and the steps' answers."""
        answers = 0 if self.pose3d is None else self.pose3d.nbytes + self.done.nbytes
        return self.parsed.nbytes + answers

    def missing(self) -> np.ndarray:
        """Rows no step has answered (every row without steps)."""
        n = len(self.parsed.keypoints)
        return np.arange(n) if self.done is None else np.flatnonzero(~self.done)


@dataclass(eq=False)
class Track:
    """The newest frames of one track; `first` is the position of frames[0] in the track."""

    anchor: int  # frames before the answered one in its model's window
    frames: list[np.ndarray] = field(default_factory=list)
    first: int = 0
    last_seen: float = 0.0
    state: LayerState | None = None  # step mode: its layers' kept inputs
    # Positions of its poses in messages owed, or handed out by the latest `ready` (their
    # windows may still be built): the frames from the oldest one's window on are kept.
    owed: deque[int] = field(default_factory=deque)
    # Step mode: (position, owed message, row) of poses whose answer a later step gives.
    waiting: deque[tuple[int, Owed, int]] = field(default_factory=deque)

    @property
    def newest(self) -> int:
        return self.first + len(self.frames) - 1

    @property
    def nbytes(self) -> int:
        """Bytes of frames and layer state this track holds."""
        frames = len(self.frames) * self.frames[0].nbytes if self.frames else 0  # one shape
        return frames + (0 if self.state is None else self.state.nbytes)

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
class StepRun:
    """One step per track for poses of a message (a track sent twice in one message takes a
    second run): `inputs` packs them as the step form takes them, from the states as they are
    when it is called."""

    tracks: list[Track]
    positions: list[int]
    rows: list[int]  # the poses' rows in their message
    frames: np.ndarray  # [n, 17, C]

    def inputs(self) -> np.ndarray:
        layout = self.tracks[0].state.layout
        rows = layout.rows(self.frames)
        for row, track in zip(rows, self.tracks, strict=True):
            track.state.fill(row)
        return rows


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
        self._handed: list[Owed] = []  # handed out by the latest `ready`
        self._count = 0

    @property
    def live_tracks(self) -> int:
        return len(self._live)

    @property
    def nbytes(self) -> int:
        """Bytes of frames and layer state the stream's live tracks hold."""
        return sum(t.nbytes for t in self._live.values())

    def growth_bound(self, parsed: LiftInput) -> tuple[int, int]:
        """(track bytes, owed bytes): the most `add(parsed)` can add to `nbytes` (a copy of
        each frame, a layer state per new track in step mode), and what its owed answer keeps
        (Owed.nbytes). The memory budget reserves both before the message is recorded."""
        n, model, ids = len(parsed.keypoints), parsed.model, parsed.track_ids
        steps = self.steps(model) and ids is not None
        owed = parsed.nbytes + (n * (17 * 3 * 4 + 1) if steps else 0)
        if model.temporal_frames <= 1:
            return 0, owed
        frames = parsed.keypoints[:1].nbytes * n
        if ids is None:  # each pose its own one-frame track, kept by its owed message
            return 0, owed + frames
        if not steps:
            return frames, owed
        new = len({(model.name, t) for t in ids.tolist()} - self._live.keys())
        return frames + new * model.step_layout.state_values * 4, owed

    def steps(self, model) -> bool:
        """Whether `model`'s step form answers this stream: it has one, and the stream's
        lookahead is the model's full one."""
        return model.step_layout is not None and self.lookahead == model.temporal_lookahead

    def add(self, parsed: LiftInput, prefix: str = "") -> list[StepRun]:
        """Record a parsed message; returns the step runs it needs, in order (see `stepped`)."""
        index, self._count = self._count, self._count + 1
        if parsed.model.temporal_frames <= 1:
            self._owed.append(Owed(index, parsed, None, None))
            return []
        owed = self._record(index, parsed, prefix)
        self._owed.append(owed)
        return self._step_runs(owed) if owed.done is not None else []

    def stepped(self, run: StepRun, outputs: np.ndarray) -> None:
        """Keep a step run's new layer values and hand its poses to the messages they answer.
        The step of track position q answers position q - L where that is exact: from the
        track's start, or once the state has seen a whole window (a state started later)."""
        state = run.tracks[0].state
        poses = state.layout.poses(outputs)
        frames = state.model.temporal_frames
        for track, q, out, pose in zip(run.tracks, run.positions, outputs, poses, strict=True):
            state = track.state
            state.push(out)
            answered = q - self.lookahead
            if state.start and q - state.start < frames - 1:
                continue  # the state's window still reaches back before its start
            waiting = track.waiting
            while waiting and (waiting[0][0] < answered or waiting[0][1].closed):
                waiting.popleft()  # answered from windows already
            if waiting and waiting[0][0] == answered:
                _, owed, row = waiting.popleft()
                owed.pose3d[row] = pose
                owed.done[row] = True

    def ready(self) -> list[Owed]:
        """The messages now answerable, in order (their unanswered poses: `windows`, to be
        called before the next `ready`)."""
        changed: dict[int, Track] = {}  # tracks whose oldest owed position may have moved
        for owed in self._handed:  # answered by now: their frames are no longer needed
            for track in owed.tracks or ():
                track.owed.popleft()
                changed[id(track)] = track
        ready = []
        while len(self._owed) > self.lookahead:
            owed = self._close(self._owed.popleft())
            changed.update((id(t), t) for t in owed.tracks or ())
            ready.append(owed)
        self._handed = ready
        for track in changed.values():  # drop frames no window can use any more
            oldest = track.owed[0] if track.owed else track.newest + 1
            track.keep_from(oldest - track.anchor)
        return ready

    def close(self) -> None:
        """Let go of every track and owed message now (the stream has ended). Tracks and the
        messages whose answers they wait for refer to each other (`Track.waiting`,
        `Owed.tracks`): left to the garbage collector, such cycles kept whole streams' frames,
        layer state and requests alive long after the stream, often until the next burst."""
        for track in self._live.values():
            track.frames.clear()
            track.waiting.clear()
            track.owed.clear()
            track.state = None
        for owed in (*self._owed, *self._handed):
            owed.tracks = None
        self._live.clear()
        self._owed.clear()
        self._handed = []

    def flush(self) -> list[Owed]:
        """Every answer still owed (the client closed its side)."""
        ready = [self._close(o) for o in self._owed]
        self._owed.clear()
        return ready

    @staticmethod
    def _close(owed: Owed) -> Owed:
        owed.closed = True
        return owed

    def _record(self, index: int, parsed: LiftInput, prefix: str) -> Owed:
        now = self._clock()
        for key in [k for k, t in self._live.items() if now - t.last_seen > self.idle_s]:
            del self._live[key]
        model = parsed.model
        name, n = model.name, len(parsed.keypoints)
        anchor = model.temporal_anchor
        if self.lookahead and n > self.max_tracks:
            raise InvalidArgumentError(
                f"{prefix}keypoints",
                f"{n} poses: a stream with lookahead keeps its messages until they are "
                f"answered, so each holds at most {self.max_tracks} poses (the live-track bound)",
            )
        ids = parsed.track_ids
        if ids is not None:
            keys = [(name, t) for t in ids.tolist()]
            new = len({k for k in keys if k not in self._live})
            if new and len(self._live) + new > self.max_tracks:
                raise InvalidArgumentError(
                    f"{prefix}track_ids",
                    f"{new} new tracks would pass this stream's {self.max_tracks} live tracks "
                    f"({len(self._live)} live; idle ones are dropped after {self.idle_s:g} s)",
                )
        tracks, positions = [], []
        for i, frame in enumerate(parsed.keypoints):
            if ids is None:
                track = Track(anchor)  # a pose without a track stands alone
            else:
                track = self._live.get(keys[i])
                if track is None:
                    track = self._live[keys[i]] = Track(anchor)
            position = track.append(frame, now)
            track.owed.append(position)
            positions.append(position)
            tracks.append(track)
        owed = Owed(index, parsed, tracks, positions)
        if self.steps(model) and ids is not None:
            owed.pose3d = np.empty((n, 17, 3), np.float32)
            owed.done = np.zeros(n, bool)
        else:  # another lookahead, a version without the step form, or poses without track
            # ids (one frame each: no step could answer them): no state to keep
            for track in tracks:
                track.state = None
                track.waiting.clear()
        return owed

    def _step_runs(self, owed: Owed) -> list[StepRun]:
        """Each pose's step, in runs holding each track once; a track's state starts (afresh
        after a reload of its model) at the pose that finds it missing or another version's."""
        model = owed.parsed.model
        positions = owed.positions
        runs: list[list[int]] = []  # the rows of each run
        seen: dict[int, int] = {}  # track -> runs it is in so far
        for row, (track, position) in enumerate(zip(owed.tracks, positions, strict=True)):
            if track.state is None or track.state.model is not model:
                track.state = LayerState(model.step_layout, model, start=position)
            track.waiting.append((position, owed, row))
            k = seen.get(id(track), 0)
            seen[id(track)] = k + 1
            if k == len(runs):
                runs.append([])
            runs[k].append(row)
        if len(runs) == 1:  # each track once, as a tracker sends them
            return [StepRun(owed.tracks, positions, runs[0], owed.parsed.keypoints)]
        return [
            StepRun(
                [owed.tracks[r] for r in rows],
                [positions[r] for r in rows],
                rows,
                owed.parsed.keypoints[rows],
            )
            for rows in runs
        ]

    def windows(self, owed: Owed) -> Windows | np.ndarray:
        """The window-model input of an answerable message's poses no step answered
        (`owed.missing()`, in that order): its keypoints for a single-frame model, their
        windows for a temporal one."""
        if owed.tracks is None:
            return owed.parsed.keypoints
        model = owed.parsed.model
        offsets = window_offsets(model.temporal_frames, model.temporal_anchor)
        rows = owed.missing()
        pools: dict[int, tuple[int, Track]] = {}
        parts, size = [], 0
        for i in rows:
            track = owed.tracks[i]
            if id(track) not in pools:
                pools[id(track)] = (size, track)
                parts.append(np.stack(track.frames))
                size += len(track.frames)
        index = np.empty((len(rows), len(offsets)), np.int32)
        for j, i in enumerate(rows):
            track, p = owed.tracks[i], owed.positions[i]
            start = pools[id(track)][0]
            pos = np.clip(p + offsets, track.first, track.newest)
            index[j] = start + pos - track.first
        return Windows(np.concatenate(parts), index)
