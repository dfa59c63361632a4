"""The 3D viewer's page data and the CLI that writes it (the browser tests: tests/browser/).

The page's numbers are checked by decoding them again, its placement of people by putting
poses at known places and projecting them through a known camera.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from poseaug_client import Camera
from poseaug_client.cli import main
from poseaug_client.contract import COCO_NAMES, H36M_JOINT_NAMES, H36M_PARENTS
from poseaug_client.viewer import augment_scene, render, root_translations, track_scene
from poseaug_client.viewer.codec import decode_ints, encode_bits, encode_ints
from poseaug_client.viewer.scene import smooth_along_tracks, upright
from tests.clients.conftest import DEFAULT_MODEL
from tests.support.figures import people

HIP, THORAX = H36M_JOINT_NAMES.index("hip"), H36M_JOINT_NAMES.index("thorax")


def rotation_x(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def decoded_tracks(scene: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frames, points [n, 17, 3] mm) of every track, as the page decodes them."""
    out = []
    for track in scene["tracks"]:
        frames = decode_ints(track["frames"], 1)
        points = decode_ints(track["points"], 51).reshape(-1, 17, 3)
        assert len(frames) == len(points) == track["count"]
        out.append((frames, points))
    return out


def test_codec_round_trips_every_size_of_value() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate(
        [rng.integers(-60, 60, 500), rng.integers(-(2**20), 2**20, 500), [0, -1, 1, 2**30 - 1]]
    )
    for stride in (0, 1, 4):
        assert np.array_equal(decode_ints(encode_ints(values, stride), stride), values)
    # Small deltas take one byte: 4 base64 characters per 3 values.
    smooth = np.cumsum(rng.integers(-20, 20, 3000))
    assert len(encode_ints(smooth, 1)) == 4000
    with pytest.raises(ValueError, match="31 bits"):
        encode_ints(np.array([2**31]))


def test_bits_are_packed_most_significant_first() -> None:
    import base64

    packed = base64.b64decode(encode_bits(np.array([1, 0, 0, 0, 0, 0, 0, 1, 1], dtype=bool)))
    assert packed == bytes([0b10000001, 0b10000000])


@pytest.mark.parametrize("tilt", [0.0, 25.0, -40.0])
def test_upright_turns_the_spine_up(tilt: float) -> None:
    """A camera pitched by `tilt` sees people leaning; the viewer stands them up (y up)."""
    poses = people(20) @ rotation_x(tilt).T
    turned = poses @ upright(poses).T
    spine = turned[:, THORAX] - turned[:, HIP]
    up = spine.mean(0) / np.linalg.norm(spine.mean(0))
    assert up[1] > 0.999  # y up in the viewer (the camera frame's y is down)
    assert np.allclose(upright(poses) @ upright(poses).T, np.eye(3))
    right = turned[:, H36M_JOINT_NAMES.index("right_shoulder")] - turned[:, THORAX]
    assert np.all(right[:, 0] > 0)  # the camera's right stays right: no mirror image


def test_root_translations_recover_where_each_pose_stood() -> None:
    poses = people(6, seed=1)
    roots = np.stack([np.linspace(-2, 2, 6), np.full(6, 0.4), np.linspace(4, 9, 6)], axis=1)
    camera = Camera(1400, 1300, 960, 540)
    points = poses + roots[:, None]
    pixels = points[..., :2] / points[..., 2:] * [camera.fx, camera.fy] + [camera.cx, camera.cy]
    rays = (pixels - [camera.cx, camera.cy]) / [camera.fx, camera.fy]
    seen = np.ones((6, 17), dtype=bool)
    found = root_translations(poses, rays, seen, H36M_JOINT_NAMES)
    assert np.allclose(found, roots, atol=1e-6)
    # COCO-17 keypoints share 12 joints with H36M-17 by name; unseen ones are left out.
    coco = np.zeros((6, 17, 2))
    for k, name in enumerate(COCO_NAMES):
        if name in H36M_JOINT_NAMES:
            coco[:, k] = rays[:, H36M_JOINT_NAMES.index(name)]
    coco_seen = np.ones((6, 17), dtype=bool)
    coco[:, COCO_NAMES.index("left_wrist")] = 5.0  # a wild detection the lifter did not use
    coco_seen[:, COCO_NAMES.index("left_wrist")] = False
    assert np.allclose(root_translations(poses, coco, coco_seen, COCO_NAMES), roots, atol=1e-6)


