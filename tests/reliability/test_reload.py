"""Hot reload of the model repository: a new bundle version dropped into --models replaces the
old one without a failed request, in-flight requests finish on the version they started on,
a broken version never replaces a working one, and SIGHUP rescans on demand."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort

from poseaug.v1 import poseaug_pb2
from tests.reliability.traffic import LiftTraffic, distinct_input
from tests.support.bundles import make_bundle
from tests.support.metrics import metric, scrape
from tests.support.protos import lift_request, normalize_reference
from tests.support.server import running_server


def reference(lifter_bytes: bytes):
    session = ort.InferenceSession(lifter_bytes, providers=["CPUExecutionProvider"])

    def lift(pixels: np.ndarray) -> np.ndarray:
        x = normalize_reference(pixels, 1000, 1000)
        return session.run(["pose3d"], {"keypoints": x})[0]

    return lift


def eventually(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout} s"
        time.sleep(0.05)


def version_of(srv, model: str = "") -> str:
    request = poseaug_pb2.GetModelInfoRequest(model=model)
    return srv.stub.GetModelInfo(request, timeout=10).model.version


def test_new_version_replaces_the_old_under_traffic(tmp_path: Path) -> None:
    models = tmp_path / "models"
    make_bundle(models, "live", seed=0, version="1.0.0")
    lifters = {"1.0.0": reference((models / "live" / "lifter.onnx").read_bytes())}
    flags = ("--reload-interval-s", "0.1", "--max-batch", "16", "--max-queue-delay-us", "1000")
    with running_server(models, *flags) as srv:
        with LiftTraffic(srv.address, callers=6) as traffic:
            traffic.wait_for(lambda: traffic.count("1.0.0") >= 60)
            # Copied in place file by file, the way a careless deploy would: a scan between
            # the copies sees a lifter that does not match the manifest and keeps 1.0.0.
            staged = make_bundle(models / ".stage", "live", seed=5, version="2.0.0")
            lifters["2.0.0"] = reference((staged / "lifter.onnx").read_bytes())
            shutil.copy(staged / "lifter.onnx", models / "live" / "lifter.onnx")
            eventually(lambda: "not loading model bundle live" in srv.log(), what="a failed scan")
            assert version_of(srv) == "1.0.0"
            answered = traffic.count()
            traffic.wait_for(lambda: traffic.count() > answered + 20)
            for name in ("augmentor.onnx", "manifest.json"):
                shutil.copy(staged / name, models / "live" / name)
            eventually(lambda: version_of(srv) == "2.0.0", what="GetModelInfo 2.0.0")
            switched = traffic.count()
            traffic.wait_for(lambda: traffic.count("2.0.0") >= 60 and traffic.count() > switched)
        text = scrape(srv.metrics_url)
        log = srv.log()
    assert traffic.failures == [], traffic.failures[:5]
    by_version = {v: [a for a in traffic.answers if a.model_version == v] for v in lifters}
    assert set(a.model_version for a in traffic.answers) == set(lifters)
    for version, answers in by_version.items():
        # each answer is its own request's input lifted by exactly the version it names
        inputs = np.concatenate([distinct_input(a.index) for a in answers])
        outputs = np.concatenate([a.pose3d for a in answers])
        np.testing.assert_allclose(outputs, lifters[version](inputs), atol=1e-5)
        assert all(a.request_id == f"traffic-{a.index}" for a in answers)
    indices = [a.index for a in traffic.answers]
    assert len(indices) == len(set(indices)), "no request answered twice"
    assert "now serving live version 2.0.0" in log
    assert metric(text, "poseaug_model_info", model="live", version="2.0.0") == 1
    assert metric(text, "poseaug_model_info", version="1.0.0") == 0
    assert metric(text, "poseaug_reloads_total", result="loaded") >= 1
    assert metric(text, "poseaug_reloads_total", result="failed") >= 1


def swap_link(link: Path, target: Path) -> None:
    """Point `link` at `target` atomically (how volume syncs and `ln -sfn` + `mv -T` do it)."""
    tmp = link.with_name(f".{link.name}.new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def test_sighup_rescans_and_a_broken_version_never_replaces_a_working_one(tmp_path: Path) -> None:
    models = tmp_path / "models"
    versions = models / ".versions"  # hidden: not a bundle of the repository itself
    make_bundle(versions, "a-1", seed=0, version="1")
    swap_link(models / "a", versions / "a-1")
    kp = distinct_input(1)
    with running_server(models, "--reload-interval-s", "0") as srv:
        assert version_of(srv) == "1"

        def hangup_and_wait_for(text: str) -> None:
            before = srv.log().count(text)
            srv.process.send_signal(signal.SIGHUP)
            eventually(lambda: srv.log().count(text) > before, what=repr(text))

        # a version whose lifter does not match its manifest: refused, "1" keeps serving
        broken = make_bundle(versions, "a-2", seed=3, version="2")
        with (broken / "lifter.onnx").open("r+b") as f:
            f.seek(-8, os.SEEK_END)
            f.write(b"\x00" * 8)
        swap_link(models / "a", broken)
        hangup_and_wait_for("not loading model bundle a")
        assert version_of(srv) == "1"
        assert srv.stub.Lift2Dto3D(lift_request(kp), timeout=10).model_version == "1"
        assert metric(scrape(srv.metrics_url), "poseaug_reloads_total", result="failed") == 1

        # a good version behind the same link
        make_bundle(versions, "a-3", seed=4, version="3")
        swap_link(models / "a", versions / "a-3")
        hangup_and_wait_for("now serving a version 3")
        reply = srv.stub.Lift2Dto3D(lift_request(kp), timeout=10)
        assert reply.model_version == "3"
        expected = reference((versions / "a-3" / "lifter.onnx").read_bytes())(kp)
        got = np.frombuffer(reply.pose3d.data, "<f4").reshape(expected.shape)
        np.testing.assert_allclose(got, expected, atol=1e-5)

        # bundles that appear and disappear
        make_bundle(models, "b", default=False, seed=6, version="9")
        hangup_and_wait_for("now serving b version 9")
        listed = srv.stub.ListModels(poseaug_pb2.ListModelsRequest(), timeout=10)
        assert sorted(m.name for m in listed.models) == ["a", "b"]
        assert listed.default_model == "a"
        for path in (models / "b").iterdir():
            path.unlink()
        (models / "b").rmdir()
        hangup_and_wait_for("model bundle b was removed")
        listed = srv.stub.ListModels(poseaug_pb2.ListModelsRequest(), timeout=10)
        assert [m.name for m in listed.models] == ["a"]
        try:
            srv.stub.Lift2Dto3D(lift_request(kp, model="b"), timeout=10)
            raise AssertionError("a removed bundle still answers")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "unknown model 'b'" in error.details()
