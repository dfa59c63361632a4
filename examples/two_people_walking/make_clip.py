"""Make the example clip: two people walking and turning, seen by one camera, as a tracker's
COCO keypoint results (detections.json) plus that camera (camera.json).

Everything here is procedural and seeded; no recorded motion or licensed data goes in. The
bodies have the average segment proportions of Drillis and Contini (1966; as tabulated in
Winter, "Biomechanics and Motor Control of Human Movement", fig. 4.1), the gait is a few
sinusoids, and the "detector" adds errors that persist over frames, rare gross errors, and low
scores where one person hides the other or a limb is behind its own body.

    python examples/two_people_walking/make_clip.py            # rewrites the two files
    python examples/two_people_walking/make_clip.py --seed 1 --out /tmp/clip
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from poseaug_client.contract import COCO_NAMES

FPS = 50
SECONDS = 3.0
#: The camera: 1920x1080, 69 degrees across, 1.6 m above the floor, pitched 8 degrees down.
CAMERA = {"fx": 1400.0, "fy": 1400.0, "cx": 960.0, "cy": 540.0, "width": 1920, "height": 1080}
CAMERA_HEIGHT_M = 1.6
CAMERA_PITCH_DEG = 8.0

# Heights above the floor and widths as fractions of body height (Drillis and Contini).
EYE, SHOULDER, ELBOW, WRIST, HIP, KNEE, ANKLE = 0.936, 0.818, 0.630, 0.485, 0.530, 0.285, 0.039
SHOULDER_WIDTH, HIP_WIDTH = 0.259, 0.191
# Head points the table does not give, placed by hand (metres, from the head's midline).
NOSE_DROP_M, NOSE_FORWARD_M, EYE_FORWARD_M, EYE_APART_M, EAR_APART_M = (
    0.045,
    0.10,
    0.08,
    0.063,
    0.15,
)

# The world frame has the camera's axes before its pitch: x right, y down, z away from the
# camera; the floor is y = 0.
DOWN = np.array([0.0, 1.0, 0.0])

#: Who walks where: height (m), start on the floor (x, z), start heading (degrees, 0 = away
#: from the camera, 90 = to the camera's right), speed (m/s), cadence (strides/s), gait phase,
#: and the turn rate (degrees/s) as a function of time.
PEOPLE = (
    {
        "track_id": 1,
        "height": 1.76,
        "start": (-2.8, 8.6),
        "heading": 110.0,
        "speed": 1.35,
        "cadence": 0.95,
        "phase": 0.0,
        "turn": lambda t: 30.0,  # a steady arc towards the camera's right
    },
    {
        "track_id": 2,
        "height": 1.62,
        "start": (1.0, 5.8),
        "heading": -95.0,
        "speed": 1.15,
        "cadence": 0.9,
        "phase": 1.7,
        "turn": lambda t: 180.0 if 1.6 <= t < 2.6 else 0.0,  # turns round after 1.6 s
    },
)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def body(height: float, floor_xz: np.ndarray, heading: float, phase: float) -> np.ndarray:
    """COCO-17 joints [17, 3] of one walking body in the world frame, gait at `phase`."""
    forward = np.array([math.sin(heading), 0.0, math.cos(heading)])
    right = np.cross(DOWN, forward)

    def limb(theta: float) -> np.ndarray:  # a segment swung forward by theta from hanging
        return DOWN * math.cos(theta) + forward * math.sin(theta)

    joints: dict[str, np.ndarray] = {}
    pelvis = np.zeros(3)  # hung from the pelvis; lowered onto the floor at the end
    for side, sign, offset in (("right", 1.0, 0.0), ("left", -1.0, math.pi)):
        p = phase + offset
        hip_flex = math.radians(4.0 + 22.0 * math.sin(p))
        knee_flex = math.radians(6.0 + 58.0 * max(0.0, math.sin(p + 0.9)) ** 2)
        hip = pelvis + right * sign * HIP_WIDTH * height / 2
        knee = hip + limb(hip_flex) * (HIP - KNEE) * height
        joints[f"{side}_hip"], joints[f"{side}_knee"] = hip, knee
        joints[f"{side}_ankle"] = knee + limb(hip_flex - knee_flex) * (KNEE - ANKLE) * height
        # The arm swings with the other leg.
        swing = math.radians(-16.0 * math.sin(p))
        elbow_flex = math.radians(14.0 + 10.0 * max(0.0, -math.sin(p)))
        thorax = pelvis - DOWN * (SHOULDER - HIP) * height + forward * 0.03
        shoulder = thorax + right * sign * SHOULDER_WIDTH * height / 2
        elbow = shoulder + limb(swing) * (SHOULDER - ELBOW) * height
        joints[f"{side}_shoulder"], joints[f"{side}_elbow"] = shoulder, elbow
        joints[f"{side}_wrist"] = elbow + limb(swing + elbow_flex) * (ELBOW - WRIST) * height
        eye = pelvis - DOWN * (EYE - HIP) * height + forward * (0.03 + EYE_FORWARD_M)
        joints[f"{side}_eye"] = eye + right * sign * EYE_APART_M / 2
        joints[f"{side}_ear"] = eye - forward * EYE_FORWARD_M + right * sign * EAR_APART_M / 2
    joints["nose"] = (
        pelvis - DOWN * ((EYE - HIP) * height - NOSE_DROP_M) + forward * (0.03 + NOSE_FORWARD_M)
    )
    points = np.stack([joints[name] for name in COCO_NAMES])
    lowest = points[:, 1].max()  # the stance ankle stands ANKLE * height above the floor
    points[:, 1] -= lowest + ANKLE * height
    points[:, [0, 2]] += floor_xz
    return points


def walk(person: dict, frames: int) -> np.ndarray:
    """[frames, 17, 3] world positions of one person along their path."""
    xz = np.asarray(person["start"], dtype=np.float64)
    heading = math.radians(person["heading"])
    out = []
    for f in range(frames):
        t = f / FPS
        phase = person["phase"] + 2 * math.pi * person["cadence"] * t
        out.append(body(person["height"], xz, heading, phase))
        heading += math.radians(person["turn"](t)) / FPS
        xz = xz + person["speed"] / FPS * np.array([math.sin(heading), math.cos(heading)])
    return np.stack(out)


def to_camera(world: np.ndarray) -> np.ndarray:
    """World points to the camera frame (x right, y down, z forward), metres."""
    pitch = math.radians(CAMERA_PITCH_DEG)
    rows = np.array(  # the camera's axes in the world frame; its z looks down by `pitch`
        [
            [1.0, 0.0, 0.0],
            [0.0, math.cos(pitch), -math.sin(pitch)],
            [0.0, math.sin(pitch), math.cos(pitch)],
        ]
    )
    return (world - np.array([0.0, -CAMERA_HEIGHT_M, 0.0])) @ rows.T


def project(points: np.ndarray) -> np.ndarray:
    """Camera-frame points [..., 3] to pixels [..., 2] (no distortion)."""
    xy = points[..., :2] / points[..., 2:]
    return xy * [CAMERA["fx"], CAMERA["fy"]] + [CAMERA["cx"], CAMERA["cy"]]


def _hidden(
    pixels: np.ndarray, depth: np.ndarray, other_pixels: np.ndarray, other_depth: np.ndarray
) -> np.ndarray:
    """[17] True where a joint lies inside the nearer other person's outline (their box,
    shrunk a little) while being farther from the camera."""
    low, high = other_pixels.min(0), other_pixels.max(0)
    margin = 0.15 * (high - low)
    inside = np.all((pixels > low + margin) & (pixels < high - margin), axis=1)
    return inside & (depth > other_depth.mean() + 0.2)


def _self_hidden(points: np.ndarray) -> np.ndarray:
    """[17] True for a wrist or elbow that the camera sees through its own torso, behind it."""
    torso = [COCO_NAMES.index(f"{s}_{j}") for s in ("left", "right") for j in ("shoulder", "hip")]
    pixels = project(points)
    low, high = pixels[torso].min(0), pixels[torso].max(0)
    depth = points[torso, 2].mean()
    hidden = np.zeros(len(COCO_NAMES), dtype=bool)
    for name in ("left_elbow", "right_elbow", "left_wrist", "right_wrist"):
        j = COCO_NAMES.index(name)
        hidden[j] = bool(
            np.all((pixels[j] > low) & (pixels[j] < high)) and points[j, 2] > depth + 0.1
        )
    return hidden


def detect(truth: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Detector-like keypoints [P, F, 17, 2] and scores [P, F, 17] of camera-frame truth
    [P, F, 17, 3]: errors that persist over frames (AR(1)), a few gross errors, low scores
    (and larger errors) where a joint is hidden."""
    people, frames, joints, _ = truth.shape
    pixels = project(truth)
    size = pixels[..., 1].max(-1) - pixels[..., 1].min(-1)  # [P, F] person height in pixels
    error = np.zeros((people, joints, 2))
    keypoints = np.empty_like(pixels)
    scores = np.empty(pixels.shape[:-1])
    for f in range(frames):
        error = 0.85 * error + math.sqrt(1 - 0.85**2) * rng.normal(size=error.shape)
        for p in range(people):
            hidden = _self_hidden(truth[p, f])
            for q in range(people):
                if q != p:
                    hidden |= _hidden(
                        pixels[p, f], truth[p, f, :, 2], pixels[q, f], truth[q, f, :, 2]
                    )
            sigma = 0.012 * size[p, f] * np.where(hidden, 3.0, 1.0)
            gross = rng.random(joints) < 0.004
            jump = rng.normal(size=(joints, 2)) * 0.08 * size[p, f] * gross[:, None]
            keypoints[p, f] = pixels[p, f] + error[p] * sigma[:, None] + jump
            seen = np.clip(rng.normal(0.9, 0.04, joints), 0.5, 0.99)
            scores[p, f] = np.where(hidden, rng.uniform(0.05, 0.28, joints), seen)
            scores[p, f, gross] = rng.uniform(0.25, 0.5, int(gross.sum()))
    return keypoints, scores


