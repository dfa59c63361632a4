"""Model bundles for tests and benchmarks, built with onnx.helper (never torch).

They honour the models/README.md contract exactly (names, shapes, manifest with sha256), so the
server cannot tell them from a trained bundle:
- lifter "linear": a fixed random linear map [34] -> [51] with joint 0 zeroed (tiny, fast);
- lifter "rays_echo": camera-aware (format 2): its output is its input (x, y, visible per
  joint, joint 0 zeroed), so tests read exactly what the server fed it;
- lifter "window_probe": temporal (format 3, windows of WINDOW_FRAMES frames answered at
  WINDOW_ANCHOR): its output reveals which frames a window held: per joint, the x ray of the
  window's first, answered and last frame;
- lifters "dilated_centre" / "dilated_causal": temporal, a small VideoPose3D-shaped network
  (tests/support/dilated_toy.py) with its step and whole-track forms in the bundle too
  (`forms=False` leaves them out, as older bundles do);
- lifter "vpose": a VideoPose3D-1f-sized MLP (34 -> 1024, 4 residual blocks of two 1024x1024
  Gemm+Relu, -> 48, root prepended; about 8.5M parameters) for realistic timings;
- augmentor: a deterministic graph that uses every noise input and honours `ops`
  (BA off -> zero offsets, BL off -> unit ratios, RT off -> zero rotation, translation = root).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from poseaug_client.formats import H36M_JOINT_NAMES, H36M_PARENTS
from tests.support import dilated_toy

OPSET = 17
# onnxruntime 1.31 reads ONNX IR <= 13; onnx 1.23 writes 14 unless told otherwise.
IR_VERSION = 10
DEFAULT_NOISE_DIMS = (48, 16, 8)
# Lifters written as format 2 (camera_rays) bundles; the others are format 1.
CAMERA_AWARE_LIFTERS = frozenset({"rays_echo", "window_probe", "dilated_centre", "dilated_causal"})
# The window_probe lifter's window (format 3): 5 frames answering the middle one.
WINDOW_FRAMES, WINDOW_ANCHOR = 5, 2
DILATED = {"dilated_centre": "centre", "dilated_causal": "causal"}
TEMPORAL_LIFTERS = {
    "window_probe": (WINDOW_FRAMES, WINDOW_ANCHOR),
    **{k: (dilated_toy.FRAMES, dilated_toy.ANCHORS[a]) for k, a in DILATED.items()},
}
JOINT_NAMES, PARENTS = H36M_JOINT_NAMES, H36M_PARENTS


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _model(nodes, inputs, outputs, inits, name: str) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    onnx.checker.check_model(model)
    return model


def _io(name: str, *dims) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def linear_lifter(seed: int = 0) -> onnx.ModelProto:
    """keypoints [N,17,2] -> pose3d [N,17,3] = (flat @ W + b) with joint 0 set to zero."""
    rng = np.random.default_rng(seed)
    mask = np.ones((17, 3), np.float32)
    mask[0] = 0.0
    inits = [
        _const("W", (rng.standard_normal((34, 51)) * 0.2).astype(np.float32)),
        _const("b", (rng.standard_normal(51) * 0.1).astype(np.float32)),
        _const("flat_shape", np.array([-1, 34], np.int64)),
        _const("pose_shape", np.array([-1, 17, 3], np.int64)),
        _const("root_mask", mask),
    ]
    nodes = [
        helper.make_node("Reshape", ["keypoints", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["xwb"]),
        helper.make_node("Reshape", ["xwb", "pose_shape"], ["raw"]),
        helper.make_node("Mul", ["raw", "root_mask"], ["pose3d"]),
    ]
    return _model(
        nodes, [_io("keypoints", "N", 17, 2)], [_io("pose3d", "N", 17, 3)], inits, "linear"
    )


def rays_echo_lifter(seed: int = 0) -> onnx.ModelProto:
    """A camera-aware lifter whose output reveals its input: keypoints [N,17,3] (x, y,
    visible) -> pose3d [N,17,3] = the same values with joint 0 zeroed (the contract's root)."""
    mask = np.ones((17, 3), np.float32)
    mask[0] = 0.0
    nodes = [helper.make_node("Mul", ["keypoints", "root_mask"], ["pose3d"])]
    return _model(
        nodes,
        [_io("keypoints", "N", 17, 3)],
        [_io("pose3d", "N", 17, 3)],
        [_const("root_mask", mask)],
        "rays_echo",
    )


def window_probe_lifter(seed: int = 0) -> onnx.ModelProto:
    """keypoints [N, WINDOW_FRAMES, 17, 3] -> pose3d [N, 17, 3] = per joint (x of the first
    frame, x of the answered frame, x of the last frame): which frames filled the window."""
    inits = [
        _const("frames", np.array([0, WINDOW_ANCHOR, WINDOW_FRAMES - 1], np.int64)),
        _const("x_channel", np.array(0, np.int64)),
    ]
    nodes = [
        helper.make_node("Gather", ["keypoints", "frames"], ["picked"], axis=1),  # [N,3,17,3]
        helper.make_node("Gather", ["picked", "x_channel"], ["x"], axis=3),  # [N,3,17]
        helper.make_node("Transpose", ["x"], ["pose3d"], perm=[0, 2, 1]),
    ]
    inputs = [_io("keypoints", "N", WINDOW_FRAMES, 17, 3)]
    return _model(nodes, inputs, [_io("pose3d", "N", 17, 3)], inits, "window_probe")


def vpose_lifter(seed: int = 0, hidden: int = 1024, blocks: int = 4) -> onnx.ModelProto:
    """VideoPose3D 1-frame sized MLP (BN folded into Gemm, as an exported eval model is)."""
    rng = np.random.default_rng(seed)
    inits = [
        _const("flat_shape", np.array([-1, 34], np.int64)),
        _const("pose_shape", np.array([-1, 17, 3], np.int64)),
        _const("zero", np.float32(0.0)),
        _const("s0", np.array([0], np.int64)),
        _const("s3", np.array([3], np.int64)),
        _const("ax1", np.array([1], np.int64)),
    ]
    nodes = [helper.make_node("Reshape", ["keypoints", "flat_shape"], ["x_in"])]

    def gemm(x: str, out: str, fan_in: int, fan_out: int, tag: str) -> None:
        w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(1.0 / fan_in)
        inits.append(_const(f"W_{tag}", w.astype(np.float32)))
        inits.append(_const(f"b_{tag}", np.zeros(fan_out, np.float32)))
        nodes.append(helper.make_node("Gemm", [x, f"W_{tag}", f"b_{tag}"], [out]))

    gemm("x_in", "h0_lin", 34, hidden, "in")
    nodes.append(helper.make_node("Relu", ["h0_lin"], ["h0"]))
    x = "h0"
    for i in range(blocks):
        gemm(x, f"b{i}_l1", hidden, hidden, f"b{i}a")
        nodes.append(helper.make_node("Relu", [f"b{i}_l1"], [f"b{i}_r1"]))
        gemm(f"b{i}_r1", f"b{i}_l2", hidden, hidden, f"b{i}b")
        nodes.append(helper.make_node("Relu", [f"b{i}_l2"], [f"b{i}_r2"]))
        nodes.append(helper.make_node("Add", [x, f"b{i}_r2"], [f"h{i + 1}"]))
        x = f"h{i + 1}"
    gemm(x, "out48", hidden, 48, "out")
    nodes += [
        helper.make_node("Slice", ["out48", "s0", "s3", "ax1"], ["first3"]),
        helper.make_node("Mul", ["first3", "zero"], ["root"]),
        helper.make_node("Concat", ["root", "out48"], ["out51"], axis=1),
        helper.make_node("Reshape", ["out51", "pose_shape"], ["pose3d"]),
    ]
    return _model(
        nodes, [_io("keypoints", "N", 17, 2)], [_io("pose3d", "N", 17, 3)], inits, "vpose"
    )


def toy_augmentor(noise_dims: Sequence[int] = DEFAULT_NOISE_DIMS, seed: int = 1) -> onnx.ModelProto:
    """A deterministic stand-in for the trained augmentor with the contract's inputs/outputs.

    offsets = ba * 0.1 * (noise_ba @ Wa); ratios = 1 + bl * 0.2 tanh(noise_bl @ Wl);
    rotation = rt * 0.1 pi tanh(noise_rt @ Wr); translation = root + rt * 0.5 tanh(noise_rt @ Wt);
    pose3d_aug = pose3d * mean(ratios) + 0.1 * [0; offsets] + translation.
    """
    d_ba, d_bl, d_rt = noise_dims
    rng = np.random.default_rng(seed)

    def w(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(rows)).astype(np.float32)

    inits = [
        _const("Wa", w(d_ba, 48)),
        _const("Wl", w(d_bl, 16)),
        _const("Wr", w(d_rt, 3)),
        _const("Wt", w(d_rt, 3)),
        _const("i0", np.int64(0)),
        _const("i1", np.int64(1)),
        _const("i2", np.int64(2)),
        _const("c_ba", np.float32(0.1)),
        _const("c_bl", np.float32(0.2)),
        _const("c_rot", np.float32(0.1 * np.pi)),
        _const("c_tr", np.float32(0.5)),
        _const("one", np.float32(1.0)),
        _const("zero", np.float32(0.0)),
        _const("shape_163", np.array([-1, 16, 3], np.int64)),
        _const("s0", np.array([0], np.int64)),
        _const("s1", np.array([1], np.int64)),
        _const("ax1", np.array([1], np.int64)),
        _const("ax2", np.array([2], np.int64)),
    ]
    n = helper.make_node
    nodes = [
        n("Gather", ["ops", "i0"], ["on_ba"]),
        n("Gather", ["ops", "i1"], ["on_bl"]),
        n("Gather", ["ops", "i2"], ["on_rt"]),
        # BA
        n("MatMul", ["noise_ba", "Wa"], ["ba_lin"]),
        n("Mul", ["ba_lin", "c_ba"], ["ba_scaled"]),
        n("Mul", ["ba_scaled", "on_ba"], ["ba_flat"]),
        n("Reshape", ["ba_flat", "shape_163"], ["bone_angle_offsets"]),
        # BL
        n("MatMul", ["noise_bl", "Wl"], ["bl_lin"]),
        n("Tanh", ["bl_lin"], ["bl_tanh"]),
        n("Mul", ["bl_tanh", "c_bl"], ["bl_scaled"]),
        n("Mul", ["bl_scaled", "on_bl"], ["bl_delta"]),
        n("Add", ["bl_delta", "one"], ["bone_length_ratios"]),
        # RT
        n("MatMul", ["noise_rt", "Wr"], ["r_lin"]),
        n("Tanh", ["r_lin"], ["r_tanh"]),
        n("Mul", ["r_tanh", "c_rot"], ["r_scaled"]),
        n("Mul", ["r_scaled", "on_rt"], ["rotation"]),
        n("MatMul", ["noise_rt", "Wt"], ["t_lin"]),
        n("Tanh", ["t_lin"], ["t_tanh"]),
        n("Mul", ["t_tanh", "c_tr"], ["t_scaled"]),
        n("Mul", ["t_scaled", "on_rt"], ["t_delta"]),
        n("Add", ["root", "t_delta"], ["translation"]),
        # pose
        n("ReduceMean", ["bone_length_ratios"], ["scale2"], axes=[1], keepdims=1),
        n("Unsqueeze", ["scale2", "ax2"], ["scale3"]),
        n("Mul", ["pose3d", "scale3"], ["pose_scaled"]),
        n("Slice", ["bone_angle_offsets", "s0", "s1", "ax1"], ["first_bone"]),
        n("Mul", ["first_bone", "zero"], ["root_pad"]),
        n("Concat", ["root_pad", "bone_angle_offsets"], ["joint_off"], axis=1),
        n("Mul", ["joint_off", "c_ba"], ["joint_off_scaled"]),
        n("Add", ["pose_scaled", "joint_off_scaled"], ["pose_off"]),
        n("Unsqueeze", ["translation", "ax1"], ["t3"]),
        n("Add", ["pose_off", "t3"], ["pose3d_aug"]),
    ]
    inputs = [
        _io("pose3d", "N", 17, 3),
        _io("root", "N", 3),
        _io("noise_ba", "N", d_ba),
        _io("noise_bl", "N", d_bl),
        _io("noise_rt", "N", d_rt),
        _io("ops", 3),
    ]
    outputs = [
        _io("pose3d_aug", "N", 17, 3),
        _io("bone_angle_offsets", "N", 16, 3),
        _io("bone_length_ratios", "N", 16),
        _io("rotation", "N", 3),
        _io("translation", "N", 3),
    ]
    return _model(nodes, inputs, outputs, inits, "toy_augmentor")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_bundle(
    root: Path,
    name: str,
    default: bool = True,
    with_augmentor: bool = True,
    lifter: str = "linear",
    seed: int = 0,
    noise_dims: Sequence[int] = DEFAULT_NOISE_DIMS,
    version: str = "0.0.1-test",
    metrics: dict[str, float] | None = None,
    forms: bool = True,
) -> Path:
    """Write root/name/{lifter.onnx, augmentor.onnx, manifest.json} (and a dilated lifter's
    step and whole-track forms unless `forms` is False); returns the folder."""
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    builders = {
        "linear": linear_lifter,
        "vpose": vpose_lifter,
        "rays_echo": rays_echo_lifter,
        "window_probe": window_probe_lifter,
        **{k: lambda s, a=a: dilated_toy.window_form(a, s) for k, a in DILATED.items()},
    }
    onnx.save(builders[lifter](seed), folder / "lifter.onnx")
    files = ["lifter.onnx"]
    lifter_forms = {}
    if lifter in DILATED and forms:
        anchor = DILATED[lifter]
        onnx.save(dilated_toy.step_form(anchor, seed), folder / "lifter_step.onnx")
        onnx.save(dilated_toy.whole_track_form(anchor, seed), folder / "lifter_track.onnx")
        files += ["lifter_step.onnx", "lifter_track.onnx"]
        lifter_forms = {
            "step": {
                "file": "lifter_step.onnx",
                "input": "keypoints",
                "fresh": "fresh",
                "output": "pose3d",
                "state": dilated_toy.step_state(anchor),
            },
            "whole_track": {"file": "lifter_track.onnx", "input": "keypoints", "output": "pose3d"},
        }
    augmentor = None
    if with_augmentor:
        onnx.save(toy_augmentor(noise_dims, seed + 1), folder / "augmentor.onnx")
        files.append("augmentor.onnx")
        augmentor = {
            "file": "augmentor.onnx",
            "noise_dims": dict(zip(("ba", "bl", "rt"), map(int, noise_dims), strict=True)),
            "ops": ["BA", "BL", "RT"],
        }
    camera_aware = lifter in CAMERA_AWARE_LIFTERS
    temporal = TEMPORAL_LIFTERS.get(lifter)
    manifest = {
        "format_version": 3 if temporal else 2 if camera_aware else 1,
        "name": name,
        "version": version,
        "default": default,
        "description": f"test bundle ({lifter} lifter) built by tests/support/bundles.py",
        "joints": {"format": "H36M_17", "names": list(JOINT_NAMES), "parents": list(PARENTS)},
        "lifter": {
            "file": "lifter.onnx",
            "input": "keypoints",
            "output": "pose3d",
            "normalization": "camera_rays" if camera_aware else "videopose3d_screen",
            "input_channels": ["x", "y", "visible"] if camera_aware else ["x", "y"],
            "units": "m",
            "root_relative": True,
            "architecture": {"kind": lifter},
            **(
                {
                    "temporal": {
                        "frames": temporal[0],
                        "anchor_frame": temporal[1],
                        "padding": "edge",
                    }
                }
                if temporal
                else {}
            ),
            **lifter_forms,
        },
        "augmentor": augmentor,
        "files": {
            f: {"sha256": _sha256(folder / f), "bytes": (folder / f).stat().st_size} for f in files
        },
        "metrics": metrics if metrics is not None else {"test.synthetic.mpjpe_mm": 1.5},
        "evaluation": {},
        "training": {"note": "synthetic weights, not trained"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder
