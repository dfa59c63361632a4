"""Start a run from a shipped model bundle, when the run that made it is not at hand.

A bundle (`models/<name>/`) holds the lifter and augmentor as ONNX and the training record in
its manifest; a run's checkpoint lives on the machine that trained it and is lost with it.
`checkpoint_from_bundle` reads the weights back out of the ONNX files into the checkpoint form
`Trainer` starts from (`--init` with a bundle directory), so a later stage can go on from what
was shipped: on a fresh machine, or on a GPU lent later.

What comes back, and what does not:
- the lifter's weights as the bundle stores them (its large matrices as float16, see
  `lifter_onnx.store_weights_fp16`), its BatchNorm statistics, and its architecture;
- the augmentor's weights (a PoseAug bundle ships it for the Augment RPC);
- not PoseAug's two critics, which no bundle ships: a run from a bundle trains them afresh;
- not the optimizer states: `--init` never carries those anyway.

Both modules are checked against the bundle's own ONNX files before they are returned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poseaug_training.export.augmentor_onnx import augmentor_parity
from poseaug_training.export.bundle import PARITY_TOLERANCE, lifter_parity_inputs
from poseaug_training.export.lifter_onnx import onnx_parity
from poseaug_training.models import build_estimator, estimator_options
from poseaug_training.poseaug.augmentor import Augmentor

AUGMENTOR_PREFIX = "augmentor."  # the exported wrapper's attribute name


def is_bundle(path: str | Path) -> bool:
    """Whether `path` is a bundle folder (it holds a manifest) rather than a checkpoint file."""
    return (Path(path) / "manifest.json").is_file()


def _initializers(path: Path) -> tuple[dict[str, np.ndarray], Any]:
    """{name: array} of an ONNX file's weights (float16 copies widened, under the name of the
    float32 tensor their Cast feeds), and the graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Cast" and node.input[0] in arrays:
            arrays[node.output[0]] = arrays.pop(node.input[0]).astype(np.float32)
    return arrays, graph


def lifter_state(path: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`model`'s state dict read from the exported lifter at `path`.

    BatchNorm parameters and biases keep their module names in the export; each Linear's
    weight becomes an anonymous [in, out] MatMul operand, named here by what consumes the
    product: a BatchNorm (the Linear registered just before it in `model`) or the Add of a
    Linear's own bias."""
    arrays, graph = _initializers(path)
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    state = {k: torch.from_numpy(np.array(v)) for k, v in arrays.items() if "::" not in k}
    feeds_bn: dict[str, str] = {}  # BatchNorm weight name -> its Linear's weight name
    linear = ""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            linear = name
        elif isinstance(module, torch.nn.BatchNorm1d):
            feeds_bn[f"{name}.weight"] = f"{linear}.weight"
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in arrays:
            continue
        for user in consumers.get(node.output[0], []):
            params = [p for p in user.input if p in arrays]
            if user.op_type == "BatchNormalization" and params[:1] and params[0] in feeds_bn:
                key = feeds_bn[params[0]]
            elif user.op_type == "Add" and params and params[0].endswith(".bias"):
                key = params[0].removesuffix(".bias") + ".weight"
            else:
                continue
            state[key] = torch.from_numpy(np.ascontiguousarray(arrays[node.input[1]].T))
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{path} lacks weights for {missing[:4]}")
    return {k: state.get(k, v) for k, v in own.items()}


def augmentor_state(path: Path, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """An `Augmentor(**config)` state dict read from the exported augmentor at `path`."""
    arrays, _ = _initializers(path)
    own = Augmentor(**config).state_dict()
    state = {
        k.removeprefix(AUGMENTOR_PREFIX): torch.from_numpy(np.array(v))
        for k, v in arrays.items()
        if k.startswith(AUGMENTOR_PREFIX)
    }
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    # The BL limit, depth floor and body prior are constructor arguments too (the manifest's
    # augmentor config), folded into the graph.
    missing = [k for k in missing if k not in ("bl.limit", "rt.min_depth", "bl.body_prior")]
    if missing:
        raise ValueError(f"{path} lacks weights for {missing[:4]}")
    return {k: state.get(k, v) for k, v in own.items()}


def lifter_from_bundle(bundle: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(the lifter rebuilt from the bundle's lifter.onnx and checked against it, in eval mode;
    the bundle's manifest)."""
    bundle = Path(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    cfg = manifest["training"]["config"]
    model = build_estimator(cfg["estimator"], **estimator_options(cfg))
    lifter_file = bundle / manifest["lifter"]["file"]
    model.load_state_dict(lifter_state(lifter_file, model))
    # The bundle's ONNX files must reproduce the rebuilt modules as closely as at export.
    diff = onnx_parity(model, lifter_file, lifter_parity_inputs(model))
    if diff > PARITY_TOLERANCE:
        raise ValueError(f"the lifter rebuilt from {lifter_file} differs from it by {diff:g}")
    return model.eval(), manifest


def checkpoint_from_bundle(bundle: str | Path) -> dict[str, Any]:
    """The checkpoint-like state `Trainer` starts from (`--init`): config, lineage, epochs and
    steps from the manifest's training record; lifter and augmentor weights from the ONNX
    files, each checked against its file."""
    bundle = Path(bundle)
    model, manifest = lifter_from_bundle(bundle)
    training = manifest["training"]
    cfg = training["config"]
    extra: dict[str, Any] = {}
    if manifest.get("augmentor"):
        aug_file = bundle / manifest["augmentor"]["file"]
        augmentor = Augmentor(**manifest["augmentor"]["config"])
        augmentor.load_state_dict(augmentor_state(aug_file, manifest["augmentor"]["config"]))
        diff = augmentor_parity(augmentor, aug_file)
        if diff > PARITY_TOLERANCE:
            raise ValueError(f"the augmentor rebuilt from {aug_file} differs from it by {diff:g}")
        extra["augmentor"] = augmentor.state_dict()
    return {
        "config": cfg,
        "epoch": training["epochs"],
        "global_step": training["steps"],
        "wall_time_s": training["wall_time_s"],
        "hardware": training.get("hardware", {}),
        "lineage": training.get("lineage", []),
        "estimator": model.state_dict(),
        "extra": extra,
        "bundle": {"name": manifest["name"], "version": manifest["version"]},
    }
