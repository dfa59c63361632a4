"""Lift2Dto3D and StreamLift2Dto3D against in-process ONNX Runtime on the same input."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest

from poseaug.v1 import poseaug_pb2
from tests.service.conftest import Lifter
from tests.support.protos import array, lift_request, normalize_reference, tensor

TOL = 1e-5
COCO = poseaug_pb2.KEYPOINT_FORMAT_COCO_17
MPII = poseaug_pb2.KEYPOINT_FORMAT_MPII_16


def pixels(n: int, k: int = 17, seed: int = 0, w: int = 1000, h: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, k, 2)) * [w, h]).astype(np.float32)


@pytest.mark.parametrize("n", [1, 64, 65, 1000])
def test_lift_matches_in_process_onnxruntime(server, lifter: Lifter, n: int) -> None:
    kp = pixels(n, seed=n, w=1920, h=1080)
    resp = server.stub.Lift2Dto3D(lift_request(kp, 1920, 1080, request_id=f"parity-{n}"))
    got = array(resp.pose3d)
    expected = lifter(normalize_reference(kp, 1920, 1080))
    assert got.shape == (n, 17, 3)
    assert np.abs(got - expected).max() <= TOL
    assert resp.request_id == f"parity-{n}"
    assert resp.model == "alpha"
    assert resp.joint_names[0] == "hip" and len(resp.joint_names) == 17
    assert not resp.HasField("pose_scores")


def test_per_pose_image_sizes(server, lifter: Lifter) -> None:
    n = 6
    sizes = [(640, 480), (1920, 1080), (1000, 1002), (320, 240), (4000, 3000), (1080, 1920)]
    w = np.array([s[0] for s in sizes])
    h = np.array([s[1] for s in sizes])
    kp = pixels(n, seed=3) * np.stack([w, h], 1)[:, None, :] / 1000
    req = poseaug_pb2.Lift2Dto3DRequest(
        keypoints=tensor(kp),
        image_sizes=[poseaug_pb2.ImageSize(width=a, height=b) for a, b in sizes],
    )
    got = array(server.stub.Lift2Dto3D(req).pose3d)
    expected = lifter(normalize_reference(kp, w, h))
    assert np.abs(got - expected).max() <= TOL
    # Same pixels under one shared image size give a different answer: sizes are per pose.
    shared = array(server.stub.Lift2Dto3D(lift_request(kp, 640, 480)).pose3d)
    assert np.abs(shared[1:] - got[1:]).max() > 1e-3


def coco_to_h36m_reference(c: np.ndarray) -> np.ndarray:
    """Written joint by joint from the proto's COCO comment (independent of the server)."""
    nose, l_eye, r_eye = c[:, 0], c[:, 1], c[:, 2]
    l_sh, r_sh, l_el, r_el, l_wr, r_wr = c[:, 5], c[:, 6], c[:, 7], c[:, 8], c[:, 9], c[:, 10]
    l_hip, r_hip, l_kn, r_kn, l_an, r_an = (
        c[:, 11],
        c[:, 12],
        c[:, 13],
        c[:, 14],
        c[:, 15],
        c[:, 16],
    )
    pelvis = (l_hip + r_hip) / 2
    thorax = (l_sh + r_sh) / 2
    joints = [
        pelvis, r_hip, r_kn, r_an, l_hip, l_kn, l_an, (pelvis + thorax) / 2, thorax, nose,
        (l_eye + r_eye) / 2, l_sh, l_el, l_wr, r_sh, r_el, r_wr,
    ]  # fmt: skip
    return np.stack(joints, axis=1)


def mpii_to_h36m_reference(m: np.ndarray) -> np.ndarray:
    """Written joint by joint from the proto's MPII comment."""
    r_an, r_kn, r_hip, l_hip, l_kn, l_an = m[:, 0], m[:, 1], m[:, 2], m[:, 3], m[:, 4], m[:, 5]
    pelvis, thorax, neck, head = m[:, 6], m[:, 7], m[:, 8], m[:, 9]
    r_wr, r_el, r_sh, l_sh, l_el, l_wr = m[:, 10], m[:, 11], m[:, 12], m[:, 13], m[:, 14], m[:, 15]
    joints = [
        pelvis, r_hip, r_kn, r_an, l_hip, l_kn, l_an, (pelvis + thorax) / 2, thorax, neck, head,
        l_sh, l_el, l_wr, r_sh, r_el, r_wr,
    ]  # fmt: skip
    return np.stack(joints, axis=1)


