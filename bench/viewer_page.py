"""Size of a viewer page (`poseaug lift --html`): two tracks over many frames.

The motion is the example clip's own (examples/two_people_walking/make_clip.py, the same
procedural walkers, run for --frames frames at 50 fps), mapped to H36M-17 as the server maps
COCO-17, taken root-relative as the service answers it and put back where each person stood,
with 3% of the joints marked inferred, as a lift's page holds them. Prints the page's bytes,
what its data and its script take, and the bytes per pose; gzip for comparison (a page is
opened from disk, not served compressed).

    python bench/viewer_page.py [--frames 1000] [--out page.html]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import re
from pathlib import Path

import numpy as np

from poseaug.v1 import poseaug_pb2
from poseaug_client.viewer import render, track_scene
from poseaug_service.keypoint_formats import FORMATS, to_h36m

REPO = Path(__file__).resolve().parents[1]


def example_walkers(frames: int) -> np.ndarray:
    """[2, frames, 17, 3] camera-frame H36M-17 joints of the example clip's two walkers."""
    path = REPO / "examples" / "two_people_walking" / "make_clip.py"
    spec = importlib.util.spec_from_file_location("make_clip", path)
    clip = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(clip)
    coco = np.stack([clip.to_camera(clip.walk(person, frames)) for person in clip.PEOPLE])
    return to_h36m(coco.reshape(-1, 17, 3), FORMATS[poseaug_pb2.KEYPOINT_FORMAT_COCO_17][1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="also write the page here")
    args = parser.parse_args()
    joints = example_walkers(args.frames)  # track 1's frames, then track 2's
    roots = joints[:, 0].copy()
    poses = joints - roots[:, None]
    tracks = np.repeat([1, 2], args.frames)
    frames = np.tile(np.arange(args.frames), 2).tolist()
    inferred = np.random.default_rng(0).random((len(poses), 17)) < 0.03
    page = render(track_scene(poses, tracks, frames, inferred, roots), "bench", "two tracks")
    data = re.search(r'id="poseaug-data">(.*?)</script>', page, re.S).group(1)
    size = len(page.encode())
    print(f"{args.frames} frames x 2 tracks ({len(poses)} poses):")
    print(f"  page     {size:>9,} bytes ({size / len(poses):.0f} per pose)")
    print(f"  data     {len(data):>9,} bytes")
    print(f"  script   {size - len(data):>9,} bytes (viewer.js, markup, styles)")
    print(f"  gzipped  {len(gzip.compress(page.encode())):>9,} bytes")
    if args.out:
        args.out.write_text(page)


if __name__ == "__main__":
    main()
