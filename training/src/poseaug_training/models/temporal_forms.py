"""The temporal lifter's two other forms, on the same weights: a whole track in one pass, and a
live track one new frame at a time.

`TemporalRayLifter` is VideoPose3D's strided single-output form: one window of R frames in,
one pose out, every layer recomputed for every window. VideoPose3D runs the same weights in
the dilated form: layer i's convolution reads positions S_i apart (S_i = the product of the
widths before it), so over a sequence every layer computes each position once. A position is
named by the newest frame it covers; the window model's answer for the R frames ending at frame
e is the dilated output at e, the pose of frame e - lookahead.

- `WholeTrackLifter`: frames [N, T, 17, 3] -> poses [N, T - R + 1, 17, 3], output i being the
  window model's answer for frames i .. i + R - 1 (edge-pad a track by the anchor frame before
  it and the lookahead after it to get one pose per frame).
- `StepLifter`: one new frame per track plus, for each layer that looks back, the inputs it
  read at its taps (`past_k` [N, taps, C_k], oldest first) -> the pose of the frame `lookahead`
  steps back and each such layer's input at the new frame (`next_k` [N, C_k], to keep for later
  steps). `fresh` (1.0 on a track's first frame) makes every tap read the new frame's own
  value: the edge padding of a track's start, for which every position before it holds that
  value. The rotation back into the camera is the answered frame's, kept the same way.

`step_state` describes the kept inputs (channels and taps); the service keeps them per track
(models/README.md, `lifter.step`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from poseaug_training.models.ray_lifter import perspective_normalize
from poseaug_training.models.temporal_ray_lifter import GroupLinear, TemporalRayLifter


@dataclass(frozen=True)
class StateSpec:
    """One kept input of the step form: `channels` values per frame, read `taps` frames back
    (oldest first)."""

    name: str
    channels: int
    taps: tuple[int, ...]


def _convolution_plan(model: TemporalRayLifter) -> list[tuple[GroupLinear, int, int, nn.Module]]:
    """(convolution, dilation, skip tap or -1, layer after it or None) of each layer in order:
    the input layer, then each block's strided convolution with its 1x1 layer."""
    first, *blocks = model.body
    plan = [(first, 1, -1, None)]
    dilation = first.width
    for block in blocks:
        conv, pointwise = block.layers
        plan.append((conv, dilation, block.tap, pointwise))
        dilation *= block.width
    return plan


def _activate(layer: GroupLinear, z: torch.Tensor) -> torch.Tensor:
    """The layer's Linear, BatchNorm (eval) and ReLU over rows [..., width * C] (as one 2D
    product, which ONNX Runtime fuses with the BatchNorm and ReLU)."""
    y = torch.relu(layer.bn(layer.linear(z.reshape(-1, z.shape[-1]))))
    return y.reshape(*z.shape[:-1], y.shape[-1])


def _head(model: TemporalRayLifter, h: torch.Tensor) -> torch.Tensor:
    """[..., C] -> [..., 17, 3] root-relative pose in the virtual camera (root at 0)."""
    out = model.head(h).reshape(*h.shape[:-1], model.num_joints - 1, 3)
    return torch.cat([torch.zeros_like(out[..., :1, :]), out], dim=-2)


class WholeTrackLifter(nn.Module):
    """The dilated form over whole sequences (see module docstring)."""

    def __init__(self, model: TemporalRayLifter) -> None:
        super().__init__()
        self.model = model
        self.plan = _convolution_plan(model)

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        n, t, j, c = keypoints.shape
        x, rot = perspective_normalize(keypoints.reshape(n * t, j, c))
        h = x.reshape(n, t, j * c)
        for conv, dilation, tap, pointwise in self.plan:
            # Tap k of the output at newest position p reads position p - (width - 1 - k) * S:
            # over the sequence, the slice from k * S to (width - 1 - k) * S before the end.
            end = h.shape[1] - (conv.width - 1) * dilation
            taps = [h[:, k * dilation : end + k * dilation] for k in range(conv.width)]
            y = _activate(conv, torch.cat(taps, -1) if len(taps) > 1 else taps[0])
            h = y if pointwise is None else taps[tap] + _activate(pointwise, y)
        rot = rot.reshape(n, t, 3, 3)
        anchor_rot = rot[:, self.model.anchor_frame : t - self.model.lookahead]
        return torch.matmul(_head(self.model, h), anchor_rot)


class StepLifter(nn.Module):
    """The dilated form one frame at a time, with each layer's past inputs kept outside (see
    module docstring). forward(keypoints [N, 17, 3], fresh [N, 1], *past) -> (pose3d, *next),
    past and next in the order of `state`."""

    def __init__(self, model: TemporalRayLifter) -> None:
        super().__init__()
        self.model = model
        self.plan = _convolution_plan(model)
        state = []
        for i, (conv, dilation, _, _) in enumerate(self.plan):
            if conv.width > 1:
                taps = tuple((conv.width - 1 - k) * dilation for k in range(conv.width - 1))
                channels = conv.linear.in_features // conv.width
                state.append(StateSpec("input" if i == 0 else f"block{i - 1}", channels, taps))
        if model.lookahead > 0:  # the answered frame's rotation back into the camera
            state.append(StateSpec("rotation", 9, (model.lookahead,)))
        self.state = tuple(state)

    def forward(
        self, keypoints: torch.Tensor, fresh: torch.Tensor, *past: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        n, j, c = keypoints.shape
        x, rot = perspective_normalize(keypoints)
        fresh = fresh.reshape(n, 1, 1) > 0.5
        kept = iter(past)
        nexts = []

        def window(current: torch.Tensor) -> torch.Tensor:
            """[N, taps + 1, C]: the kept taps (or, on a fresh track, the current value
            repeated) followed by the current value."""
            old = next(kept)
            old = torch.where(fresh, current[:, None].expand_as(old), old)
            nexts.append(current)
            return torch.cat([old, current[:, None]], 1)

        h = x.reshape(n, j * c)
        for conv, _, tap, pointwise in self.plan:
            if conv.width > 1:
                w = window(h)
                y = _activate(conv, w.reshape(n, -1))
                skip = w[:, tap]
            else:
                y, skip = _activate(conv, h), h
            h = y if pointwise is None else skip + _activate(pointwise, y)
        rot = rot.reshape(n, 9)
        if self.model.lookahead > 0:
            rot = window(rot)[:, 0]
        pose = torch.matmul(_head(self.model, h), rot.reshape(n, 3, 3))
        return (pose, *nexts)
