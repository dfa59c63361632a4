"""Jobs: numpy inputs checked, then split into contract requests that each stay under the
per-call limits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_client.cameras import CameraOption, augment_camera, lift_cameras
from poseaug_client.config import ClientConfig
from poseaug_client.contract import (
    LIFT_ROW_BYTES,
    MAX_AUGMENT_COUNT,
    MAX_SEED,
    MAX_STREAM_CHUNK,
    NUM_JOINTS,
    augment_row_bytes,
    to_tensor,
)
from poseaug_client.errors import invalid_argument
from poseaug_client.formats import augment_ops, format_name, keypoint_format
from poseaug_client.tensors import as_float_array

# Bytes one pose costs in the largest message of each RPC, to size chunks under the limit.
_AUGMENT_OUTPUT_BYTES = augment_row_bytes()
_ENVELOPE = 0.9  # room for field tags, names and shapes

ImageSizeLike = tuple[int, int] | Sequence[int] | np.ndarray
# The image size of lifts that send neither a size nor a camera.
DEFAULT_IMAGE_SIZE = (1000, 1000)
# The augmentation ops applied when the caller names none: all three, in order.
DEFAULT_OPS = ("ba", "bl", "rt")


@dataclass
class LiftJob:
    """Validated inputs of a lift: keypoints [N, K, 2] plus what goes with every chunk."""

    keypoints: np.ndarray
    scores: np.ndarray | None
    format: int
    image_size: tuple[int, int] | None
    image_sizes: np.ndarray | None
    model: str
    single: bool = False
    camera: poseaug_pb2.CameraIntrinsics | None = None
    cameras: list[poseaug_pb2.CameraIntrinsics] | None = None
    track_ids: np.ndarray | None = None  # [N] int64: poses sharing one are a track's frames

    @property
    def count(self) -> int:
        return int(self.keypoints.shape[0])


PLACEMENTS = {
    "in_view": poseaug_pb2.PLACEMENT_IN_VIEW,
    "learned": poseaug_pb2.PLACEMENT_LEARNED,
}
AUGMENT_OUTPUT_FORMATS = ("h36m17", "coco17")


@dataclass(frozen=True)
class AugmentOptions:
    """How Augment's output is made usable (proto AugmentRequest fields 8-11).

    placement: "in_view" (default: the whole body in the camera's image at 20-90% of its size)
    or "learned" (the augmentor's translation); max_tilt_deg: how far RT may turn a body from
    the source's upright (None: the server's 30; 0..180); redraw_implausible: re-draw poses
    outside the joint limits; keypoint_format: "h36m17" or "coco17" for keypoints2d."""

    placement: str = "in_view"
    max_tilt_deg: float | None = None
    redraw_implausible: bool = False
    keypoint_format: str = "h36m17"

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise invalid_argument(
                f"placement: {self.placement!r}; use one of {', '.join(PLACEMENTS)}"
            )
        tilt = self.max_tilt_deg
        if tilt is not None and not (isinstance(tilt, int | float) and 0 <= tilt <= 180):
            raise invalid_argument(f"max_tilt_deg: must be 0..180 degrees or None, got {tilt!r}")
        value, _ = keypoint_format(self.keypoint_format)
        if format_name(value) not in AUGMENT_OUTPUT_FORMATS:
            raise invalid_argument(
                f"keypoint_format: Augment answers {' or '.join(AUGMENT_OUTPUT_FORMATS)}, got "
                f"{self.keypoint_format!r}"
            )

    def apply(self, request: poseaug_pb2.AugmentRequest) -> None:
        request.placement = PLACEMENTS[self.placement]
        if self.max_tilt_deg is not None:
            request.max_tilt_deg = float(self.max_tilt_deg)
        request.redraw_implausible = bool(self.redraw_implausible)
        request.keypoint_format = keypoint_format(self.keypoint_format)[0]


@dataclass
class AugmentJob:
    """Validated inputs of an augmentation."""

    poses3d: np.ndarray
    count: int
    ops: list[int]
    seed: int
    camera: poseaug_pb2.CameraIntrinsics | None
    model: str
    options: AugmentOptions = AugmentOptions()

    @property
    def outputs(self) -> int:
        return int(self.poses3d.shape[0]) * self.count


def prepare_lift(
    keypoints: object,
    format: str | int = "h36m17",
    image_size: ImageSizeLike | None = None,
    scores: object | None = None,
    model: str | None = None,
    *,
    camera: CameraOption = None,
    allow_single: bool = True,
    track_ids: object | None = None,
) -> LiftJob:
    """Check shapes against the format; a single pose [K, 2] becomes a batch of one.

    Without a camera, `image_size` None means 1000 x 1000; with one, no size is sent unless
    given (the server takes it from the camera where it needs one)."""
    fmt, joints = keypoint_format(format)
    points = as_float_array(keypoints, "keypoints")
    single = allow_single and points.ndim == 2
    if single:
        points = points[None]
    if points.ndim != 3 or points.shape[1:] != (joints, 2):
        raise invalid_argument(
            f"keypoints: expected shape [N, {joints}, 2] for format "
            f"{format}, got {list(points.shape)}"
        )
    n = points.shape[0]
    conf = None
    if scores is not None:
        conf = as_float_array(scores, "scores")
        if single and conf.ndim == 1:
            conf = conf[None]
        if conf.shape != (n, joints):
            raise invalid_argument(
                f"scores: expected shape [{n}, {joints}], got {list(conf.shape)}"
            )
    one_camera, cameras = lift_cameras(camera, n)
    if image_size is None and camera is None:
        image_size = DEFAULT_IMAGE_SIZE
    size, sizes = (None, None) if image_size is None else _image_sizes(image_size, n)
    tracks = None if track_ids is None else _track_ids(track_ids, n)
    return LiftJob(points, conf, fmt, size, sizes, model or "", single, one_camera, cameras, tracks)


def _track_ids(track_ids: object, n: int) -> np.ndarray:
    """[N] int64 track ids (a tracker's ids: any integers)."""
    try:
        ids = np.asarray(track_ids)
    except (TypeError, ValueError):
        raise invalid_argument("track_ids: expected N integers") from None
    if ids.ndim == 0:
        ids = ids[None]
    if ids.shape != (n,) or not (ids.dtype.kind in "iu" or (ids.size == 0 and n == 0)):
        raise invalid_argument(
            f"track_ids: expected {n} integers (one per pose), got {ids.dtype} {list(ids.shape)}"
        )
    return ids.astype(np.int64)


def _image_sizes(
    image_size: ImageSizeLike, n: int
) -> tuple[tuple[int, int] | None, np.ndarray | None]:
    """(one size, None) or (None, per-pose sizes [N, 2]), all positive integers."""
    try:
        sizes = np.asarray(image_size, dtype=np.float64)
    except (TypeError, ValueError):
        raise invalid_argument("image_size: expected (width, height) or an [N, 2] array") from None
    if sizes.shape == (2,):
        per_pose = None
    elif sizes.shape == (n, 2):
        per_pose = sizes
    else:
        raise invalid_argument(
            f"image_size: expected (width, height) or shape [{n}, 2], got {list(sizes.shape)}"
        )
    if not np.all(np.isfinite(sizes)) or np.any(sizes < 1) or np.any(sizes >= 2**32):
        raise invalid_argument("image_size: width and height must be positive pixel counts")
    if np.any(sizes != np.round(sizes)):
        raise invalid_argument("image_size: width and height must be whole pixels")
    if per_pose is None:
        return (int(sizes[0]), int(sizes[1])), None
    return None, per_pose.astype(np.int64)


def lift_chunk_size(config: ClientConfig, joints: int) -> int:
    """Poses per Lift2Dto3D call: the configured limit, or fewer if messages would get too big."""
    per_pose = max(LIFT_ROW_BYTES, joints * 3 * 4 + 8)
    by_bytes = int(config.max_message_bytes * _ENVELOPE) // per_pose
    return max(1, min(config.max_poses_per_call, by_bytes))


def lift_request(
    job: LiftJob, start: int, stop: int, request_id: str = ""
) -> poseaug_pb2.Lift2Dto3DRequest:
    """The Lift2Dto3DRequest for poses [start, stop) of a job."""
    request = poseaug_pb2.Lift2Dto3DRequest(
        keypoints=to_tensor(job.keypoints[start:stop]),
        format=job.format,
        model=job.model,
        request_id=request_id,
    )
    if job.scores is not None:
        request.scores.CopyFrom(to_tensor(job.scores[start:stop]))
    if job.image_sizes is not None:
        request.image_sizes.extend(
            poseaug_pb2.ImageSize(width=int(w), height=int(h))
            for w, h in job.image_sizes[start:stop]
        )
    elif job.image_size is not None:
        width, height = job.image_size
        request.image_size.CopyFrom(poseaug_pb2.ImageSize(width=width, height=height))
    if job.camera is not None:
        request.camera.CopyFrom(job.camera)
    elif job.cameras is not None:
        request.cameras.extend(job.cameras[start:stop])
    if job.track_ids is not None:
        request.track_ids.extend(job.track_ids[start:stop].tolist())
    return request


def chunk_bounds(total: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most `size` items covering `total` items."""
    return [(start, min(total, start + size)) for start in range(0, total, size)]


StreamPart = tuple[int, int, int, LiftJob, poseaug_pb2.Lift2Dto3DRequest | None]


def lift_stream_parts(
    batches: Iterable[object],
    config: ClientConfig,
    format: str | int,
    image_size: ImageSizeLike | None,
    model: str | None,
    camera: CameraOption = None,
) -> Iterator[StreamPart]:
    """(batch index, part, parts, job, request) for each stream message of each batch.

    A batch is an array [n, K, 2] or a mapping with "keypoints" and optional "scores",
    "image_size", "camera" and "track_ids"; batches over the per-call limit become several
    messages. An
    empty batch gives one entry with request None (answered locally with an empty result).
    """
    for index, batch in enumerate(batches):
        yield from batch_parts(index, batch, config, format, image_size, model, camera)


def batch_parts(
    index: int,
    batch: object,
    config: ClientConfig,
    format: str | int,
    image_size: ImageSizeLike | None,
    model: str | None,
    camera: CameraOption = None,
) -> list[StreamPart]:
    """The stream entries of batch number `index` (see lift_stream_parts)."""
    job = prepare_stream_batch(batch, index, format, image_size, model, camera)
    if job.count == 0:
        return [(index, 0, 1, job, None)]
    bounds = chunk_bounds(job.count, lift_chunk_size(config, job.keypoints.shape[1]))
    return [
        (
            index,
            part,
            len(bounds),
            job,
            lift_request(job, start, stop, f"{index}:{part}:{len(bounds)}"),
        )
        for part, (start, stop) in enumerate(bounds)
    ]


def prepare_stream_batch(
    batch: object,
    index: int,
    format: str | int,
    image_size: ImageSizeLike | None,
    model: str | None,
    camera: CameraOption = None,
) -> LiftJob:
    """One streamed batch as a LiftJob; errors name the batch."""
    if isinstance(batch, Mapping):
        if "keypoints" not in batch:
            raise invalid_argument(f"batch {index}: mapping without 'keypoints'")
        keypoints = batch["keypoints"]
        scores = batch.get("scores")
        size = batch.get("image_size", image_size)
        camera = batch.get("camera", camera)
        tracks = batch.get("track_ids")
    else:
        keypoints, scores, size, tracks = batch, None, image_size, None
    points = as_float_array(keypoints, f"batch {index}: keypoints")
    if points.ndim == 3 and points.shape[0] == 0:
        fmt, joints = keypoint_format(format)
        return LiftJob(np.zeros((0, joints, 2), np.float32), None, fmt, (1, 1), None, model or "")
    try:
        return prepare_lift(
            points, format, size, scores, model, camera=camera, allow_single=False, track_ids=tracks
        )
    except Exception as exc:
        raise invalid_argument(f"batch {index}: {getattr(exc, 'message', exc)}") from None


def prepare_augment(
    poses3d: object,
    count: int = 1,
    ops: str | Iterable[str] = DEFAULT_OPS,
    seed: int = 0,
    camera: object | None = None,
    model: str | None = None,
    options: AugmentOptions | None = None,
) -> AugmentJob:
    """Check the source poses [N, 17, 3] and the options; `camera` is a Camera, a
    CameraIntrinsics or a mapping of its fields (the same as `lift` takes for one camera)."""
    poses = as_float_array(poses3d, "poses3d")
    if poses.ndim == 2:
        poses = poses[None]
    if poses.ndim != 3 or poses.shape[1:] != (NUM_JOINTS, 3) or poses.shape[0] == 0:
        raise invalid_argument(
            f"poses3d: expected shape [N, 17, 3] with N >= 1, got {list(poses.shape)}"
        )
    if int(count) != count or not 1 <= count <= MAX_AUGMENT_COUNT:
        raise invalid_argument(
            f"count: must be an integer from 1 to {MAX_AUGMENT_COUNT}, got {count}"
        )
    if int(seed) != seed or not 0 <= seed < MAX_SEED:
        raise invalid_argument(f"seed: must be an integer in [0, 2^63), got {seed}")
    return AugmentJob(
        poses,
        int(count),
        augment_ops(ops),
        int(seed),
        augment_camera(camera),
        model or "",
        options or AugmentOptions(),
    )


def chunk_seed(seed: int, index: int) -> int:
    """Seed of request `index` of a job too big for one request message (over about a million
    source poses): request 0 keeps the caller's seed; later ones get independent seeds derived
    from (seed, index). The server numbers noise rows from 0 in every request, so reusing the
    seed would repeat request 0's noise."""
    if index == 0:
        return seed
    state = np.random.SeedSequence(entropy=seed, spawn_key=(index,)).generate_state(1, np.uint64)
    return int(state[0]) % MAX_SEED


def augment_outputs_per_call(config: ClientConfig) -> int:
    """Output poses one Augment call (or one streamed chunk) may carry under both limits."""
    by_bytes = int(config.max_message_bytes * _ENVELOPE) // _AUGMENT_OUTPUT_BYTES
    return max(1, min(config.max_poses_per_call, by_bytes, MAX_STREAM_CHUNK))


def augment_request(
    job: AugmentJob, start: int, stop: int, seed: int
) -> poseaug_pb2.AugmentRequest:
    """The AugmentRequest for source poses [start, stop) with the given seed."""
    request = poseaug_pb2.AugmentRequest(
        poses3d=to_tensor(job.poses3d[start:stop]),
        ops=job.ops,
        count=job.count,
        seed=seed,
        model=job.model,
    )
    if job.camera is not None:
        request.camera.CopyFrom(job.camera)
    job.options.apply(request)
    return request


def stream_sources_per_call(config: ClientConfig) -> int:
    """Source poses per StreamAugment request: as many as fit one message (about a million
    at 256 MB), so that almost every job is one request and rows match a unary call."""
    return max(1, int(config.max_message_bytes * _ENVELOPE) // (NUM_JOINTS * 3 * 4))


def stream_augment_requests(
    job: AugmentJob, sources_per_call: int, chunk_size: int
) -> Iterator[tuple[int, int, poseaug_pb2.StreamAugmentRequest]]:
    """(first output row, rows, request) of each StreamAugment call of a bulk job."""
    if not 1 <= chunk_size <= MAX_STREAM_CHUNK:
        raise invalid_argument(
            f"chunk_size: must be from 1 to {MAX_STREAM_CHUNK}, got {chunk_size}"
        )
    for index, (start, stop) in enumerate(chunk_bounds(job.poses3d.shape[0], sources_per_call)):
        request = augment_request(job, start, stop, chunk_seed(job.seed, index))
        yield (
            start * job.count,
            (stop - start) * job.count,
            poseaug_pb2.StreamAugmentRequest(request=request, chunk_size=chunk_size),
        )
