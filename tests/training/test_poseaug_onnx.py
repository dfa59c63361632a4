"""ONNX export of the augmentor: names, dynamic batch and parity with torch on ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from poseaug_training.export.augmentor_onnx import (
    INPUT_NAMES,
    MAX_BYTES,
    OUTPUT_NAMES,
    augmentor_parity,
    export_augmentor,
    export_augmentor_from_state,
)
from poseaug_training.poseaug.augmentor import Augmentor
from tests.training.poseaug_helpers import random_poses, random_roots

OPS_CASES = [
    [1.0, 1.0, 1.0],
    [0.0, 0.0, 0.0],
    [1.0, 0.0, 0.0],
    [0.0, 1.0, 0.0],
    [0.0, 0.0, 1.0],
    [1.0, 1.0, 0.0],
]


def _trained_like_augmentor() -> Augmentor:
    """An augmentor whose BatchNorm statistics are not the defaults (as after training)."""
    torch.manual_seed(0)
    aug = Augmentor().train()
    with torch.no_grad():
        for seed in range(3):
            pose, root = random_poses(64, seed), random_roots(64, seed)
            aug(pose, root, *aug.sample_noise(64))
    return aug.train()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Augmentor, Path]:
    aug = _trained_like_augmentor()
    path = export_augmentor(aug, tmp_path_factory.mktemp("onnx") / "augmentor.onnx", batch=4)
    assert aug.training  # the caller's module is left as it was
    return aug, path


def _session(path: Path) -> ort.InferenceSession:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_providers() == ["CPUExecutionProvider"]
    return sess


def _inputs(aug: Augmentor, n: int, ops: list[float], seed: int) -> dict[str, np.ndarray]:
    noise = aug.sample_noise(n, generator=torch.Generator().manual_seed(seed), device="cpu")
    values = (random_poses(n, seed), random_roots(n, seed), *noise, torch.tensor(ops))
    return {name: v.numpy() for name, v in zip(INPUT_NAMES, values, strict=True)}


def _torch_outputs(aug: Augmentor, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    was_training = aug.training
    aug.eval()
    with torch.no_grad():
        out = aug(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES))
    aug.train(was_training)
    return [
        t.numpy()
        for t in (
            out.pose_rt,
            out.bone_angle_offsets,
            out.bone_length_ratios,
            out.rotation,
            out.translation,
        )
    ]


def test_graph_names_dynamic_batch_and_size(exported):
    _, path = exported
    assert path.stat().st_size < MAX_BYTES
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES)
    for value in list(model.graph.input[:-1]) + list(model.graph.output):
        dim0 = value.type.tensor_type.shape.dim[0]
        assert dim0.dim_param and not dim0.dim_value, value.name
    ops_dims = model.graph.input[-1].type.tensor_type.shape.dim
    assert [d.dim_value for d in ops_dims] == [3]


@pytest.mark.parametrize("ops", OPS_CASES)
def test_parity_with_torch_at_another_batch_size(exported, ops):
    aug, path = exported
    sess = _session(path)
    feeds = _inputs(aug, 7, ops, seed=5)
    got = sess.run(list(OUTPUT_NAMES), feeds)
    want = _torch_outputs(aug, feeds)
    for name, g, w in zip(OUTPUT_NAMES, got, want, strict=True):
        assert g.shape == w.shape, name
        assert g.dtype == np.float32, name
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=0, err_msg=name)


def test_ops_off_in_onnx_is_identity(exported):
    aug, path = exported
    feeds = _inputs(aug, 5, [0.0, 0.0, 0.0], seed=6)
    pose_aug, offsets, ratios, rotation, translation = _session(path).run(None, feeds)
    np.testing.assert_allclose(pose_aug, feeds["pose3d"] + feeds["root"][:, None], atol=1e-6)
    assert not offsets.any() and not rotation.any()
    np.testing.assert_array_equal(ratios, np.ones_like(ratios))
    np.testing.assert_array_equal(translation, feeds["root"])


def test_batch_of_one_runs(exported):
    aug, path = exported
    feeds = _inputs(aug, 1, [1.0, 1.0, 1.0], seed=7)
    got = _session(path).run(None, feeds)
    np.testing.assert_allclose(got[0], _torch_outputs(aug, feeds)[0], atol=1e-4, rtol=0)


def test_dynamo_exporter_gives_the_same_graph_behaviour(tmp_path):
    aug = _trained_like_augmentor()
    path = export_augmentor(aug, tmp_path / "augmentor.onnx", opset=18, dynamo=True)
    sess = _session(path)
    assert [i.name for i in sess.get_inputs()] == list(INPUT_NAMES)
    assert [o.name for o in sess.get_outputs()] == list(OUTPUT_NAMES)
    for ops in (OPS_CASES[0], OPS_CASES[2]):
        feeds = _inputs(aug, 7, ops, seed=8)
        for name, g, w in zip(
            OUTPUT_NAMES, sess.run(None, feeds), _torch_outputs(aug, feeds), strict=True
        ):
            np.testing.assert_allclose(g, w, atol=1e-4, rtol=0, err_msg=name)


def test_export_from_checkpoint_state_gives_manifest_entry(tmp_path):
    aug = _trained_like_augmentor()
    state = {"extra": {"augmentor": aug.state_dict()}}
    entry = export_augmentor_from_state(state, tmp_path / "augmentor.onnx")
    assert entry["file"] == "augmentor.onnx"
    assert entry["noise_dims"] == {"ba": 48, "bl": 48, "rt": 48}
    assert entry["ops"] == ["BA", "BL", "RT"]
    assert 0.0 <= entry["parity"]["augmentor"] <= 1e-4
    feeds = _inputs(aug, 3, [1.0, 1.0, 1.0], seed=9)
    got = _session(tmp_path / "augmentor.onnx").run(None, feeds)
    np.testing.assert_allclose(got[0], _torch_outputs(aug, feeds)[0], atol=1e-4, rtol=0)
    assert augmentor_parity(aug, tmp_path / "augmentor.onnx", n=5) <= 1e-4