def make_clip(seed: int = 0) -> tuple[list[dict], np.ndarray]:
    """(COCO keypoint results in frame order, camera-frame truth [P, F, 17, 3] metres)."""
    frames = round(SECONDS * FPS)
    truth = np.stack([to_camera(walk(person, frames)) for person in PEOPLE])
    keypoints, scores = detect(truth, np.random.default_rng(seed))
    detections = []
    for f in range(frames):
        for p, person in enumerate(PEOPLE):
            triples = np.concatenate([keypoints[p, f], scores[p, f, :, None]], axis=1)
            values = [
                round(float(v), 2 if i % 3 == 2 else 1) for i, v in enumerate(triples.ravel())
            ]
            detections.append(
                {
                    "image_id": f + 1,
                    "category_id": 1,
                    "track_id": person["track_id"],
                    "keypoints": values,
                    "score": round(float(scores[p, f].mean()), 3),
                }
            )
    return detections, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    detections, _ = make_clip(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    lines = ",\n".join(json.dumps(d, separators=(",", ":")) for d in detections)
    (args.out / "detections.json").write_text(f"[\n{lines}\n]\n")
    (args.out / "camera.json").write_text(json.dumps(CAMERA, indent=2) + "\n")
    print(f"{len(detections)} detections -> {args.out / 'detections.json'}")


if __name__ == "__main__":
    main()