@pytest.mark.parametrize(
    ("fmt", "k", "mapping"),
    [(COCO, 17, coco_to_h36m_reference), (MPII, 16, mpii_to_h36m_reference)],
)
def test_keypoint_formats_are_mapped_to_h36m(server, lifter: Lifter, fmt, k, mapping) -> None:
    kp = pixels(40, k=k, seed=11)
    resp = server.stub.Lift2Dto3D(lift_request(kp, 1000, 1000, format=fmt))
    expected = lifter(normalize_reference(mapping(kp.astype(np.float64)), 1000, 1000))
    assert np.abs(array(resp.pose3d) - expected).max() <= TOL
    # The mapping matters: the same numbers read as H36M give another answer.
    if k == 17:
        as_h36m = array(server.stub.Lift2Dto3D(lift_request(kp, 1000, 1000)).pose3d)
        assert np.abs(as_h36m - expected).max() > 1e-3


@pytest.mark.parametrize(
    ("fmt", "k", "mapping"),
    [
        (poseaug_pb2.KEYPOINT_FORMAT_H36M_17, 17, lambda s: s),
        (COCO, 17, coco_to_h36m_reference),
        (MPII, 16, mpii_to_h36m_reference),
    ],
)
def test_scores_become_pose_scores(server, fmt, k, mapping) -> None:
    rng = np.random.default_rng(5)
    scores = rng.random((9, k)).astype(np.float32)
    req = lift_request(pixels(9, k=k), format=fmt, scores=tensor(scores))
    resp = server.stub.Lift2Dto3D(req)
    expected = mapping(scores[..., None].astype(np.float64))[..., 0].mean(axis=1)
    assert np.abs(array(resp.pose_scores) - expected).max() <= 1e-6


def test_model_chosen_by_name(server, models_dir) -> None:
    kp = pixels(3, seed=2)
    beta = Lifter(models_dir / "beta" / "lifter.onnx")
    resp = server.stub.Lift2Dto3D(lift_request(kp, model="beta"))
    assert resp.model == "beta" and resp.model_version == "2.0.0"
    expected = beta(normalize_reference(kp, 1000, 1000))
    assert np.abs(array(resp.pose3d) - expected).max() <= TOL


def test_output_root_is_origin(server) -> None:
    got = array(server.stub.Lift2Dto3D(lift_request(pixels(20))).pose3d)
    assert np.all(got[:, 0] == 0)


def test_stream_lift_answers_in_order(server, lifter: Lifter) -> None:
    sizes = [1, 300, 2, 64, 65, 17, 128, 1, 500, 3]
    batches = [pixels(n, seed=100 + i) for i, n in enumerate(sizes)]
    messages = [
        poseaug_pb2.StreamLift2Dto3DRequest(request=lift_request(b, request_id=f"m{i}"))
        for i, b in enumerate(batches)
    ]
    responses = list(server.stub.StreamLift2Dto3D(iter(messages)))
    assert [r.response.request_id for r in responses] == [f"m{i}" for i in range(len(sizes))]
    for batch, r in zip(batches, responses, strict=True):
        expected = lifter(normalize_reference(batch, 1000, 1000))
        assert np.abs(array(r.response.pose3d) - expected).max() <= TOL


def test_stream_lift_ping_pong(server, lifter: Lifter) -> None:
    """A caller that waits for each answer before sending the next message (video)."""
    outbox: queue.Queue = queue.Queue()

    def requests():
        while (item := outbox.get()) is not None:
            yield item

    stream = server.stub.StreamLift2Dto3D(requests(), timeout=30)
    for i in range(5):
        batch = pixels(4, seed=i)
        outbox.put(poseaug_pb2.StreamLift2Dto3DRequest(request=lift_request(batch)))
        got = array(next(stream).response.pose3d)
        assert np.abs(got - lifter(normalize_reference(batch, 1000, 1000))).max() <= TOL
    outbox.put(None)
    assert list(stream) == []


def test_hundred_concurrent_callers_get_their_own_poses(server, lifter: Lifter) -> None:
    callers = 100
    barrier = threading.Barrier(callers)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    inputs = {i: pixels(1 + i % 7, seed=1000 + i) for i in range(callers)}

    def call(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                resp = server.stub.Lift2Dto3D(lift_request(inputs[i], request_id=str(i)))
                assert resp.request_id == str(i)
                results[i] = array(resp.pose3d)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    for i, kp in inputs.items():
        expected = lifter(normalize_reference(kp, 1000, 1000))
        assert results[i].shape == expected.shape
        assert np.abs(results[i] - expected).max() <= TOL, f"caller {i} got another's poses"
