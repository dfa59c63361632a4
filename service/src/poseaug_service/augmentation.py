"""Augment and StreamAugment: validated jobs computed lazily, row range by row range.

A job is N source poses x `count` augmentations; output row i * count + j is augmentation j
of source i. After the augmentor, each row's RT tilt is bounded (rotations.py), rows outside
the joint limits are flagged and, when asked, re-drawn (poseaug_client.plausibility), and the
body is placed in the camera's view (placement.py) unless the learned placement is asked.
`AugmentJob.rows(start, stop)` computes any row range on its own (noise and placement draws
are pure functions of seed, op and row, see noise.py), so the unary call and every stream
chunking give identical rows, and a stream of millions of rows holds one chunk at a time.
Work is bounded: at most `max_jobs` jobs are admitted (RESOURCE_EXHAUSTED beyond), and at most
`slots` augmentor runs of at most `sub_chunk` rows execute at once.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_client.contract import (
    DEFAULT_STREAM_CHUNK,
    MAX_AUGMENT_COUNT,
    MAX_STREAM_CHUNK,
    augment_row_bytes,
)
from poseaug_client.plausibility import outside_joint_limits, torso
from poseaug_service import rotations
from poseaug_service.camera import Camera, camera_from_proto, project
from poseaug_service.errors import (
    CancelledError,
    FailedPreconditionError,
    InvalidArgumentError,
    ResourceExhaustedError,
)
from poseaug_service.keypoint_formats import FORMATS, H36M_TO_COCO
from poseaug_service.lifting import check_request_id, resolve_model
from poseaug_service.limits import MAX_OPS
from poseaug_service.noise import OP_BA, OP_BL, OP_PLACE, OP_RT, standard_normal, uniform
from poseaug_service.placement import place_in_view
from poseaug_service.repository import ModelRepository
from poseaug_service.sessions import AUGMENTOR_OUTPUTS, LoadedModel
from poseaug_service.tensors import to_array, to_tensor

MAX_STREAM_ROWS = 2**31
ROOT_RELATIVE_DEPTH = 5.0  # metres in front of the camera for root-relative sources
# How far RT may tilt a body from the source's upright unless the request says otherwise
# (degrees), and how many times redraw_implausible re-draws a pose outside the joint limits.
DEFAULT_MAX_TILT_DEG = 30.0
MAX_REDRAWS = 8
_OP_INDEX = {
    poseaug_pb2.AUGMENT_OP_BA: OP_BA,
    poseaug_pb2.AUGMENT_OP_BL: OP_BL,
    poseaug_pb2.AUGMENT_OP_RT: OP_RT,
}


@dataclass(frozen=True)
class AugmentJob:
    """A validated augmentation request."""

    model: LoadedModel
    poses: np.ndarray  # [N, 17, 3] root-relative
    roots: np.ndarray  # [N, 3]
    count: int
    seed: int
    ops: np.ndarray  # [3] float32 of 0/1
    camera: Camera
    request_id: str
    placement: int = poseaug_pb2.PLACEMENT_IN_VIEW
    max_tilt: float = math.radians(DEFAULT_MAX_TILT_DEG)  # radians; pi: unbounded
    redraw: bool = False
    keypoint_format: int = poseaug_pb2.KEYPOINT_FORMAT_H36M_17

    @property
    def total(self) -> int:
        return self.poses.shape[0] * self.count

    def response_bytes(self, rows: int) -> int:
        return augment_row_bytes(self.ops) * rows

    def rows(self, start: int, stop: int, run: Callable[[dict], list]) -> dict[str, np.ndarray]:
        """Compute output rows [start, stop); `run` executes the augmentor on a feed dict.

        Each row is a pure function of (seed, row): the augmentor on that row's noise, the
        tilt bound, re-draws (attempt k uses noise stream k) and the placement draws."""
        if self.count == 1:
            pose, root = self.poses[start:stop], self.roots[start:stop]
        else:
            src = np.arange(start, stop) // self.count
            pose, root = self.poses[src], self.roots[src]
        out = self._augmented(pose, root, start, stop, run)
        outside = outside_joint_limits(out["body"])
        redrawn = np.zeros(len(pose), bool)
        for attempt in range(1, MAX_REDRAWS + 1 if self.redraw else 1):
            again = np.flatnonzero(outside)
            if not again.size:
                break
            retry = self._augmented(pose[again], root[again], start, stop, run, attempt, again)
            fixed = ~outside_joint_limits(retry["body"])
            rows = again[fixed]
            for name, values in retry.items():
                out[name][rows] = values[fixed]
            outside[rows] = False
            redrawn[again] = True
        if self.placement == poseaug_pb2.PLACEMENT_IN_VIEW:
            draws = uniform(self.seed, OP_PLACE, start, stop - start, 3)
            out["translation"] = place_in_view(out["body"], self.camera, draws)
        pose3d = (out.pop("body") + out["translation"][:, None]).astype(np.float32)
        out["translation"] = out["translation"].astype(np.float32)
        out["pose3d_aug"] = pose3d
        keypoints = project(pose3d, self.camera)
        if self.keypoint_format == poseaug_pb2.KEYPOINT_FORMAT_COCO_17:
            keypoints = np.einsum("kj,njc->nkc", H36M_TO_COCO, keypoints)
        out["keypoints2d"] = keypoints
        out["outside_joint_limits"] = outside.astype(np.float32)
        out["redrawn"] = redrawn
        return out

    def _augmented(
        self,
        pose: np.ndarray,
        root: np.ndarray,
        start: int,
        stop: int,
        run: Callable[[dict], list],
        attempt: int = 0,
        pick: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """The augmentor's outputs for rows [start, stop) (only the `pick` ones when given) on
        noise stream `attempt`, RT's tilt bounded; "body" is the root-relative augmented pose."""
        n = stop - start
        noise = []
        for op, dim in enumerate(self.model.noise_dims):
            if not self.ops[op]:
                noise.append(np.zeros((len(pose), dim), np.float32))
                continue
            values = standard_normal(self.seed, op, start, n, dim, attempt)
            noise.append(values if pick is None else values[pick])
        feeds = {
            "pose3d": np.ascontiguousarray(pose),
            "root": np.ascontiguousarray(root),
            "noise_ba": noise[OP_BA],
            "noise_bl": noise[OP_BL],
            "noise_rt": noise[OP_RT],
            "ops": self.ops,
        }
        out = dict(zip(AUGMENTOR_OUTPUTS, run(feeds), strict=True))
        translation = out["translation"].astype(np.float64)
        body = out.pop("pose3d_aug").astype(np.float64) - translation[:, None]
        if self.ops[OP_RT] and self.max_tilt < math.pi:
            learned = rotations.from_axis_angle(out["rotation"])
            trunk = torso(body)  # after RT as learned
            # the rows tilted past the bound or head down; the rest keep RT's rotation as is
            over = (rotations.cos_tilt(learned) < math.cos(self.max_tilt)) | (
                trunk @ rotations.UP < 0
            )
            rows = np.flatnonzero(over)
            if rows.size:
                learned = learned[rows]
                before = np.einsum("nji,nj->ni", rotations.to_matrix(learned), trunk[rows])
                bounded = rotations.bound_tilt(learned, self.max_tilt, torso=before)
                turn = rotations.product(bounded, rotations.conjugate(learned))
                body[rows] = np.einsum("nij,nkj->nki", rotations.to_matrix(turn), body[rows])
                out["rotation"][rows] = rotations.to_axis_angle(bounded)
        out["body"], out["translation"] = body, translation
        return out

    def response(self, out: dict[str, np.ndarray]) -> poseaug_pb2.AugmentResponse:
        params = poseaug_pb2.AugmentParameters(translation=to_tensor(out["translation"]))
        if self.ops[OP_BA]:
            params.bone_angle_offsets.CopyFrom(to_tensor(out["bone_angle_offsets"]))
        if self.ops[OP_BL]:
            params.bone_length_ratios.CopyFrom(to_tensor(out["bone_length_ratios"]))
        if self.ops[OP_RT]:
            params.rotation.CopyFrom(to_tensor(out["rotation"]))
        return poseaug_pb2.AugmentResponse(
            poses3d=to_tensor(out["pose3d_aug"]),
            keypoints2d=to_tensor(out["keypoints2d"]),
            parameters=params,
            model=self.model.name,
            model_version=self.model.version,
            request_id=self.request_id,
            outside_joint_limits=to_tensor(out["outside_joint_limits"]),
            keypoint_format=self.keypoint_format,
            redrawn=int(out["redrawn"].sum()),
        )