def test_roots_are_smoothed_along_each_track_in_frame_order() -> None:
    """A steady walk keeps its path; frame-to-frame jumps of depth are taken out."""
    rng = np.random.default_rng(4)
    frames = np.concatenate([np.arange(60), np.arange(40)])  # two tracks, interleaved below
    tracks = np.array([1] * 60 + [2] * 40)
    walk = np.stack([frames * 0.02, np.zeros(100), 5 + tracks + frames * 0.01], axis=1)
    noisy = walk + rng.normal(0, 0.15, walk.shape) * [0, 0, 1]
    order = rng.permutation(100)
    smooth = np.empty_like(walk)
    smooth[order] = smooth_along_tracks(noisy[order], tracks[order], frames[order])
    inner = (frames >= 5) & (frames < np.where(tracks == 1, 55, 35))
    assert np.allclose(smooth[:, :2], walk[:, :2])  # x and y were exact: still exact
    assert np.std(smooth[inner, 2] - walk[inner, 2]) < 0.5 * np.std(noisy[:, 2] - walk[:, 2])
    steps = np.diff(smooth[tracks == 1, 2])
    assert np.std(steps) < 0.25 * np.std(np.diff(noisy[tracks == 1, 2]))


def test_track_scene_keeps_frames_tracks_and_inferred_joints() -> None:
    poses = people(7)
    tracks = np.array([5, 9, 5, 9, 5, 5, 9])
    image_ids = [10, 10, 11, 12, 12, 14, 14]  # track 9 is missing from frames 11 and 13 on
    inferred = np.zeros((7, 17), dtype=np.float32)
    inferred[3, [13, 16]] = 1.0
    scene = track_scene(poses, tracks, image_ids, inferred)
    assert scene["skeleton"] == {
        "names": list(H36M_JOINT_NAMES),
        "parents": list(H36M_PARENTS),
        "side": "CRRRLLLCCCCLLLRRR",
    }
    assert scene["frames"] == 4 and scene["frame_labels"] == [10, 11, 12, 14]
    assert [t["id"] for t in scene["tracks"]] == [5, 9]
    (frames5, points5), (frames9, points9) = decoded_tracks(scene)
    assert frames5.tolist() == [0, 1, 2, 3] and frames9.tolist() == [0, 2, 3]
    # Side by side without roots: one metre apart, each on the floor, upright (y up).
    turn = upright(poses)
    expected9 = (poses[[1, 3, 6]] @ turn.T + [0.5, 0, 0]) * 1000
    expected9[..., 1] -= expected9[..., 1].min()
    assert np.abs(points9 - expected9).max() <= 0.5
    assert points5[..., 1].min() == 0 and np.all(points5[:, THORAX, 1] > points5[:, HIP, 1])
    import base64

    bits9 = np.unpackbits(np.frombuffer(base64.b64decode(scene["tracks"][1]["inferred"]), np.uint8))
    assert np.flatnonzero(bits9[: 3 * 17]).tolist() == [17 + 13, 17 + 16]


def test_track_scene_without_tracks_shows_each_image_and_each_pose() -> None:
    poses = people(5)
    by_image = track_scene(poses, None, ["a", "a", "b", "a", "c"])
    assert by_image["frames"] == 3 and by_image["frame_labels"] == ["a", "b", "c"]
    assert [t["count"] for t in by_image["tracks"]] == [3, 1, 1]  # up to 3 people per image
    alone = track_scene(poses)
    assert alone["frames"] == 5 and [t["count"] for t in alone["tracks"]] == [5]


