"""The viewer page in headless Chromium: it loads from disk with no network, draws the
skeleton (left and right colours on screen), and what a user does (next frame, slider, play,
drag to orbit, wheel to zoom, next row) changes what is drawn.

Chromium is Debian's package, installed by `make test` where it can be
(tests/support/install_chromium.sh); elsewhere these tests skip with that message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from poseaug_client.viewer import augment_scene, render, track_scene, write_page
from tests.support.browser import Browser, chromium_path, open_page
from tests.support.figures import people

VIEWER_JS = Path(__import__("poseaug_client.viewer", fromlist=["x"]).__file__).with_name(
    "viewer.js"
)
WIDTH, HEIGHT = 1000, 640


def side_colours() -> dict[str, np.ndarray]:
    """The left/right/middle colours, read from the viewer itself."""
    found = re.search(
        r"COLOURS = \{ L: \"#(\w{6})\", R: \"#(\w{6})\", C: \"#(\w{6})\"", VIEWER_JS.read_text()
    )
    assert found, "viewer.js no longer names its COLOURS"
    return {
        side: np.array([int(code[i : i + 2], 16) for i in (0, 2, 4)])
        for side, code in zip("LRC", found.groups(), strict=True)
    }


COLOURS = side_colours()


def count_colour(image: np.ndarray, side: str, tolerance: int = 24) -> int:
    return int(np.sum(np.all(np.abs(image.astype(int) - COLOURS[side]) <= tolerance, axis=-1)))


def changed(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.sum(np.any(a != b, axis=-1)))


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip(
            "chromium not installed: `make test` installs Debian's chromium where it can "
            "(tests/support/install_chromium.sh: root and apt-get)"
        )
    return path


def walking(frames: int, seed: int) -> np.ndarray:
    return people(frames, seed, swing=0.3, jitter=0.01)


def tracks_page(path: Path, inferred: bool = False, tracks: int = 2) -> Path:
    """30 frames of track 1 and 20 of track 2 (frames 0-19), side by side, or track 1 alone;
    `inferred`: every joint of track 1 marked inferred."""
    poses = np.concatenate([walking(30, 0), walking(20, 1)])
    ids = np.array([1] * 30 + [2] * 20)
    frames = np.array(list(range(30)) + list(range(20)))
    flags = np.zeros((50, 17))
    flags[ids == 1] = float(inferred)
    keep = ids <= tracks
    scene = track_scene(poses[keep], ids[keep], frames[keep].tolist(), flags[keep])
    write_page(path, render(scene, "two walkers", "test"))
    return path


def augment_page(path: Path) -> Path:
    sources = walking(3, 2)
    rng = np.random.default_rng(5)
    augmented = np.repeat(sources, 4, axis=0) + rng.normal(0, 0.08, (12, 17, 3))
    augmented[..., 2] += 5.0
    keypoints = augmented[..., :2] / augmented[..., 2:] * 1000 + [500, 400]
    write_page(path, render(augment_scene(sources, augmented, keypoints, 4, (1000, 800)), "aug"))
    return path


@pytest.fixture
def tracks(chromium: str, tmp_path: Path) -> Iterator[Browser]:
    with open_page(tracks_page(tmp_path / "tracks.html").as_uri(), WIDTH, HEIGHT) as browser:
        browser.wait_for("document.body && document.body.dataset.drawn")
        yield browser


def canvas_box(browser: Browser, selector: str) -> tuple[int, int, int, int]:
    return tuple(  # type: ignore[return-value]
        round(v)
        for v in browser.evaluate(
            f"(() => {{ const r = document.querySelector('{selector}').getBoundingClientRect();"
            " return [r.x, r.y, r.x + r.width, r.y + r.height]; })()"
        )
    )


def crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def test_tracks_page_draws_both_sides_offline(tracks: Browser) -> None:
    view = crop(tracks.screenshot(), canvas_box(tracks, "#view3d"))
    assert view.shape[0] > 400 and view.shape[1] > 900
    for side in "LRC":  # two skeletons: left and right limbs and the middle
        assert count_colour(view, side) > 150, side
    assert tracks.evaluate("document.getElementById('label').textContent").startswith(
        "frame 1 / 30"
    )
    assert tracks.evaluate("window.poseaugViewer.steps") == 30
    urls = tracks.requested_urls()
    assert urls and all(u.startswith(("file:", "data:")) for u in urls), urls


def test_next_frame_slider_and_play_change_the_drawing(tracks: Browser) -> None:
    box = canvas_box(tracks, "#view3d")
    first = crop(tracks.screenshot(), box)
    tracks.click("#next")
    tracks.wait_for("document.body.dataset.step === '1'")
    second = crop(tracks.screenshot(), box)
    assert changed(first, second) > 50  # the limbs moved
    assert "frame 2 / 30" in tracks.evaluate("document.getElementById('label').textContent")
    # Frame 25: track 2 has ended, so one skeleton fewer is drawn.
    tracks.evaluate(
        "(() => { const s = document.getElementById('step'); s.value = '25';"
        " s.dispatchEvent(new Event('input')); })()"
    )
    tracks.wait_for("document.body.dataset.step === '25'")
    late = crop(tracks.screenshot(), box)
    assert "1 track" in tracks.evaluate("document.getElementById('label').textContent")
    assert count_colour(late, "L") < 0.7 * count_colour(second, "L")
    tracks.click("#play")
    tracks.wait_for("Number(document.body.dataset.step) !== 25", timeout=5)
    tracks.click("#play")
    assert tracks.evaluate("window.poseaugViewer.view.playing") is False


def test_drag_orbits_and_wheel_zooms(tracks: Browser) -> None:
    box = canvas_box(tracks, "#view3d")
    before = crop(tracks.screenshot(), box)
    yaw = tracks.evaluate("window.poseaugViewer.view.yaw")
    tracks.drag((400, 300), (520, 340))
    assert tracks.evaluate("window.poseaugViewer.view.yaw") == pytest.approx(yaw + 1.2)
    turned = crop(tracks.screenshot(), box)
    assert changed(before, turned) > 500
    distance = tracks.evaluate("window.poseaugViewer.view.distance")
    tracks.mouse("mouseWheel", 500, 300, deltaX=0, deltaY=-400)
    tracks.wait_for(f"window.poseaugViewer.view.distance < {distance}")
    zoomed = crop(tracks.screenshot(), box)
    assert changed(turned, zoomed) > 500
    # Closer means bigger: more of the skeleton's colour on screen.
    assert count_colour(zoomed, "L") + count_colour(zoomed, "R") > 1.1 * (
        count_colour(turned, "L") + count_colour(turned, "R")
    )


def test_inferred_joints_are_drawn_hollow_and_dashed(chromium: str, tmp_path: Path) -> None:
    counts = []
    for name, inferred in (("seen", False), ("inferred", True)):
        page = tracks_page(tmp_path / f"{name}.html", inferred, tracks=1)
        with open_page(page.as_uri(), WIDTH, HEIGHT) as browser:
            browser.wait_for("document.body && document.body.dataset.drawn")
            view = crop(browser.screenshot(), canvas_box(browser, "#view3d"))
            counts.append(count_colour(view, "L") + count_colour(view, "R"))
    seen, inferred = counts
    # The limbs lose their filled dots and half of each bone to the dashes' gaps.
    assert inferred < 0.75 * seen, counts


def test_augment_page_shows_source_beside_augmented_and_the_2d(
    chromium: str, tmp_path: Path
) -> None:
    with open_page(augment_page(tmp_path / "aug.html").as_uri(), WIDTH, HEIGHT) as browser:
        browser.wait_for("document.body && document.body.dataset.drawn")
        box3d, box2d = canvas_box(browser, "#view3d"), canvas_box(browser, "#view2d")
        assert box2d[0] >= box3d[2] - 1  # the 2D view beside the 3D one
        shot = browser.screenshot()
        for box in (box3d, box2d):
            for side in "LR":
                assert count_colour(crop(shot, box), side) > 40, (box, side)
        assert browser.evaluate("document.getElementById('play').hidden") is True
        assert "row 1 / 12: source pose 0, augmentation 1 of 4" in browser.evaluate(
            "document.getElementById('label').textContent"
        )
        browser.click("#next")
        browser.wait_for("document.body.dataset.step === '1'")
        after = browser.screenshot()
        assert changed(crop(shot, box2d), crop(after, box2d)) > 20
        assert changed(crop(shot, box3d), crop(after, box3d)) > 20
        browser.evaluate("window.poseaugViewer.go(4)")
        assert "source pose 1, augmentation 1" in browser.evaluate(
            "document.getElementById('label').textContent"
        )
