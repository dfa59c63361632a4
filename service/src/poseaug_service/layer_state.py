"""A temporal lifter's step form (models/README.md, `lifter.step`): one new frame per track in,
and for each layer that looks back, the inputs it read at its taps; out, the pose of the frame
the model's full lookahead back and each such layer's input at the new frame.

`LayerState` keeps those inputs for one track: per kept input a ring of its last `max(taps)`
values, about 80,000 float32 (320 KB) for the shipped 81-frame lifter, 25,000 (100 KB) for
the 27-frame one (`nbytes`). A tap before the track's first frame reads that frame's value
(edge padding); on the first frame itself the step form does that (`fresh`).

`StepLayout` packs a step's inputs, and its outputs, into one float32 row per pose: the
batcher merges and splits rows, so steps of many tracks and streams share one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

__all__ = ["KeptInput", "LayerState", "StepLayout"]

JOINTS = 17
POSE_VALUES = JOINTS * 3


@dataclass(frozen=True)
class KeptInput:
    """One entry of lifter.step.state: graph input (the taps) and output (the new value)."""

    input: str
    output: str
    channels: int
    taps: tuple[int, ...]  # frames back, in the order of the input's axis 1

    @property
    def history(self) -> int:
        """Values a track keeps: the farthest tap."""
        return max(self.taps)


@dataclass(frozen=True)
class StepLayout:
    """Where each step input and output sits in a packed row (see module docstring):
    inputs [keypoints (17 x C) | fresh | taps of each kept input]; outputs [pose3d (17 x 3) |
    the new value of each kept input]."""

    keypoints: str
    fresh: str
    pose3d: str
    channels: int  # values per joint of the frame (the lifter's input channels)
    kept: tuple[KeptInput, ...]
    in_width: int = field(init=False)
    out_width: int = field(init=False)
    # Per kept input: (history, [(frames back, first column, end column) of each tap]) in the
    # input row, and (first column, end column) of its new value in the output row.
    taps_at: tuple = field(init=False, repr=False)
    next_at: tuple = field(init=False, repr=False)

    def __post_init__(self) -> None:
        at = JOINTS * self.channels + 1
        taps_at = []
        for k in self.kept:
            spans = [
                (d, at + i * k.channels, at + (i + 1) * k.channels) for i, d in enumerate(k.taps)
            ]
            taps_at.append((k.history, spans))
            at += len(k.taps) * k.channels
        out = POSE_VALUES + np.cumsum([0, *(k.channels for k in self.kept)])
        object.__setattr__(self, "in_width", at)
        object.__setattr__(self, "out_width", int(out[-1]))
        object.__setattr__(self, "taps_at", tuple(taps_at))
        object.__setattr__(self, "next_at", tuple(pairwise(out.tolist())))

    @classmethod
    def from_manifest(cls, step: dict[str, Any], channels: int) -> StepLayout:
        kept = tuple(
            KeptInput(s["input"], s["output"], int(s["channels"]), tuple(int(t) for t in s["taps"]))
            for s in step["state"]
        )
        return cls(step["input"], step["fresh"], step["output"], channels, kept)

    @property
    def state_values(self) -> int:
        """float32 values one track keeps."""
        return sum(k.history * k.channels for k in self.kept)

    @property
    def outputs(self) -> list[str]:
        return [self.pose3d, *(k.output for k in self.kept)]

    def rows(self, frames: np.ndarray) -> np.ndarray:
        """Packed input rows [n, in_width] holding `frames` [n, 17, C]; the rest is for
        `LayerState.fill` to write."""
        rows = np.empty((len(frames), self.in_width), np.float32)
        rows[:, : JOINTS * self.channels] = frames.reshape(len(frames), -1)
        return rows

    def feeds(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The graph inputs of packed rows."""
        n, frame = len(rows), JOINTS * self.channels
        feeds = {
            self.keypoints: rows[:, :frame].reshape(n, JOINTS, self.channels),
            self.fresh: rows[:, frame : frame + 1],
        }
        for k, (_, spans) in zip(self.kept, self.taps_at, strict=True):
            taps = rows[:, spans[0][1] : spans[-1][2]]
            feeds[k.input] = taps.reshape(n, len(k.taps), k.channels)
        return {name: np.ascontiguousarray(a) for name, a in feeds.items()}

    def poses(self, packed: np.ndarray) -> np.ndarray:
        """The answered poses [n, 17, 3] of packed output rows."""
        return packed[:, :POSE_VALUES].reshape(-1, JOINTS, 3)

    def pack(self, outputs: list[np.ndarray]) -> np.ndarray:
        """Graph outputs (in `outputs` order) -> packed rows [n, out_width]."""
        n = len(outputs[0])
        return np.concatenate([o.reshape(n, -1) for o in outputs], axis=1)


class LayerState:
    """The kept inputs of one track's step form (see module docstring). `start` is the track
    position of its first step."""

    __slots__ = ("layout", "model", "rings", "start", "steps")

    def __init__(self, layout: StepLayout, model: object, start: int) -> None:
        self.layout = layout
        self.model = model  # the model version whose layers these values came from
        self.rings = [np.zeros((k.history, k.channels), np.float32) for k in layout.kept]
        self.start = start
        self.steps = 0

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for r in self.rings)

    def fill(self, row: np.ndarray) -> None:
        """Write the next step's `fresh` flag and taps into its packed input row."""
        t = self.steps
        fresh = JOINTS * self.layout.channels
        if not t:  # the first frame: every tap reads it, which the step form does itself
            row[fresh] = 1.0
            row[fresh + 1 :] = 0.0
            return
        row[fresh] = 0.0
        for ring, (history, spans) in zip(self.rings, self.layout.taps_at, strict=True):
            for back, a, b in spans:
                # A tap before the track's first frame reads that frame (slot 0).
                row[a:b] = ring[(t - back) % history if t > back else 0]

    def push(self, out: np.ndarray) -> None:
        """Keep the new values of a step's packed output row."""
        t = self.steps
        for ring, (a, b) in zip(self.rings, self.layout.next_at, strict=True):
            ring[t % len(ring)] = out[a:b]
        self.steps += 1
