"""SIGTERM while the server is busy with every kind of call: unary lifts and augmentations,
lift streams still sending, bulk augmentation streams. New calls are refused at once, every
call that was in flight finishes with its full, correct answer, and the process exits 0."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort

from poseaug.v1 import poseaug_pb2, poseaug_pb2_grpc
from tests.support.bundles import make_bundle
from tests.support.metrics import metric, scrape
from tests.support.protos import array, lift_request, normalize_reference, tensor
from tests.support.server import running_server

UNARY_LIFTS = 10
# 2,500 ORT runs per lift at --max-batch 8: the first lifts are still running when the last arrives,
# even on a loaded host.
LIFT_POSES = 20000
STREAMS = 2
STREAM_MESSAGES = 20
AUGMENT_STREAMS = 2
AUGMENT_ROWS = 50 * 100


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_sigterm_under_load_finishes_every_call_in_flight(tmp_path: Path) -> None:
    make_bundle(tmp_path, "busy")
    lifter = ort.InferenceSession(
        str(tmp_path / "busy" / "lifter.onnx"), providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(8)
    lifts = rng.uniform(0, 1000, (UNARY_LIFTS, LIFT_POSES, 17, 2)).astype(np.float32)
    frames = rng.uniform(0, 1000, (STREAMS, STREAM_MESSAGES, 50, 17, 2)).astype(np.float32)
    sources = rng.normal(0, 0.3, (50, 17, 3)).astype(np.float32)
    sources -= sources[:, :1]
    terminated = threading.Event()
    flags = ("--max-batch", "8", "--max-queue-delay-us", "0", "--grace-s", "60")
    with running_server(tmp_path, *flags, check_exit=False) as srv:
        stub = srv.stub
        unary = [stub.Lift2Dto3D.future(lift_request(kp), timeout=120) for kp in lifts]
        augment = stub.Augment.future(
            poseaug_pb2.AugmentRequest(poses3d=tensor(sources), count=20, seed=3), timeout=120
        )

        def frames_of(s: int):
            for k in range(STREAM_MESSAGES):
                if k == STREAM_MESSAGES // 2:
                    terminated.wait(30)  # the second half is sent while the server drains
                yield poseaug_pb2.StreamLift2Dto3DRequest(
                    request=lift_request(frames[s, k], request_id=f"{s}:{k}")
                )
                time.sleep(0.01)

        streams = [stub.StreamLift2Dto3D(frames_of(s), timeout=120) for s in range(STREAMS)]
        bulk = [
            stub.StreamAugment(
                poseaug_pb2.StreamAugmentRequest(
                    request=poseaug_pb2.AugmentRequest(poses3d=tensor(sources), count=100, seed=s),
                    chunk_size=64,
                ),
                timeout=120,
            )
            for s in range(AUGMENT_STREAMS)
        ]
        stream_out: dict[int, list] = {}
        bulk_out: dict[int, list] = {}
        readers = [
            threading.Thread(target=lambda s=s: stream_out.__setitem__(s, list(streams[s])))
            for s in range(STREAMS)
        ] + [
            threading.Thread(target=lambda s=s: bulk_out.__setitem__(s, list(bulk[s])))
            for s in range(AUGMENT_STREAMS)
        ]
        for reader in readers:
            reader.start()

        # The lifts (thousands of ORT runs each) and the held-open streams are surely still in
        # flight once their handlers have started; the augmentations may already be done on a
        # busy machine, but each must have reached the server. (A call whose request bytes are
        # still arriving is not yet the server's: gRPC cancels those at shutdown, and one not
        # yet started is refused.)
        def handling(method: str) -> float:
            return metric(scrape(srv.metrics_url), "poseaug_inflight_requests", method=method)

        wait_for(
            lambda: (
                handling("Lift2Dto3D") == UNARY_LIFTS
                and handling("StreamLift2Dto3D") == STREAMS
                and handling("Augment") + augment.done() == 1
                and handling("StreamAugment") + len(bulk_out) == AUGMENT_STREAMS
            )
        )
        assert sum(f.done() for f in unary) < UNARY_LIFTS, "the lifts were still in flight"

        srv.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "shutting down" in srv.log())
        terminated.set()
        with srv.new_channel() as fresh:
            try:
                poseaug_pb2_grpc.PoseAugServiceStub(fresh).ListModels(
                    poseaug_pb2.ListModelsRequest(), timeout=5
                )
                raise AssertionError("a new call was accepted after SIGTERM")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE

        for reader in readers:
            reader.join(timeout=120)
        results = [array(f.result(timeout=120).pose3d) for f in unary]
        augmented = augment.result(timeout=120)
        assert srv.process.wait(timeout=90) == 0, srv.log()[-3000:]
        log = srv.log()
    assert "stopped" in log

    def lifted(kp: np.ndarray) -> np.ndarray:
        x = normalize_reference(kp, 1000, 1000)
        return lifter.run(["pose3d"], {"keypoints": x})[0]

    for kp, got in zip(lifts, results, strict=True):
        np.testing.assert_allclose(got, lifted(kp), atol=1e-5)
    for s in range(STREAMS):
        replies = [m.response for m in stream_out[s]]
        assert [r.request_id for r in replies] == [f"{s}:{k}" for k in range(STREAM_MESSAGES)]
        got = np.concatenate([array(r.pose3d) for r in replies])
        np.testing.assert_allclose(got, lifted(frames[s].reshape(-1, 17, 2)), atol=1e-5)
    assert array(augmented.poses3d).shape == (len(sources) * 20, 17, 3)
    for s in range(AUGMENT_STREAMS):
        offsets = [c.offset for c in bulk_out[s]]
        rows = [c.chunk.poses3d.shape[0] for c in bulk_out[s]]
        assert offsets == list(range(0, AUGMENT_ROWS, 64)) and sum(rows) == AUGMENT_ROWS
