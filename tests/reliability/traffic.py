"""Continuous request traffic for reliability tests: callers lift distinct inputs back to back
until told to stop and keep every answer (request_id, input, output, model version) or error,
so a test can check afterwards that each request got exactly its own answer."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import numpy as np

from poseaug.v1 import poseaug_pb2_grpc
from tests.support.protos import array, lift_request
from tests.support.server import CHANNEL_OPTIONS


def distinct_input(index: int, poses: int = 3) -> np.ndarray:
    """Keypoints in pixels that no other request index shares."""
    return np.random.default_rng(10_000 + index).uniform(0, 1000, (poses, 17, 2)).astype(np.float32)


@dataclass
class Answer:
    request_id: str
    index: int
    pose3d: np.ndarray
    model_version: str


@dataclass
class Failure:
    index: int
    code: grpc.StatusCode
    details: str


class LiftTraffic:
    """`callers` threads sending Lift2Dto3D to `address` until stop()."""

    def __init__(self, address: str, callers: int = 4, poses: int = 3, model: str = "") -> None:
        self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = poseaug_pb2_grpc.PoseAugServiceStub(self.channel)
        self.poses, self.model = poses, model
        self.answers: list[Answer] = []
        self.failures: list[Failure] = []
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"traffic-{i}", daemon=True)
            for i in range(callers)
        ]

    def __enter__(self) -> LiftTraffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
        self.channel.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                index = next(self._ids)
            request_id = f"traffic-{index}"
            request = lift_request(
                distinct_input(index, self.poses), model=self.model, request_id=request_id
            )
            try:
                reply = self.stub.Lift2Dto3D(request, timeout=30)
            except grpc.RpcError as error:
                with self._lock:
                    self.failures.append(Failure(index, error.code(), error.details()))
                continue
            answer = Answer(reply.request_id, index, array(reply.pose3d), reply.model_version)
            with self._lock:
                self.answers.append(answer)

    def count(self, version: str | None = None) -> int:
        with self._lock:
            return sum(1 for a in self.answers if version is None or a.model_version == version)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert not self.failures, self.failures[:3]
            assert time.monotonic() < deadline, "traffic condition not reached in time"
            time.sleep(0.02)
