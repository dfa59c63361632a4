"""A small temporal lifter in its three forms (window, step, whole track), built with onnx.helper
from one set of random weights, for the service tests: they must give the same poses.

The network has VideoPose3D's shape at toy size: a width-3 convolution over 51 inputs per frame
into CHANNELS, one block (a width-3 convolution three frames apart, a 1x1 layer, the skip from
the anchor's tap), a head to 16 joints, the root at 0; it adds half the answered frame's input
to each joint, so a kept input of the answered frame is exercised as the real lifter's rotation
is. 9 frames, centred (anchor 4, lookahead 4) or causal (anchor 8). The step form keeps
`past_input` (taps 2, 1), `past_block0` (taps 6, 3) and, centred, `past_anchor` (tap 4).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CHANNELS = 8
FRAMES = 9
ANCHORS = {"centre": 4, "causal": 8}
WIDTH = 3
DILATION = 3  # the block's taps are this many frames apart
END = 2**62  # a Slice end past any axis


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _io(name: str, *dims) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


class _Graph:
    """Nodes and initializers of one form, with the weights every form shares."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits = [_const(k, v) for k, v in weights.items()]
        self._n = 0

    def const(self, value) -> str:
        self._n += 1
        name = f"c{self._n}"
        self.inits.append(_const(name, value))
        return name

    def op(self, kind: str, *inputs: str, **attrs) -> str:
        self._n += 1
        out = f"t{self._n}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def dense(self, x: str, layer: str, relu: bool = True) -> str:
        y = self.op("Add", self.op("MatMul", x, f"W{layer}"), f"b{layer}")
        return self.op("Relu", y) if relu else y

    def slice1(self, x: str, start: int, end: int) -> str:
        """x[:, start:end] (end <= 0 counts from the end; 0 means to the end)."""
        ends = self.const(np.array([end or END], np.int64))
        return self.op("Slice", x, self.const(np.array([start], np.int64)), ends, self.const([1]))

    def pose(self, h: str, anchor_frame: str, lead: list[int]) -> str:
        """Head on h [..., C] plus half the answered frame's input [..., 17, 3], root at 0."""
        head = self.op("Reshape", self.dense(h, "3", relu=False), self.const([*lead, 16, 3]))
        joints = self.op("Slice", anchor_frame, self.const([1]), self.const([17]), self.const([-2]))
        half = self.op("Mul", joints, self.const(np.float32(0.5)))
        body = self.op("Add", head, half)
        root = self.op("Slice", anchor_frame, self.const([0]), self.const([1]), self.const([-2]))
        return self.op("Concat", self.op("Mul", root, self.const(np.float32(0.0))), body, axis=-2)

    def model(self, out: str, inputs, outputs, extra: dict[str, str] | None = None):
        self.nodes.append(helper.make_node("Identity", [out], ["pose3d"]))
        for name, value in (extra or {}).items():
            self.nodes.append(helper.make_node("Identity", [value], [name]))
        graph = helper.make_graph(self.nodes, "dilated_toy", inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
        onnx.checker.check_model(model)
        return model


def weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def w(fan_in: int, fan_out: int) -> np.ndarray:
        return (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def b(n: int) -> np.ndarray:
        return (rng.standard_normal(n) * 0.1).astype(np.float32)

    c = CHANNELS
    return {
        "W0": w(WIDTH * 51, c), "b0": b(c),
        "W1": w(WIDTH * c, c), "b1": b(c),
        "W2": w(c, c), "b2": b(c),
        "W3": w(c, 48), "b3": b(48),
    }  # fmt: skip


def _tap(anchor: str) -> int:
    return WIDTH // 2 if anchor == "centre" else WIDTH - 1


def window_form(anchor: str, seed: int) -> onnx.ModelProto:
    """keypoints [N, 9, 17, 3] -> pose3d [N, 17, 3] (the strided single-output form)."""
    g, c = _Graph(weights(seed)), CHANNELS
    groups = g.op("Reshape", "keypoints", g.const([-1, WIDTH * 51]))
    h0 = g.op("Reshape", g.dense(groups, "0"), g.const([-1, WIDTH, c]))
    y = g.dense(g.dense(g.op("Reshape", h0, g.const([-1, WIDTH * c])), "1"), "2")
    h = g.op("Add", g.op("Gather", h0, g.const(np.int64(_tap(anchor))), axis=1), y)
    frame = g.op("Gather", "keypoints", g.const(np.int64(ANCHORS[anchor])), axis=1)
    out = g.pose(h, frame, [-1])
    return g.model(out, [_io("keypoints", "N", FRAMES, 17, 3)], [_io("pose3d", "N", 17, 3)])


def whole_track_form(anchor: str, seed: int) -> onnx.ModelProto:
    """keypoints [N, T, 17, 3] -> pose3d [N, T - 8, 17, 3] (dilated over the sequence)."""
    g, lookahead = _Graph(weights(seed)), FRAMES - 1 - ANCHORS[anchor]
    x = g.op("Reshape", "keypoints", g.const([0, 0, 51]))

    def conv(h: str, dilation: int, layer: str) -> tuple[str, list[str]]:
        span = (WIDTH - 1) * dilation
        taps = [g.slice1(h, k * dilation, k * dilation - span) for k in range(WIDTH)]
        return g.dense(g.op("Concat", *taps, axis=2), layer), taps

    h0, _ = conv(x, 1, "0")
    y, taps = conv(h0, DILATION, "1")
    h = g.op("Add", taps[_tap(anchor)], g.dense(y, "2"))
    frames = g.slice1("keypoints", ANCHORS[anchor], -lookahead)
    out = g.pose(h, frames, [0, 0])
    inputs = [_io("keypoints", "N", "T", 17, 3)]
    return g.model(out, inputs, [_io("pose3d", "N", "T_out", 17, 3)])


def step_state(anchor: str) -> list[dict]:
    """lifter.step.state of the step form."""
    state = [
        {"name": "input", "channels": 51, "taps": [2, 1]},
        {"name": "block0", "channels": CHANNELS, "taps": [2 * DILATION, DILATION]},
    ]
    lookahead = FRAMES - 1 - ANCHORS[anchor]
    if lookahead:
        state.append({"name": "anchor", "channels": 51, "taps": [lookahead]})
    return [{**s, "input": f"past_{s['name']}", "output": f"next_{s['name']}"} for s in state]


def step_form(anchor: str, seed: int) -> onnx.ModelProto:
    """keypoints [N, 17, 3], fresh [N, 1], past_* -> pose3d [N, 17, 3], next_* (see module)."""
    g, c = _Graph(weights(seed)), CHANNELS
    state = step_state(anchor)
    fresh = g.op("Unsqueeze", g.op("Greater", "fresh", g.const(np.float32(0.5))), g.const([2]))
    nexts: dict[str, str] = {}

    def window(past: str, current: str, name: str) -> str:
        """[N, taps + 1, C]: the kept taps (fresh: the current value) and the current value."""
        now = g.op("Unsqueeze", current, g.const([1]))
        old = g.op("Where", fresh, g.op("Expand", now, g.op("Shape", past)), past)
        nexts[f"next_{name}"] = current
        return g.op("Concat", old, now, axis=1)

    x = g.op("Reshape", "keypoints", g.const([-1, 51]))
    win0 = window("past_input", x, "input")
    h0 = g.dense(g.op("Reshape", win0, g.const([-1, WIDTH * 51])), "0")
    win1 = window("past_block0", h0, "block0")
    y = g.dense(g.dense(g.op("Reshape", win1, g.const([-1, WIDTH * c])), "1"), "2")
    h = g.op("Add", g.op("Gather", win1, g.const(np.int64(_tap(anchor))), axis=1), y)
    frame = x
    if len(state) == 3:
        frame = g.op("Gather", window("past_anchor", x, "anchor"), g.const(np.int64(0)), axis=1)
    out = g.pose(h, g.op("Reshape", frame, g.const([-1, 17, 3])), [-1])
    inputs = [_io("keypoints", "N", 17, 3), _io("fresh", "N", 1)]
    inputs += [_io(s["input"], "N", len(s["taps"]), s["channels"]) for s in state]
    outputs = [_io("pose3d", "N", 17, 3)] + [_io(s["output"], "N", s["channels"]) for s in state]
    return g.model(out, inputs, outputs, nexts)
