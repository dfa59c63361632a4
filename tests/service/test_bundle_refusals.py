"""Broken bundles are refused with their reason, listed as refused, and never break the good
bundles served beside them (issue 12, item 4): manifests that break the schema, noise dims
that do not match the augmentor's graph, files that lead out of the bundle folder."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest

from poseaug.v1 import poseaug_pb2
from tests.support.bundles import make_bundle
from tests.support.metrics import metric, scrape
from tests.support.protos import lift_request, tensor
from tests.support.server import running_server


def edit(folder: Path, change: Callable[[dict], None]) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _set(path: str, value) -> Callable[[dict], None]:
    def change(manifest: dict) -> None:
        *parents, last = path.split(".")
        target = manifest
        for key in parents:
            target = target[key]
        target[last] = value

    return change


# bundle name -> (change to its manifest, words its refusal reason must hold)
BROKEN: dict[str, tuple[Callable[[dict], None], str]] = {
    "metrics-list": (_set("metrics", [1, 2, 3]), "metrics"),
    "metrics-text": (_set("metrics", {"h36m.gt2d.mpjpe_mm": "41"}), "metrics"),
    "joints-list": (_set("joints", ["hip"]), "joints"),
    "parents-text": (_set("joints.parents", "[-1, 0]"), "joints.parents"),
    "names-short": (_set("joints.names", ["hip"]), "joints.names"),
    "noise-47": (_set("augmentor.noise_dims.ba", 47), "noise_ba"),
    "noise-huge": (_set("augmentor.noise_dims.ba", 10**12), "augmentor.noise_dims.ba"),
    "noise-text": (_set("augmentor.noise_dims.rt", "8"), "augmentor.noise_dims.rt"),
    "version-number": (_set("version", 2), "version"),
    "default-text": (_set("default", "yes"), "default"),
    "sha-short": (lambda m: m["files"].update({"lifter.onnx": {"sha256": "abc"}}), "sha256"),
}


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixed-models")
    make_bundle(root, "good", default=True)
    make_bundle(root, "rays", default=False, with_augmentor=False, lifter="rays_echo")
    for name, (change, _) in BROKEN.items():
        edit(make_bundle(root, name, default=False), change)
    # files that are symlinks out of the bundle folder: refused even when the hash matches
    outside = tmp_path_factory.mktemp("outside")
    leak = make_bundle(root, "symlink-out", default=False)
    (leak / "lifter.onnx").rename(outside / "lifter.onnx")
    os.symlink(outside / "lifter.onnx", leak / "lifter.onnx")
    manifest_out = make_bundle(root, "manifest-out", default=False)
    (manifest_out / "manifest.json").rename(outside / "manifest.json")
    os.symlink(outside / "manifest.json", manifest_out / "manifest.json")
    # a symlink that stays inside its bundle is fine
    inside = make_bundle(root, "symlink-in", default=False, with_augmentor=False)
    (inside / "lifter.onnx").rename(inside / "weights.bin")
    os.symlink("weights.bin", inside / "lifter.onnx")
    return root


REFUSED = {*BROKEN, "symlink-out", "manifest-out"}


def test_broken_bundles_are_listed_as_refused_beside_the_good_ones(repository: Path) -> None:
    with running_server(repository) as srv:
        listing = srv.stub.ListModels(poseaug_pb2.ListModelsRequest(), timeout=10)
        info = srv.stub.GetModelInfo(poseaug_pb2.GetModelInfoRequest(model="rays"), timeout=10)
        kp = np.random.default_rng(1).uniform(0, 1000, (3, 17, 2)).astype(np.float32)
        lifted = srv.stub.Lift2Dto3D(lift_request(kp), timeout=10)
        poses = np.zeros((2, 17, 3), np.float32)
        augmented = srv.stub.Augment(
            poseaug_pb2.AugmentRequest(poses3d=tensor(poses), count=2), timeout=10
        )
        with pytest.raises(grpc.RpcError) as error:
            srv.stub.Augment(
                poseaug_pb2.AugmentRequest(poses3d=tensor(poses), model="noise-47"), timeout=10
            )
        text = scrape(srv.metrics_url)
        log = srv.log()
    served = {m.name for m in listing.models}
    refused = {r.name: r.reason for r in listing.refused}
    assert served == {"good", "rays", "symlink-in"}
    assert set(refused) == REFUSED
    for name, (_, words) in BROKEN.items():
        assert words in refused[name], (name, refused[name])
        assert f"refusing model bundle {name}" in log
    assert "outside the bundle folder" in refused["symlink-out"]
    assert "outside the bundle folder" in refused["manifest-out"]
    assert not any(str(repository) in reason for reason in refused.values())  # no server paths
    assert refused["noise-47"].startswith("noise-47/augmentor.onnx: input noise_ba has shape")
    assert info.model.lifter_input == "camera_rays"
    assert lifted.model == "good" and augmented.poses3d.shape[0] == 4
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # not served at all
    assert metric(text, "poseaug_refused_bundles") == len(REFUSED)
    assert metric(text, "poseaug_refused_bundles", model="noise-huge") == 1
