"""The temporal lifter's step and whole-track forms give its window model's poses (edge padding
at a track's ends included), in torch and as exported ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from poseaug_training.export.temporal_forms_onnx import (
    FORMS_TOLERANCE,
    STEP_FILE,
    WHOLE_TRACK_FILE,
    edge_padded,
    export_temporal_forms,
    step_through,
    window_poses,
)
from poseaug_training.models.temporal_forms import StepLifter, WholeTrackLifter
from poseaug_training.models.temporal_ray_lifter import TemporalRayLifter


def lifter(widths: tuple[int, ...], anchor: str, blocks: int, seed: int = 0) -> TemporalRayLifter:
    """A small temporal lifter whose every weight, tap and BatchNorm statistic matters."""
    torch.manual_seed(seed)
    model = TemporalRayLifter(channels=24, blocks=blocks, filter_widths=widths, anchor=anchor)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
            elif t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.1)
    return model.eval()


def track(frames: int, seed: int = 0) -> np.ndarray:
    """[frames, 17, 3] rays of a moving person with some joints missing."""
    rng = np.random.default_rng(seed)
    kp = rng.normal(0, 0.2, (frames, 17, 3)).astype(np.float32)
    kp[..., :2] += np.linspace(-0.3, 0.3, frames)[:, None, None]
    kp[..., 2] = rng.random((frames, 17)) > 0.1
    kp[..., :2] *= kp[..., 2:]
    return kp


CASES = [((3, 3, 3), "centre", 4), ((3, 3, 3), "last", 4), ((3, 3, 3, 3), "centre", 4)]
CASES += [((3, 5), "centre", 2), ((5, 3), "last", 1)]


@pytest.mark.parametrize(("widths", "anchor", "blocks"), CASES)
def test_both_forms_give_the_window_model_s_poses(
    widths: tuple[int, ...], anchor: str, blocks: int
) -> None:
    model = lifter(widths, anchor, blocks)
    step, whole = StepLifter(model), WholeTrackLifter(model)
    state = [{"channels": s.channels, "taps": s.taps} for s in step.state]

    def torch_step(*arrays: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in step(*(torch.from_numpy(a) for a in arrays))]

    for frames in (1, 5, model.receptive_field + 17):  # shorter and longer than the window
        x = track(frames, seed=frames)
        ref = window_poses(model, x)
        padded = edge_padded(x, model.anchor_frame, model.lookahead)
        with torch.no_grad():
            sequence = whole(torch.from_numpy(padded)[None])[0].numpy()
        np.testing.assert_allclose(sequence, ref, atol=1e-5)
        stepped = step_through(torch_step, state, x, model.lookahead)
        np.testing.assert_allclose(stepped, ref, atol=1e-5)
    # The state a step keeps: each looking-back layer's input at its taps, and (centred) the
    # answered frame's rotation, `lookahead` frames back.
    assert [s.taps[-1] for s in step.state if s.name != "rotation"] == [
        int(np.prod(widths[:i])) for i in range(len(widths))
    ]
    assert any(s.name == "rotation" for s in step.state) == (model.lookahead > 0)


def test_a_step_without_its_kept_inputs_answers_otherwise() -> None:
    """The check above can fail: the taps matter (kept inputs zeroed instead of fed)."""
    model = lifter((3, 3, 3), "last", 4)
    step = StepLifter(model)
    x = torch.from_numpy(track(30))
    ref = window_poses(model, x.numpy())[-1]
    zeros = [torch.zeros(1, len(s.taps), s.channels) for s in step.state]
    with torch.no_grad():
        out = step(x[-1:], torch.zeros(1, 1), *zeros)[0][0].numpy()
    assert np.abs(out - ref).max() > 1e-3


@pytest.mark.parametrize("anchor", ["centre", "last"])
def test_the_exported_forms_match_the_window_model_and_take_any_length(
    anchor: str, tmp_path: Path
) -> None:
    model = lifter((3, 3, 3), anchor, 4)
    entries, parity = export_temporal_forms(model, tmp_path, weights_fp16=False)
    assert max(parity.values()) <= FORMS_TOLERANCE
    assert (
        entries["step"]["file"] == STEP_FILE and entries["whole_track"]["file"] == WHOLE_TRACK_FILE
    )
    session = ort.InferenceSession(str(tmp_path / WHOLE_TRACK_FILE))
    for frames in (3, 64):
        x = track(frames, seed=1)
        padded = edge_padded(x, model.anchor_frame, model.lookahead)
        (out,) = session.run(None, {"keypoints": np.stack([padded, padded[::-1].copy()])})
        assert out.shape == (2, frames, 17, 3)
        np.testing.assert_allclose(out[0], window_poses(model, x), atol=FORMS_TOLERANCE)
    step = ort.InferenceSession(str(tmp_path / STEP_FILE))
    names = [i.name for i in step.get_inputs()]
    assert names == ["keypoints", "fresh"] + [s["input"] for s in entries["step"]["state"]]
    outputs = [o.name for o in step.get_outputs()]
    assert outputs == ["pose3d"] + [s["output"] for s in entries["step"]["state"]]