def _ops(values, prefix: str) -> np.ndarray:
    if len(values) > MAX_OPS:  # before walking them (prescan.py refuses most such bytes)
        raise InvalidArgumentError(
            f"{prefix}ops", f"at most {MAX_OPS} entries (one per operation), got {len(values)}"
        )
    ops = np.zeros(3, dtype=np.float32)
    if not values:
        ops[:] = 1.0
    for i, v in enumerate(values):
        if v not in _OP_INDEX:
            raise InvalidArgumentError(f"{prefix}ops[{i}]", f"not an operation: {v}")
        ops[_OP_INDEX[v]] = 1.0
    return ops


def parse_augment(
    req: poseaug_pb2.AugmentRequest, repo: ModelRepository, max_rows: int, prefix: str = ""
) -> AugmentJob:
    """Validate `req` (max_rows bounds N * count); raises InvalidArgumentError naming the field."""
    check_request_id(req.request_id, prefix)
    model = resolve_model(repo, req.model, prefix)
    if model.augmentor is None:
        raise FailedPreconditionError(f"{prefix}model", f"bundle {model.name!r} has no augmentor")
    if req.count > MAX_AUGMENT_COUNT:
        raise InvalidArgumentError(
            f"{prefix}count", f"must be 0..{MAX_AUGMENT_COUNT}, got {req.count}"
        )
    count = max(1, req.count)
    if req.seed < 0:
        raise InvalidArgumentError(f"{prefix}seed", f"must be in [0, 2^63), got {req.seed}")
    ops = _ops(req.ops, prefix)
    camera = camera_from_proto(req.camera, f"{prefix}camera")
    if not req.HasField("poses3d"):
        raise InvalidArgumentError(f"{prefix}poses3d", "is required")
    shape = list(req.poses3d.shape)
    if shape and shape[0] * count > max_rows:
        raise InvalidArgumentError(
            f"{prefix}count",
            f"N * count = {shape[0]} * {count} = {shape[0] * count} output poses exceeds the "
            f"limit of {max_rows} (poses3d has N = {shape[0]})",
        )
    poses = to_array(req.poses3d, f"{prefix}poses3d", rank=3, fixed={1: 17, 2: 3})
    root = poses[:, 0, :]
    at_origin = ~root.any(axis=1)
    behind = np.flatnonzero(~at_origin & (root[:, 2] <= 0))
    if behind.size:
        raise InvalidArgumentError(
            f"{prefix}poses3d.data",
            f"pose {int(behind[0])}: joint 0 must be at the origin (root-relative) or in front "
            f"of the camera (z > 0), got {root[behind[0]].tolist()}",
        )
    roots = np.where(at_origin[:, None], np.float32([0.0, 0.0, ROOT_RELATIVE_DEPTH]), root)
    relative = poses - root[:, None, :]
    return AugmentJob(
        model=model,
        poses=relative.astype(np.float32, copy=False),
        roots=roots.astype(np.float32),
        count=count,
        seed=int(req.seed),
        ops=ops,
        camera=camera,
        request_id=req.request_id,
        placement=_placement(req.placement, prefix),
        max_tilt=_max_tilt(req, prefix),
        redraw=req.redraw_implausible,
        keypoint_format=_output_format(req.keypoint_format, prefix),
    )


