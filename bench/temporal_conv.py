"""The temporal lifter's strided convolution: Conv1d against the same arithmetic as one Linear
over groups of frames (models/temporal_ray_lifter.GroupLinear), forward + backward, fp32 and
bf16 autocast, on one batch of training windows. Prints ms per step and the ratios (one run).

    .venv/bin/python bench/temporal_conv.py [--batch 256] [--channels 1024] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn


def step_ms(layer: nn.Module, x: torch.Tensor, dtype: torch.dtype | None, reps: int) -> float:
    times = []
    for i in range(reps + 1):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            y = layer(x)
        y.float().sum().backward()
        if i:  # the first is warm-up
            times.append(time.perf_counter() - t)
    return 1e3 * min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256, help="windows per step")
    ap.add_argument("--channels", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=9, help="groups of 3 frames in (block 1: 9)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    c, w = args.channels, 3
    conv = nn.Conv1d(c, c, w, stride=w, bias=False)
    linear = nn.Linear(c * w, c, bias=False)
    with torch.no_grad():  # the same weights: linear columns are (tap, channel)
        linear.weight.copy_(conv.weight.permute(0, 2, 1).reshape(c, c * w))
    x_conv = torch.randn(args.batch, c, args.frames, requires_grad=True)
    x_lin = x_conv.detach().transpose(1, 2).reshape(-1, c * w).requires_grad_(True)
    with torch.no_grad():
        same = float((conv(x_conv).transpose(1, 2).reshape(-1, c) - linear(x_lin)).abs().max())
    print(f"same output: max diff {same:.2e}; batch {args.batch} windows, {c} channels")
    rows = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        rows[name] = (
            step_ms(conv, x_conv, dtype, args.reps),
            step_ms(linear, x_lin, dtype, args.reps),
        )
        a, b = rows[name]
        print(f"{name}: Conv1d {a:7.1f} ms  GroupLinear {b:7.1f} ms  ratio {a / b:.2f}x")
    print(f"GroupLinear bf16 vs Conv1d fp32: {rows['fp32'][0] / rows['bf16'][1]:.2f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