def test_track_scene_with_roots_puts_people_where_they_stood() -> None:
    poses = people(2)
    roots = np.array([[-1.0, 0.5, 6.0], [1.5, 0.5, 8.0]])
    scene = track_scene(poses, np.array([1, 2]), [1, 1], roots=roots)
    (_, a), (_, b) = decoded_tracks(scene)
    gap = (b[0, HIP] - a[0, HIP]) / 1000
    assert np.allclose(np.linalg.norm(gap), np.linalg.norm(roots[1] - roots[0]), atol=2e-3)


def test_augment_scene_pairs_each_row_with_its_source() -> None:
    sources = people(3)
    rng = np.random.default_rng(2)
    augmented = np.repeat(sources, 2, axis=0) + rng.normal(0, 0.05, (6, 17, 3))
    augmented[..., 2] += 5.0
    keypoints = rng.uniform(0, 1000, (6, 17, 2))
    scene = augment_scene(sources, augmented, keypoints, 2, (1000, 800))
    assert scene["rows"] == 6 and scene["count"] == 2 and scene["image"] == [1000, 800]
    src = decode_ints(scene["source"]).reshape(3, 17, 3)
    aug = decode_ints(scene["augmented"]).reshape(6, 17, 3)
    assert np.array_equal(decode_ints(scene["keypoints"]).reshape(6, 17, 2), np.round(keypoints))
    # Source left of the augmented pose, root to root at the same height.
    assert np.all(src[:, 0, 0] == -800) and np.all(aug[:, 0, 0] == 800)
    assert np.array_equal(aug[:, 0, 1], np.repeat(src[:, 0, 1], 2))
    assert src[..., 1].min() == 0


def test_page_is_one_self_contained_file() -> None:
    scene = track_scene(people(3), np.array([1, 1, 2]), [0, 1, 0])
    scene["frame_labels"] = ["</script><script>alert(1)</script>", 1]
    page = render(scene, "a <clip>", "two tracks")
    assert "<title>a &lt;clip&gt;</title>" in page
    assert not re.search(r"(src|href)\s*=|https?://|@import|fetch\(|XMLHttpRequest", page)
    data = page_data_text(page)
    assert json.loads(data) == scene and "<" not in data
    assert page.count("<script") == 2