def _placement(value: int, prefix: str) -> int:
    if value == poseaug_pb2.PLACEMENT_UNSPECIFIED:
        return poseaug_pb2.PLACEMENT_IN_VIEW
    if value not in (poseaug_pb2.PLACEMENT_IN_VIEW, poseaug_pb2.PLACEMENT_LEARNED):
        raise InvalidArgumentError(f"{prefix}placement", f"not a placement: {value}")
    return value


def _max_tilt(req: poseaug_pb2.AugmentRequest, prefix: str) -> float:
    """The tilt bound in radians (pi: none), from degrees in 0..180 (unset: the default)."""
    if not req.HasField("max_tilt_deg"):
        return math.radians(DEFAULT_MAX_TILT_DEG)
    degrees = req.max_tilt_deg
    if not (math.isfinite(degrees) and 0.0 <= degrees <= 180.0):
        raise InvalidArgumentError(
            f"{prefix}max_tilt_deg", f"must be a number of degrees in 0..180, got {degrees}"
        )
    return math.radians(degrees)


def _output_format(value: int, prefix: str) -> int:
    if value in (poseaug_pb2.KEYPOINT_FORMAT_UNSPECIFIED, poseaug_pb2.KEYPOINT_FORMAT_H36M_17):
        return poseaug_pb2.KEYPOINT_FORMAT_H36M_17
    if value == poseaug_pb2.KEYPOINT_FORMAT_COCO_17:
        return value
    raise InvalidArgumentError(
        f"{prefix}keypoint_format",
        f"Augment answers H36M_17 or COCO_17 keypoints, got {FORMATS.get(value, (0, 0, value))[2]}",
    )


