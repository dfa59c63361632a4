"""Export the trained augmentor to ``augmentor.onnx`` (contract: models/README.md).

The eval-mode augmentor is wrapped so that the graph outputs only what the contract lists
(``pose3d_aug`` = pose_rt, BA offsets, BL ratios, rotation, translation); the intermediate
pose_ba / pose_bl are dropped. The noise is an input, so the exported graph is deterministic.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from poseaug_training.poseaug.augmentor import Augmentor
from poseaug_training.skeleton import NUM_JOINTS

INPUT_NAMES: tuple[str, ...] = ("pose3d", "root", "noise_ba", "noise_bl", "noise_rt", "ops")
OUTPUT_NAMES: tuple[str, ...] = (
    "pose3d_aug",
    "bone_angle_offsets",
    "bone_length_ratios",
    "rotation",
    "translation",
)
DEFAULT_OPSET = 17
MAX_BYTES = 40 * 1024 * 1024


class ExportedAugmentor(nn.Module):
    """The augmentor with the contract's five outputs (a plain tuple, in OUTPUT_NAMES order)."""

    def __init__(self, augmentor: Augmentor) -> None:
        super().__init__()
        self.augmentor = augmentor

    def forward(
        self,
        pose3d: Tensor,
        root: Tensor,
        noise_ba: Tensor,
        noise_bl: Tensor,
        noise_rt: Tensor,
        ops: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        out = self.augmentor(pose3d, root, noise_ba, noise_bl, noise_rt, ops)
        return (
            out.pose_rt,
            out.bone_angle_offsets,
            out.bone_length_ratios,
            out.rotation,
            out.translation,
        )


def example_inputs(augmentor: Augmentor, n: int = 4, seed: int = 0) -> tuple[Tensor, ...]:
    """Plausible-shaped CPU inputs for tracing (values do not matter for the graph)."""
    g = torch.Generator().manual_seed(seed)
    pose3d = 0.3 * torch.randn(n, NUM_JOINTS, 3, generator=g)
    pose3d = pose3d - pose3d[:, :1]
    root = torch.tensor([0.0, 0.0, 5.0]).expand(n, 3).clone()
    noise = augmentor.sample_noise(n, generator=g, device="cpu")
    return (pose3d, root, *noise, torch.ones(3))


def export_augmentor(
    augmentor: Augmentor,
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    batch: int = 4,
    dynamo: bool = False,
) -> Path:
    """Write the eval-mode ``augmentor`` (a CPU copy; the original is untouched) to ``path``.

    Both torch 2.13 exporters give the same graph for this small MLP (parity ~1e-5 either
    way). The default TorchScript-based one (``dynamo=False``) exports in under a second; the
    ``torch.export`` one (``dynamo=True``, needs onnxscript, opset >= 18) takes ~10 s on two
    CPU cores and is the path to keep if a later torch drops the former. One self-contained
    file, batch axis ``N`` dynamic. Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = ExportedAugmentor(copy.deepcopy(augmentor).cpu()).eval()
    args = example_inputs(augmentor, batch)
    names = {"input_names": list(INPUT_NAMES), "output_names": list(OUTPUT_NAMES)}
    with torch.no_grad(), warnings.catch_warnings():
        # Shape checks and constant tables are fine to freeze into the graph.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        if dynamo:
            # The torch.export path emits opset 18 and cannot down-convert this graph to 17.
            n = torch.export.Dim("N", min=1)
            shapes = {name: {0: n} for name in INPUT_NAMES[:-1]} | {"ops": None}
            torch.onnx.export(
                model, args, str(path), **names, dynamic_shapes=shapes,
                opset_version=max(opset, 18),
                dynamo=True, external_data=False, verbose=False,
            )  # fmt: skip
        else:
            axes = {name: {0: "N"} for name in (*INPUT_NAMES[:-1], *OUTPUT_NAMES)}
            torch.onnx.export(
                model, args, str(path), **names, dynamic_axes=axes, opset_version=opset,
                dynamo=False,
            )  # fmt: skip
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise RuntimeError(f"{path} is {size} bytes, over the {MAX_BYTES}-byte limit")
    return path


def augmentor_parity(augmentor: Augmentor, path: str | Path, n: int = 7, seed: int = 0) -> float:
    """Max abs difference between ONNX Runtime (CPU) and torch over every ``ops`` mask.

    Uses a batch size other than the export's, so it also checks the dynamic batch axis.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = ExportedAugmentor(copy.deepcopy(augmentor).cpu()).eval()
    worst = 0.0
    for mask in range(8):
        ops = torch.tensor([float(mask >> i & 1) for i in range(3)])
        inputs = (*example_inputs(augmentor, n, seed + mask)[:-1], ops)
        with torch.no_grad():
            ref = model(*inputs)
        feeds = {k: v.numpy() for k, v in zip(INPUT_NAMES, inputs, strict=True)}
        got = sess.run(list(OUTPUT_NAMES), feeds)
        for r, g in zip(ref, got, strict=True):
            worst = max(worst, float((r - torch.from_numpy(g)).abs().max()))
    return worst


def export_augmentor_from_state(
    state: Mapping[str, Any], path: str | Path, opset: int = DEFAULT_OPSET
) -> dict[str, Any]:
    """Export the augmentor of a training checkpoint and describe it for the manifest.

    ``state["extra"]["augmentor"]`` is the augmentor's ``state_dict()`` (self-describing, see
    :meth:`Augmentor.from_state_dict`). Returns the manifest's ``augmentor`` entry plus
    ``parity`` ({"augmentor": max abs diff}), which the caller moves elsewhere; raises if
    ONNX Runtime and torch differ by more than 1e-4.
    """
    augmentor = Augmentor.from_state_dict(state["extra"]["augmentor"])
    path = export_augmentor(augmentor, path, opset)
    diff = augmentor_parity(augmentor, path)
    if diff > 1e-4:
        raise RuntimeError(f"{Path(path).name} differs from torch by {diff:g} (> 1e-4)")
    config = augmentor.config
    return {
        "file": Path(path).name,
        "noise_dims": config.pop("noise_dims"),
        "ops": ["BA", "BL", "RT"],
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
        "opset": opset,
        "config": config,
        "parity": {"augmentor": diff},
    }
