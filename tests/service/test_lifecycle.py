"""Start-up checks of the model repository, SIGTERM drain and deadlines."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from poseaug.v1 import poseaug_pb2, poseaug_pb2_grpc
from tests.support.bundles import make_bundle
from tests.support.metrics import metric, scrape
from tests.support.protos import array, lift_request, normalize_reference
from tests.support.server import REPO, running_server, server_command


def run_cli(models: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        server_command(models, *flags), capture_output=True, text=True, timeout=60, cwd=REPO
    )


def test_empty_repository_exits_with_message(tmp_path: Path) -> None:
    result = run_cli(tmp_path)
    assert result.returncode != 0
    assert f"no model bundle found in {tmp_path}" in result.stderr


def corrupt(folder: Path) -> None:
    with (folder / "lifter.onnx").open("ab") as f:
        f.write(b"\0")


def test_sha256_mismatch_alone_is_refused(tmp_path: Path) -> None:
    corrupt(make_bundle(tmp_path, "bad"))
    result = run_cli(tmp_path)
    assert result.returncode != 0
    assert "sha256 mismatch for lifter.onnx" in result.stderr
    assert "bad" in result.stderr


def test_sha256_mismatch_refuses_only_that_bundle(tmp_path: Path) -> None:
    make_bundle(tmp_path, "good", default=True)
    corrupt(make_bundle(tmp_path, "bad", default=False))
    with running_server(tmp_path, metrics=False) as srv:
        names = [m.name for m in srv.stub.ListModels(poseaug_pb2.ListModelsRequest()).models]
        assert names == ["good"]
        assert "refusing model bundle bad" in srv.log()
        assert "sha256 mismatch for lifter.onnx" in srv.log()


def test_unknown_format_version_is_refused(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path, "future")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 4  # the next one this server does not know
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = run_cli(tmp_path)
    assert result.returncode != 0
    assert "unknown manifest format_version 4" in result.stderr


def test_default_model_flag(models_dir: Path) -> None:
    with running_server(models_dir, "--default-model", "beta", metrics=False) as srv:
        assert srv.stub.ListModels(poseaug_pb2.ListModelsRequest()).default_model == "beta"
        resp = srv.stub.Lift2Dto3D(lift_request(np.zeros((1, 17, 2))))
        assert resp.model == "beta"


def test_unknown_default_model_exits(models_dir: Path) -> None:
    result = run_cli(models_dir, "--default-model", "nope")
    assert result.returncode != 0
    assert "--default-model 'nope'" in result.stderr


def test_bad_flag_value_exits(models_dir: Path) -> None:
    result = run_cli(models_dir, "--max-batch", "0")
    assert result.returncode != 0
    assert "--max-batch" in result.stderr


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def test_sigterm_drains_in_flight_calls(models_dir: Path, lifter) -> None:
    # max-batch 4 makes 200k poses take 50k ORT runs: the call is in flight for a while.
    flags = ("--max-batch", "4", "--max-queue-delay-us", "0", "--grace-s", "60")
    kp = np.random.default_rng(1).random((200_000, 17, 2)).astype(np.float32) * 1000
    statuses: list[int] = []
    with running_server(models_dir, *flags) as srv:
        watch = health_pb2_grpc.HealthStub(srv.channel).Watch(
            health_pb2.HealthCheckRequest(service="poseaug.v1.PoseAugService")
        )

        def follow() -> None:
            try:
                for update in watch:
                    statuses.append(update.status)
                    if update.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                        watch.cancel()
            except grpc.RpcError:
                pass

        follower = threading.Thread(target=follow)
        follower.start()
        slow = srv.stub.Lift2Dto3D.future(lift_request(kp))
        wait_for(lambda: metric(scrape(srv.metrics_url), "poseaug_inflight_requests") >= 1)
        assert not slow.done()
        srv.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "shutting down" in srv.log())
        with srv.new_channel() as fresh, pytest.raises(grpc.RpcError) as refused:
            poseaug_pb2_grpc.PoseAugServiceStub(fresh).ListModels(
                poseaug_pb2.ListModelsRequest(), timeout=5
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        got = array(slow.result(timeout=120).pose3d)
        assert np.abs(got - lifter(normalize_reference(kp, 1000, 1000))).max() <= 1e-5
        follower.join(timeout=30)
        assert srv.process.wait(timeout=60) == 0
    assert statuses[0] == health_pb2.HealthCheckResponse.SERVING
    assert statuses[-1] == health_pb2.HealthCheckResponse.NOT_SERVING


def test_sigint_exits_zero(models_dir: Path) -> None:
    with running_server(models_dir, metrics=False, check_exit=False) as srv:
        srv.process.send_signal(signal.SIGINT)
        assert srv.process.wait(timeout=60) == 0


def test_expired_deadline_skips_remaining_work(models_dir: Path) -> None:
    flags = ("--max-batch", "4", "--max-queue-delay-us", "0")
    kp = np.zeros((200_000, 17, 2), np.float32)
    with running_server(models_dir, *flags) as srv:
        with pytest.raises(grpc.RpcError) as info:
            srv.stub.Lift2Dto3D(lift_request(kp), timeout=0.3)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        def lifted() -> float:
            return metric(scrape(srv.metrics_url), "poseaug_batch_size_sum", kind="lift")

        wait_for(lambda: metric(scrape(srv.metrics_url), "poseaug_queue_depth") == 0)
        done = lifted()
        time.sleep(0.3)
        assert lifted() == done < 200_000
        # and the server still answers
        srv.stub.Lift2Dto3D(lift_request(np.zeros((1, 17, 2))))


def test_providers_cuda_without_cuda_exits(models_dir: Path) -> None:
    probe = ort.InferenceSession(
        str(models_dir / "alpha" / "lifter.onnx"),
        providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
        if "CUDAExecutionProvider" in ort.get_available_providers()
        else ["CPUExecutionProvider"],
    )
    if "CUDAExecutionProvider" in probe.get_providers():
        pytest.skip("CUDA loads here; the refusal path needs a host without it")
    result = run_cli(models_dir, "--providers", "cuda")
    assert result.returncode != 0
    assert "CUDA" in result.stderr


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_event_loop_flag(models_dir: Path, lifter, loop: str) -> None:
    """Both event loops serve the same answers; the log says which one runs."""
    kp = np.random.default_rng(5).random((3, 17, 2)).astype(np.float32) * 1000
    with running_server(models_dir, "--event-loop", loop, metrics=False) as srv:
        got = array(srv.stub.Lift2Dto3D(lift_request(kp)).pose3d)
        log = srv.log()
    assert f"event loop: {loop}" in log
    assert np.abs(got - lifter(normalize_reference(kp, 1000, 1000))).max() <= 1e-5


def test_busy_host_session_is_logged_and_answers_alike(models_dir: Path, lifter) -> None:
    """On CPU the lifter gets a second, fewer-threads session for runs under load; concurrent
    callers (which run on it) get the in-process answers all the same."""
    rng = np.random.default_rng(6)
    inputs = [rng.random((1 + i % 3, 17, 2)).astype(np.float32) * 1000 for i in range(24)]
    with running_server(models_dir, "--intra-op-threads", "2", metrics=False) as srv:
        out: dict[int, np.ndarray] = {}

        def call(i: int) -> None:
            out[i] = array(srv.stub.Lift2Dto3D(lift_request(inputs[i])).pose3d)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        log = srv.log()
    assert "busy-host lifter session: 1 intra-op thread" in log
    for i, x in enumerate(inputs):
        assert np.abs(out[i] - lifter(normalize_reference(x, 1000, 1000))).max() <= 1e-5
