"""Export the lifter to ONNX with a dynamic batch axis and check it against torch."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 17


def export_lifter(model: nn.Module, path: Path, num_joints: int = 17) -> None:
    """keypoints [N, 17, C] -> pose3d [N, 17, 3] (metres, root-relative); C = 2 (normalized
    screen) or 3 (camera rays and visibility, for the camera-aware lifter)."""
    model = model.eval().cpu()
    dummy = torch.zeros(2, num_joints, getattr(model, "input_channels", 2))
    dummy[..., 2:] = 1.0  # visible joints (a graph traced on all-missing poses is the same)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["keypoints"],
            output_names=["pose3d"],
            dynamic_axes={"keypoints": {0: "N"}, "pose3d": {0: "N"}},
            opset_version=OPSET,
            dynamo=False,
        )


def onnx_parity(model: nn.Module, path: Path, keypoints: np.ndarray) -> float:
    """Max abs difference between ONNX Runtime (CPU) and torch on the same inputs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (ort_out,) = sess.run(["pose3d"], {"keypoints": keypoints.astype(np.float32)})
    with torch.no_grad():
        ref = model.eval().cpu()(torch.from_numpy(keypoints.astype(np.float32))).numpy()
    return float(np.abs(ort_out - ref).max())
