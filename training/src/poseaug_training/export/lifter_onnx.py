"""Export the lifter to ONNX with a dynamic batch axis and check it against torch."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 17


# Weights with at least this many elements are stored as float16 when the float32 file would
# pass the bundle limit; a Cast node (folded by ONNX Runtime when the session loads) makes
# them float32 again, so the arithmetic stays float32.
FP16_MIN_ELEMENTS = 4096


def export_lifter(model: nn.Module, path: Path, num_joints: int = 17) -> None:
    """keypoints [N, 17, C] (or windows [N, R, 17, C] for a temporal lifter) -> pose3d
    [N, 17, 3] (metres, root-relative); C = 2 (normalized screen) or 3 (camera rays and
    visibility, for the camera-aware lifters)."""
    model = model.eval().cpu()
    frames = getattr(model, "receptive_field", None)
    shape = (2, num_joints) if frames is None else (2, frames, num_joints)
    dummy = torch.zeros(*shape, getattr(model, "input_channels", 2))
    dummy[..., 2:] = 1.0  # visible joints (a graph traced on all-missing poses is the same)
    export_module(model, {"keypoints": dummy}, path, ["pose3d"])


def export_module(
    module: nn.Module,
    inputs: dict[str, torch.Tensor],
    path: Path,
    outputs: list[str],
    dynamic: dict[str, dict[int, str]] | None = None,
) -> None:
    """`module(*inputs.values())` to ONNX at `path` (opset OPSET), its inputs and outputs named
    as given; axis 0 of each is the dynamic batch axis "N", `dynamic` adds others."""
    axes = {name: {0: "N"} for name in [*inputs, *outputs]}
    for name, more in (dynamic or {}).items():
        axes[name] = {**axes[name], **more}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            tuple(inputs.values()),
            str(path),
            input_names=list(inputs),
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def parity_poses(n: int = 256, seed: int = 0, channels: int = 2) -> np.ndarray:
    """Plausible normalized 2D poses: a rest skeleton with random jitter (no dataset needed).
    With 3 channels (camera rays): placed anywhere in a wide view, a quarter of the poses with
    two joints missing."""
    from poseaug_training.skeleton import PARENTS

    rng = np.random.default_rng(seed)
    rest = np.zeros((17, 2), np.float32)
    offsets = rng.normal(0, 0.08, (17, 2)).astype(np.float32)
    for j, p in enumerate(PARENTS):
        if p >= 0:
            rest[j] = rest[p] + offsets[j]
    kp = rest[None] + rng.normal(0, 0.02, (n, 17, 2)).astype(np.float32)
    if channels == 2:
        return kp
    rays = kp * 0.5 + rng.uniform(-0.8, 0.8, (n, 1, 2)).astype(np.float32)
    vis = np.ones((n, 17, 1), np.float32)
    vis[: n // 4, rng.integers(1, 17, 2)] = 0
    return np.concatenate([rays * vis, vis], -1)


def onnx_parity(model: nn.Module, path: Path, keypoints: np.ndarray) -> float:
    """Max abs difference between ONNX Runtime (CPU) and torch on the same inputs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (ort_out,) = sess.run(["pose3d"], {"keypoints": keypoints.astype(np.float32)})
    with torch.no_grad():
        ref = model.eval().cpu()(torch.from_numpy(keypoints.astype(np.float32))).numpy()
    return float(np.abs(ort_out - ref).max())


def round_weights_to_fp16(model: nn.Module) -> None:
    """Round the model's floating-point weights to float16 values in place, so the float16
    ONNX initializers (`store_weights_fp16`) hold exactly what torch computes with."""
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point() and t.numel() >= FP16_MIN_ELEMENTS:
                t.copy_(t.half().float())


def store_weights_fp16(path: Path) -> None:
    """Rewrite an ONNX file with its large float32 initializers stored as float16, each
    followed by a Cast back to float32 (half the file size, the same float32 arithmetic)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    kept, casts = [], []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and np.prod(init.dims) >= FP16_MIN_ELEMENTS:
            half = numpy_helper.from_array(
                numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16"
            )
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
        else:
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