def check_fits_one_message(job: AugmentJob, limit: int, limit_mb: int) -> None:
    """Augment answers all N * count rows in one message of at most `limit` bytes."""
    size = job.response_bytes(job.total)
    if size > limit:
        raise InvalidArgumentError(
            "count",
            f"the response for N * count = {job.total} poses would be about "
            f"{size >> 20} MiB, over the server's {limit_mb} MiB message limit; use StreamAugment",
        )


def stream_chunk_rows(chunk_size: int) -> int:
    """StreamAugment's rows per chunk: as asked (0: the default), at most MAX_STREAM_CHUNK."""
    if chunk_size > MAX_STREAM_CHUNK:
        raise InvalidArgumentError("chunk_size", f"must be 0..{MAX_STREAM_CHUNK}, got {chunk_size}")
    return chunk_size or DEFAULT_STREAM_CHUNK


def check_chunk_fits(job: AugmentJob, chunk: int, limit: int, limit_mb: int) -> None:
    """The largest chunk of a StreamAugment job fits one message of at most `limit` bytes."""
    largest = job.response_bytes(min(chunk, job.total))
    if largest > limit:
        raise InvalidArgumentError(
            "chunk_size",
            f"a chunk of {chunk} poses would be about {largest >> 20} MiB, "
            f"over the server's {limit_mb} MiB message limit",
        )


class AugmentEngine:
    """Runs augmentation jobs in bounded sub-chunks with bounded concurrency."""

    def __init__(self, max_jobs: int, slots: int, sub_chunk: int, on_run=None) -> None:
        self._max_jobs = max_jobs
        self._jobs = 0
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(slots)
        self._sub_chunk = sub_chunk
        self._on_run = on_run or (lambda model, n: None)

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Admit one job or raise ResourceExhaustedError when max_jobs are already running."""
        with self._lock:
            if self._jobs >= self._max_jobs:
                raise ResourceExhaustedError(
                    "", f"too many augmentation jobs ({self._max_jobs}); retry later"
                )
            self._jobs += 1
        try:
            yield
        finally:
            with self._lock:
                self._jobs -= 1

    def compute(
        self, job: AugmentJob, start: int, stop: int, is_active: Callable[[], bool]
    ) -> dict[str, np.ndarray]:
        """Rows [start, stop) of `job`, run in sub-chunks; stops early if the caller left."""
        session = job.model.augmentor
        assert session is not None

        def run(feeds: dict) -> list:
            with self._slots:
                return session.run(list(AUGMENTOR_OUTPUTS), feeds)

        parts = []
        for a in range(start, stop, self._sub_chunk):
            if not is_active():
                raise CancelledError("", "call cancelled or deadline exceeded")
            b = min(stop, a + self._sub_chunk)
            parts.append(job.rows(a, b, run))
            self._on_run(job.model.name, b - a)
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
