"""What the viewer page shows, in the viewer's frame: y up, the floor at y = 0, millimetres.

The service answers root-relative poses in the camera frame (y down, tilted as the camera
was). The page turns them so the bodies' mean spine points up, so the ground grid lies under
their feet. Lifted tracks are put where the camera saw them when their 2D keypoints and camera
are known (`root_translations`); otherwise each track stands on its own spot, side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from poseaug_client.contract import H36M_JOINT_NAMES, H36M_PARENTS
from poseaug_client.formats import KEYPOINT_EDGES, KEYPOINT_NAMES
from poseaug_client.viewer.codec import encode_bits, encode_ints

VALUES_PER_POSE = len(H36M_JOINT_NAMES) * 3
_HIP, _THORAX = H36M_JOINT_NAMES.index("hip"), H36M_JOINT_NAMES.index("thorax")
_FLIP_Y = np.diag([1.0, -1.0, 1.0])
#: Spacing of tracks placed side by side, and of source and augmented pose (metres).
SIDE_BY_SIDE_M = 1.0
PAIR_OFFSET_M = 0.8


def _sides(names: Sequence[str]) -> str:
    """ "L", "R" or "C" (the middle) for each joint, read from its name."""
    return "".join(
        "L" if n.startswith("left_") else "R" if n.startswith("right_") else "C" for n in names
    )


def skeleton() -> dict[str, object]:
    """The H36M-17 skeleton of every 3D pose, for the page: names, parents, sides."""
    names = H36M_JOINT_NAMES
    return {"names": list(names), "parents": list(H36M_PARENTS), "side": _sides(names)}


def keypoint_layout(keypoint_format: str) -> dict[str, object]:
    """The 2D skeleton of a keypoint layout ("h36m17", "coco17", ...): how many keypoints,
    the pairs drawn as bones, the side of each keypoint."""
    names = KEYPOINT_NAMES[keypoint_format]
    return {
        "format": keypoint_format,
        "count": len(names),
        "edges": [list(edge) for edge in KEYPOINT_EDGES[keypoint_format]],
        "side": _sides(names),
    }


def upright(poses: np.ndarray) -> np.ndarray:
    """[3, 3] rotation from the camera frame to the viewer's, whose y axis is the bodies' mean
    hip-to-thorax direction and whose x axis stays as close to the camera's as it can."""
    spine = (poses[:, _THORAX] - poses[:, _HIP]) @ _FLIP_Y
    lengths = np.linalg.norm(spine, axis=-1, keepdims=True)
    up = np.mean(spine / np.maximum(lengths, 1e-9), axis=0)
    if np.linalg.norm(up) < 0.5:  # no consistent upright direction: keep the camera's
        up = np.array([0.0, 1.0, 0.0])
    up /= np.linalg.norm(up)
    x = np.array([1.0, 0.0, 0.0]) - up[0] * up
    if np.linalg.norm(x) < 1e-6:
        x = np.array([0.0, 0.0, 1.0]) - up[2] * up
    x /= np.linalg.norm(x)
    return np.stack([x, up, np.cross(x, up)]) @ _FLIP_Y


def root_translations(
    poses: np.ndarray, rays: np.ndarray, seen: np.ndarray, names: Sequence[str]
) -> np.ndarray:
    """[N, 3] root positions (camera frame, metres) that best put each root-relative pose
    [N, 17, 3] on the rays [N, K, 2] ((u - cx) / fx, (v - cy) / fy) of its 2D keypoints, whose
    layout has the joint names `names`; joints that are not `seen` [N, K] are left out.

    Linear least squares: X + tx = x (Z + tz) and Y + ty = y (Z + tz) per matched joint.
    """
    pairs = [(H36M_JOINT_NAMES.index(n), k) for k, n in enumerate(names) if n in H36M_JOINT_NAMES]
    body = poses[:, [h for h, _ in pairs]].astype(np.float64)
    x, y = (rays[:, [k for _, k in pairs], i].astype(np.float64) for i in (0, 1))
    weight = seen[:, [k for _, k in pairs]].astype(np.float64)
    weight[weight.sum(axis=1) < 3] = 1.0  # too few seen joints: use them all
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    rows = np.stack(
        [np.stack([ones, zeros, -x], -1), np.stack([zeros, ones, -y], -1)], axis=2
    )  # [N, K, 2, 3]
    rhs = np.stack(
        [x * body[..., 2] - body[..., 0], y * body[..., 2] - body[..., 1]], axis=2
    )  # [N, K, 2]
    w = weight[..., None, None]
    normal = np.einsum("nkri,nkrj->nij", rows * w, rows) + 1e-9 * np.eye(3)
    return np.linalg.solve(normal, np.einsum("nkri,nkr->ni", rows * w, rhs)[..., None])[..., 0]


def smooth_along_tracks(
    values: np.ndarray, track_ids: np.ndarray | None, frames: np.ndarray, window: int = 11
) -> np.ndarray:
    """[N, C] values with a running median over `window` frames of each track (in frame
    order; edges repeat), e.g. root positions: a depth from one frame's keypoints jumps by
    10-20 cm from frame to frame, which a person walking does not."""
    tracks = np.zeros(len(values), dtype=np.int64) if track_ids is None else track_ids
    out = np.array(values, dtype=np.float64)
    half = window // 2
    for track in np.unique(tracks):
        mine = np.flatnonzero(tracks == track)
        mine = mine[np.argsort(frames[mine], kind="stable")]
        padded = np.pad(out[mine], ((half, half), (0, 0)), mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
        out[mine] = np.median(windows, axis=-1)
    return out


def _frame_index(
    track_ids: np.ndarray, frame_ids: Sequence[object] | None
) -> tuple[np.ndarray, list[object] | None]:
    """(frame of each pose, label of each frame): by the frame ids where given (sorted when
    they are all integers), else the k-th pose of a track is in frame k."""
    if frame_ids is not None and len(frame_ids) == len(track_ids):
        if all(isinstance(i, int | np.integer) and not isinstance(i, bool) for i in frame_ids):
            labels, index = np.unique(np.asarray(frame_ids, dtype=np.int64), return_inverse=True)
            return index, labels.tolist()
        order = {label: k for k, label in enumerate(dict.fromkeys(map(str, frame_ids)))}
        return np.asarray([order[str(i)] for i in frame_ids]), list(order)
    index = np.zeros(len(track_ids), dtype=np.int64)
    for track in np.unique(track_ids):
        mine = track_ids == track
        index[mine] = np.arange(int(mine.sum()))
    return index, None


def track_scene(
    poses: np.ndarray,
    track_ids: np.ndarray | None = None,
    frame_ids: Sequence[object] | None = None,
    joint_inferred: np.ndarray | None = None,
    roots: np.ndarray | None = None,
    fps: float = 25.0,
) -> dict[str, object]:
    """The page data of lifted poses [N, 17, 3] (camera frame, root-relative, metres): one
    figure per track and frame (frames by `frame_ids`, e.g. COCO image ids). Without track ids
    the poses of one frame are told apart by their order, and without either every pose is a
    frame of its own. `roots` [N, 3] (camera frame) puts each pose where it was seen; `fps`
    is the speed Play shows the frames at."""
    poses = np.asarray(poses, dtype=np.float64)
    n = len(poses)
    if track_ids is not None:
        tracks = np.asarray(track_ids, dtype=np.int64)
        frames, labels = _frame_index(tracks, frame_ids)
    elif frame_ids is not None:  # untracked detections: the k-th of each image is figure k
        frames, labels = _frame_index(np.zeros(n, dtype=np.int64), frame_ids)
        tracks = np.zeros(n, dtype=np.int64)
        for frame in np.unique(frames):
            mine = frames == frame
            tracks[mine] = np.arange(int(mine.sum()))
    else:  # every pose a frame of its own
        tracks, frames, labels = np.zeros(n, dtype=np.int64), np.arange(n), None
    turn = upright(poses)
    points = poses if roots is None else poses + np.asarray(roots)[:, None]
    points = points @ turn.T
    ids = np.unique(tracks)
    if roots is None:
        for k, track in enumerate(ids):
            mine = tracks == track
            points[mine, :, 0] += (k - (len(ids) - 1) / 2) * SIDE_BY_SIDE_M
            points[mine, :, 1] -= points[mine, :, 1].min()
    else:  # one floor for everyone: under the lowest feet, a stray joint or two aside
        points[..., 1] -= np.percentile(points[..., 1].min(axis=1), 2)
    millimetres = np.round(points * 1000).astype(np.int64)
    # Per frame, how far the figures of that frame reach from their middle: the view follows
    # the people, so it needs to hold one frame, not the whole walk.
    low = np.full((int(frames.max()) + 1, 3), np.inf)
    high = np.full_like(low, -np.inf)
    np.minimum.at(low, frames, points.min(axis=1))
    np.maximum.at(high, frames, points.max(axis=1))
    seen = np.isfinite(low[:, 0])
    reach = np.linalg.norm(high[seen] - low[seen], axis=1) / 2
    entries = []
    for track in ids:
        mine = np.flatnonzero(tracks == track)
        mine = mine[np.argsort(frames[mine], kind="stable")]
        entry: dict[str, object] = {
            "id": int(track) if track_ids is not None else None,
            "count": len(mine),
            "frames": encode_ints(frames[mine], delta_stride=1),
            "points": encode_ints(millimetres[mine], delta_stride=VALUES_PER_POSE),
        }
        if joint_inferred is not None:
            entry["inferred"] = encode_bits(np.asarray(joint_inferred)[mine] > 0.5)
        entries.append(entry)
    return {
        "mode": "tracks",
        "skeleton": skeleton(),
        "frames": int(frames.max()) + 1 if n else 0,
        "frame_labels": labels,
        "fps": fps,
        "tracks": entries,
        "height": round(float(np.median(points[..., 1])) * 1000),
        "radius": round((float(np.percentile(reach, 90)) + 0.5) * 1000),
    }


def augment_scene(
    source: np.ndarray,
    augmented: np.ndarray,
    keypoints2d: np.ndarray,
    count: int,
    image_size: tuple[int, int] | None = None,
    keypoint_format: str = "h36m17",
) -> dict[str, object]:
    """The page data of an augmentation: row i of `augmented` [M, 17, 3] (camera frame,
    metres) and its 2D keypoints [M, K, 2] (pixels, in `keypoint_format`) came from source
    pose i // count [N, 17, 3]. Each row shows the source (left) and the augmented pose
    (right) root to root, the source standing on the floor; image_size frames the 2D view."""
    source = np.asarray(source, dtype=np.float64)
    augmented = np.asarray(augmented, dtype=np.float64)
    turn = upright(source)
    src = (source - source[:, :1]) @ turn.T
    floor = src[..., 1].min(axis=1)  # [N]: lifts each source onto the floor
    src[..., 1] -= floor[:, None]
    src[..., 0] -= PAIR_OFFSET_M
    aug = (augmented - augmented[:, :1]) @ turn.T
    aug[..., 1] -= floor[np.arange(len(aug)) // count][:, None]
    aug[..., 0] += PAIR_OFFSET_M
    return {
        "mode": "augment",
        "skeleton": skeleton(),
        "count": int(count),
        "rows": len(aug),
        "source": encode_ints(np.round(src * 1000)),
        "augmented": encode_ints(np.round(aug * 1000)),
        "keypoints": encode_ints(np.round(np.asarray(keypoints2d, dtype=np.float64))),
        "keypoint_layout": keypoint_layout(keypoint_format),
        "image": None if image_size is None else [int(image_size[0]), int(image_size[1])],
        "height": round(float(np.median(src[..., 1])) * 1000),
        "radius": round((PAIR_OFFSET_M + 1.2) * 1000),
    }