def poseaug(capsys, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def page_data_text(page: str) -> str:
    found = re.search(r'<script type="application/json" id="poseaug-data">(.*?)</script>', page)
    assert found is not None
    return found.group(1)


def page_data(path: Path) -> dict:
    return json.loads(page_data_text(path.read_text()))


def test_lift_and_augment_write_pages_and_view_rewrites_them(
    server, keypoints, poses3d, tmp_path, capsys
) -> None:
    detections = [
        {"image_id": 1 + i // 2, "track_id": 1 + i % 2, "category_id": 1,
         "keypoints": [float(v) for v in np.c_[keypoints[i], np.full(17, 0.9)].ravel()]}
        for i in range(len(keypoints) - 1)
    ]  # fmt: skip
    (tmp_path / "dets.json").write_text(json.dumps(detections))
    code, out, err = poseaug(
        capsys, "lift", "--server", server.address, "--input", tmp_path / "dets.json",
        "--output", tmp_path / "lifted.json", "--camera", "1000,1000,500,500,1000,1000",
        "--model", DEFAULT_MODEL, "--html", tmp_path / "lift.html",
    )  # fmt: skip
    assert code == 0 and "viewer -> " in out, err
    lift = page_data(tmp_path / "lift.html")
    assert lift["mode"] == "tracks" and lift["frames"] == 11
    assert [(t["id"], t["count"]) for t in lift["tracks"]] == [(1, 11), (2, 11)]

    poseaug(
        capsys, "lift", "--server", server.address, "--input", tmp_path / "dets.json",
        "--output", tmp_path / "lifted.npz", "--model", DEFAULT_MODEL, "--image-size", "1000x1000",
    )  # fmt: skip
    for result in ("lifted.json", "lifted.npz"):
        code, _, err = poseaug(capsys, "view", tmp_path / result, "--output", tmp_path / "v.html")
        assert code == 0, err
        viewed = page_data(tmp_path / "v.html")
        assert viewed["frames"] == 11 and [t["count"] for t in viewed["tracks"]] == [11, 11]

    np.savez(tmp_path / "src.npz", pose3d=poses3d)
    code, out, _ = poseaug(
        capsys, "augment", "--server", server.address, "--input", tmp_path / "src.npz",
        "--count", "3", "--output", tmp_path / "aug.npz", "--html", tmp_path / "aug.html",
    )  # fmt: skip
    assert code == 0 and "viewer -> " in out
    aug = page_data(tmp_path / "aug.html")
    assert aug["mode"] == "augment" and aug["rows"] == 33 and aug["count"] == 3
    code, _, _ = poseaug(
        capsys, "view", tmp_path / "aug.npz", "--source", tmp_path / "src.npz",
        "--output", tmp_path / "aug2.html",
    )  # fmt: skip
    again = page_data(tmp_path / "aug2.html")
    assert code == 0 and again["augmented"] == aug["augmented"] and again["source"] == aug["source"]


def test_augment_page_draws_2d_in_the_layout_asked_for(server, poses3d, tmp_path, capsys) -> None:
    np.savez(tmp_path / "src.npz", pose3d=poses3d)
    code, _, err = poseaug(
        capsys, "augment", "--server", server.address, "--input", tmp_path / "src.npz",
        "--count", "2", "--camera", "1000,1000,640,360,1280,720", "--keypoint-format", "coco17",
        "--output", tmp_path / "aug.npz", "--html", tmp_path / "aug.html",
    )  # fmt: skip
    assert code == 0, err
    page = page_data(tmp_path / "aug.html")
    layout = page["keypoint_layout"]
    assert page["image"] == [1280, 720]
    assert layout["format"] == "coco17" and layout["count"] == 17
    assert layout["side"] == "CLRLRLRLRLRLRLRLR"  # nose, then left/right pairs
    assert [5, 6] in layout["edges"] and [0, 1] in layout["edges"]  # shoulders, nose-eye
    saved = np.load(tmp_path / "aug.npz")
    assert np.array_equal(
        decode_ints(page["keypoints"]).reshape(22, 17, 2), np.round(saved["keypoints"])
    )
    code, _, err = poseaug(
        capsys, "view", tmp_path / "aug.npz", "--source", tmp_path / "src.npz",
        "--output", tmp_path / "again.html",
    )  # fmt: skip
    assert code == 0, err
    assert page_data(tmp_path / "again.html")["keypoint_layout"] == layout


def test_view_errors_are_one_line(server, poses3d, tmp_path, capsys) -> None:
    np.savez(tmp_path / "src.npz", pose3d=poses3d)
    poseaug(
        capsys, "augment", "--server", server.address, "--input", tmp_path / "src.npz",
        "--count", "2", "--output", tmp_path / "aug.npz",
    )  # fmt: skip
    np.savez(tmp_path / "other.npz", pose3d=poses3d[:3])
    (tmp_path / "bad.json").write_text('[{"pose3d": [[1, 2]]}]')
    cases = [
        (("view", tmp_path / "aug.npz", "--output", tmp_path / "x.html"), "name its source"),
        (("view", tmp_path / "aug.npz", "--source", tmp_path / "other.npz",
          "--output", tmp_path / "x.html"), "do not match"),
        (("view", tmp_path / "bad.json", "--output", tmp_path / "x.html"), "shape [N, 17, 3]"),
        (("view", tmp_path / "src.npz", "--output", tmp_path / "x.png"), "must end in .html"),
        (("view", tmp_path / "nope.npz", "--output", tmp_path / "x.html"), "not found"),
        (("lift", "--server", server.address, "--input", tmp_path / "src.npz",
          "--output", tmp_path / "o.npz", "--html", tmp_path / "nodir" / "x.html"), "--html"),
    ]  # fmt: skip
    for args, message in cases:
        code, _, err = poseaug(capsys, *args)
        assert code == 1 and message in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "x.html").exists()
