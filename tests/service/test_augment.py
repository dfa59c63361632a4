"""Augment and StreamAugment: reference parity, determinism, ops, streaming, bounded memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from poseaug.v1 import poseaug_pb2
from poseaug_service.noise import standard_normal
from tests.support.bundles import DEFAULT_NOISE_DIMS
from tests.support.protos import array, tensor

BA, BL, RT = poseaug_pb2.AUGMENT_OP_BA, poseaug_pb2.AUGMENT_OP_BL, poseaug_pb2.AUGMENT_OP_RT
OUTPUTS = ("pose3d_aug", "bone_angle_offsets", "bone_length_ratios", "rotation", "translation")
DEFAULT_CAMERA = dict(fx=1145.0, fy=1144.0, cx=512.5, cy=515.5, k=(0, 0, 0), p=(0, 0))
H36M_LIKE = dict(
    fx=1145.04,
    fy=1143.78,
    cx=512.54,
    cy=515.45,
    k=(-0.207, 0.247, -0.003),
    p=(-0.0009, -0.0012),
)


def source_poses(n: int, seed: int = 0, relative_every: int = 2) -> np.ndarray:
    """Poses about 1.7 m tall; every `relative_every`-th is root-relative, others absolute."""
    rng = np.random.default_rng(seed)
    poses = rng.normal(0, 0.3, (n, 17, 3)).astype(np.float32)
    poses[:, 0] = 0.0
    absolute = np.arange(n) % relative_every != 0
    poses[absolute] += rng.uniform([-1, -1, 3], [1, 1, 7], (int(absolute.sum()), 1, 3)).astype(
        np.float32
    )
    return poses


def project_reference(points: np.ndarray, fx, fy, cx, cy, k, p) -> np.ndarray:
    """The Human3.6M formula from ../shared/data/h36m/README.md, point by point in float64."""
    xc = points.astype(np.float64)
    x, y = xc[..., 0] / xc[..., 2], xc[..., 1] / xc[..., 2]
    r2 = x * x + y * y
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tan = p[1] * x + p[0] * y
    xd = x * (radial + tan) + p[1] * r2
    yd = y * (radial + tan) + p[0] * r2
    return np.stack([fx * xd + cx, fy * yd + cy], axis=-1)


def reference(
    augmentor: ort.InferenceSession, poses: np.ndarray, count: int, seed: int, ops: set[int]
) -> dict[str, np.ndarray]:
    """What the server must compute: root handling, row layout, noise, augmentor run."""
    root = poses[:, 0].astype(np.float64)
    relative = ~root.any(axis=1)
    root[relative] = (0.0, 0.0, 5.0)
    src = np.arange(len(poses) * count) // count
    on = [BA in ops, BL in ops, RT in ops]
    noise = [
        standard_normal(seed, op, 0, len(src), d) if on[op] else np.zeros((len(src), d), "f4")
        for op, d in enumerate(DEFAULT_NOISE_DIMS)
    ]
    feeds = {
        "pose3d": (poses - poses[:, :1])[src].astype(np.float32),
        "root": root[src].astype(np.float32),
        "noise_ba": noise[0],
        "noise_bl": noise[1],
        "noise_rt": noise[2],
        "ops": np.array(on, np.float32),
    }
    return dict(zip(OUTPUTS, augmentor.run(list(OUTPUTS), feeds), strict=True))


def camera_message(c: dict) -> poseaug_pb2.CameraIntrinsics:
    return poseaug_pb2.CameraIntrinsics(
        fx=c["fx"],
        fy=c["fy"],
        cx=c["cx"],
        cy=c["cy"],
        width=1000,
        height=1002,
        radial=c["k"],
        tangential=c["p"],
    )


# The augmentor's own output, untouched: its translation and RT unbounded (the reference's).
AS_LEARNED = dict(placement=poseaug_pb2.PLACEMENT_LEARNED, max_tilt_deg=180.0)


def augment(server, poses, **fields) -> poseaug_pb2.AugmentResponse:
    return server.stub.Augment(poseaug_pb2.AugmentRequest(poses3d=tensor(poses), **fields))


def test_augment_matches_in_process_reference(server, augmentor) -> None:
    poses = source_poses(7, seed=1)
    resp = augment(
        server,
        poses,
        count=3,
        seed=42,
        camera=camera_message(H36M_LIKE),
        request_id="a",
        **AS_LEARNED,
    )
    ref = reference(augmentor, poses, 3, 42, {BA, BL, RT})
    assert resp.request_id == "a" and resp.model == "alpha"
    got = array(resp.poses3d)
    assert got.shape == (21, 17, 3)
    assert np.abs(got - ref["pose3d_aug"]).max() <= 1e-5
    params = resp.parameters
    assert np.abs(array(params.bone_angle_offsets) - ref["bone_angle_offsets"]).max() <= 1e-6
    assert np.abs(array(params.bone_length_ratios) - ref["bone_length_ratios"]).max() <= 1e-6
    assert np.abs(array(params.rotation) - ref["rotation"]).max() <= 1e-6
    assert np.abs(array(params.translation) - ref["translation"]).max() <= 1e-6
    expected_2d = project_reference(got, **H36M_LIKE)
    assert np.abs(array(resp.keypoints2d) - expected_2d).max() <= 1e-3


def test_default_camera_projection(server) -> None:
    resp = augment(server, source_poses(4, seed=2), seed=1)
    expected = project_reference(array(resp.poses3d), **DEFAULT_CAMERA)
    assert np.abs(array(resp.keypoints2d) - expected).max() <= 1e-3


def test_rows_are_source_major(server) -> None:
    """Row i * count + j is augmentation j of source i (BL only keeps each source's shape)."""
    poses = source_poses(3, seed=3, relative_every=1)
    resp = augment(server, poses, count=4, seed=9, ops=[BL], **AS_LEARNED)
    got = array(resp.poses3d).reshape(3, 4, 17, 3)
    for i in range(3):
        centred = got[i] - got[i, :, :1]
        for j in range(4):
            scale = np.linalg.norm(centred[j]) / np.linalg.norm(poses[i])
            assert np.abs(centred[j] - scale * poses[i]).max() <= 1e-5
    # and the 4 augmentations of one source differ from each other
    assert np.ptp(array(resp.parameters.bone_length_ratios).reshape(3, 4, 16), axis=1).min() > 0


def test_count_zero_means_one(server) -> None:
    resp = augment(server, source_poses(5), count=0, seed=3)
    assert list(resp.poses3d.shape) == [5, 17, 3]


def test_same_seed_same_output_other_seed_differs(server) -> None:
    poses = source_poses(6, seed=4)
    first = augment(server, poses, count=2, seed=123)
    again = augment(server, poses, count=2, seed=123)
    other = augment(server, poses, count=2, seed=124)
    assert first.poses3d.data == again.poses3d.data
    assert first.parameters == again.parameters
    assert np.abs(array(first.poses3d) - array(other.poses3d)).max() > 1e-3
    big_seed = augment(server, poses, count=2, seed=2**63 - 1)
    assert np.abs(array(big_seed.poses3d) - array(first.poses3d)).max() > 1e-3


@pytest.mark.parametrize(
    "ops",
    [[BA], [BL], [RT], [BA, BL], [BL, RT], [BA, RT], [RT, BA, BL]],
    ids=lambda ops: "+".join(poseaug_pb2.AugmentOp.Name(o)[11:] for o in ops),
)
def test_ops_subset(server, augmentor, ops: list[int]) -> None:
    poses = source_poses(4, seed=5)
    resp = augment(server, poses, count=2, seed=77, ops=ops, **AS_LEARNED)
    params = resp.parameters
    assert params.HasField("bone_angle_offsets") == (BA in ops)
    assert params.HasField("bone_length_ratios") == (BL in ops)
    assert params.HasField("rotation") == (RT in ops)
    # where each pose is, whatever the ops (the placement's truth)
    assert np.array_equal(array(params.translation), array(resp.poses3d)[:, 0])
    ref = reference(augmentor, poses, 2, 77, set(ops))
    assert np.abs(array(resp.poses3d) - ref["pose3d_aug"]).max() <= 1e-5
    if BA not in ops:
        assert not ref["bone_angle_offsets"].any()
    else:
        assert np.abs(array(params.bone_angle_offsets)).max() > 0
    if BL in ops:
        assert np.abs(array(params.bone_length_ratios) - 1).max() > 0
    if RT not in ops:
        # without RT the output root stays where the source root was (5 m ahead if relative)
        roots = np.repeat(poses[:, 0], 2, axis=0)
        roots[~roots.any(axis=1)] = (0.0, 0.0, 5.0)
        assert np.abs(array(resp.poses3d)[:, 0] - roots).max() <= 1e-5
    else:
        assert np.abs(array(params.rotation)).max() > 0


def test_empty_ops_means_all(server) -> None:
    poses = source_poses(3, seed=6)
    every = augment(server, poses, seed=5, ops=[BA, BL, RT])
    empty = augment(server, poses, seed=5)
    assert every.poses3d.data == empty.poses3d.data
    assert every.parameters == empty.parameters


def concat_stream(chunks, name: str) -> np.ndarray:
    return np.concatenate([array(getattr(c.chunk, name)) for c in chunks])


@pytest.mark.parametrize("chunk_size", [1, 7, 100, 0])
def test_stream_rows_equal_unary_rows(server, chunk_size: int) -> None:
    poses = source_poses(9, seed=7)
    request = poseaug_pb2.AugmentRequest(
        poses3d=tensor(poses), count=5, seed=31337, camera=camera_message(H36M_LIKE), request_id="s"
    )
    unary = server.stub.Augment(request)
    chunks = list(
        server.stub.StreamAugment(
            poseaug_pb2.StreamAugmentRequest(request=request, chunk_size=chunk_size)
        )
    )
    step = chunk_size or 4096
    assert [c.offset for c in chunks] == list(range(0, 45, step))
    assert all(c.chunk.request_id == "s" for c in chunks)
    for name in ("poses3d", "keypoints2d"):
        assert concat_stream(chunks, name).tobytes() == array(getattr(unary, name)).tobytes()
    for name in ("bone_angle_offsets", "bone_length_ratios", "rotation", "translation"):
        streamed = np.concatenate([array(getattr(c.chunk.parameters, name)) for c in chunks])
        assert streamed.tobytes() == array(getattr(unary.parameters, name)).tobytes()


def test_noise_is_a_pure_function_of_row() -> None:
    whole = standard_normal(11, 2, 0, 1000, 13)
    parts = [standard_normal(11, 2, a, b - a, 13) for a, b in [(0, 1), (1, 333), (333, 1000)]]
    assert np.array_equal(np.concatenate(parts), whole)
    assert abs(whole.mean()) < 0.05 and abs(whole.std() - 1) < 0.05
    assert not np.array_equal(standard_normal(11, 1, 0, 1000, 13), whole)  # per op
    assert not np.array_equal(standard_normal(12, 2, 0, 1000, 13), whole)  # per seed


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_stream_of_200k_poses_runs_in_bounded_memory(server) -> None:
    poses = source_poses(200, seed=8)

    def run(count: int) -> int:
        request = poseaug_pb2.StreamAugmentRequest(
            request=poseaug_pb2.AugmentRequest(poses3d=tensor(poses), count=count, seed=1),
            chunk_size=2000,
        )
        rows = 0
        for chunk in server.stub.StreamAugment(request):
            assert chunk.offset == rows
            rows += chunk.chunk.poses3d.shape[0]
        return rows

    assert run(100) == 20_000
    small = peak_rss_mb(server.process.pid)
    assert run(1000) == 200_000
    big = peak_rss_mb(server.process.pid)
    # Holding 200k output rows would take >120 MB of responses alone (and noise on top).
    assert big - small < 40, f"peak RSS grew {big - small:.0f} MB for a 10x longer stream"
