#!/usr/bin/env bash
# The commands that trained, evaluated and exported the temporal wild bundles on a 2-core CPU.
# Stages 1 and 2 run two trainings side by side, one core each (4 epochs of 1,144 steps: 67 min
# for stage 1 and 51 for stage 2, 0.55-1.3 s a step as the host's load varied):
#   1. from the single-frame wild PoseAug run (training/recipes/wild_bundles.sh), whose weights
#      sit on the anchor tap of each temporal convolution and whose augmentor and critics go on
#      training, with detector error drawn afresh each frame (how bundle 1.0.0 was trained);
#   2. from stage 1, 4 more epochs with detector error that persists over a clip's frames as the
#      real Stacked Hourglass error does (bundle 1.1.0; see DetectorErrorModel.apply_track);
#   3. the centred lifter widened to 81 frames (1.6 s), from the stage-2 bundle: its 27-frame
#      weights on the centre taps of the new widest convolution, so it starts exactly at stage
#      2; 2 epochs (59 min on one core, 1.3-1.6 s a step), beside the same 2 epochs at 27
#      frames as the control (28 min). It started from a bundle rather than stage 2's
#      checkpoint because that machine's runs were gone (train/bundle_init.py): the shipped
#      1.1.0 at models/wild-temporal-vpose, which the stage-2 export below reproduces. So
#      PoseAug's critics trained afresh; the recipe keeps it that way (bundle 1.2.0).
#      As run (2026-12-03) the stage-3 runs were runs/t81 and runs/t27, the 81-frame bundle was
#      evaluated as runs/temporal_bundles/wild-temporal-vpose-81 with lookaheads 4 and 13 in
#      their own processes, the 27-frame control from its checkpoint; the 1.1.0, stage-1 and
#      causal results were carried over from the 1.1.0 manifests (marked carried_from, the same
#      tests: the single-frame default, rerun, gave the same numbers to the last digit).
# Then the sequence tests on both cores (the 81-frame bundle's tests split over two processes,
# about 25 min without lookaheads; each lookahead adds a pass over the real detections, about
# 10 min at 81 frames; the other bundles about 20).
# Every run resumes if killed: run the script again.
#   training/recipes/temporal_bundles.sh [DATA] [RUNS] [extra flags, e.g. --device cuda]
# With a GPU, pass --device cuda and raise --epochs (and lower --stride).
set -euo pipefail
DATA=${1:-../shared/data/h36m}
R=${2:-runs}
shift $(($# < 2 ? $# : 2))
EXTRA=("$@")
E=$R/eval_temporal
T="poseaug-train"
export OMP_WAIT_POLICY=PASSIVE  # idle torch threads must not spin on a shared small CPU
# Clips of 27 frames (0.54 s at 50 fps) around every 5th frame x 4 cameras; PoseAug per clip.
C=(--data "$DATA" --wild --estimator vpose_rays_temporal --filter-widths 3,3,3 --precision bf16
   --warmup-epochs 0 --batch-size 256 --stride 5 --epochs 4 --threads 1 "${EXTRA[@]}")

# 1. Centred (answers frame 13 of 27; 30% of windows see a future cut at a random lookahead, so
#    it also serves streams with less lookahead) and causal (answers the newest frame).
S1=(--init "$R/wild_pa/checkpoint.pt" --lr 2e-4 --clip-detector-error independent)
$T poseaug "${C[@]}" "${S1[@]}" --anchor centre --future-cut 0.3 --out "$R/temporal_centre" &
$T poseaug "${C[@]}" "${S1[@]}" --anchor last --out "$R/temporal_causal" &
wait
# 2. Detector error that persists over time, from stage 1 at half its learning rate.
S2=(--lr 1e-4 --clip-detector-error track)
$T poseaug "${C[@]}" "${S2[@]}" --init "$R/temporal_centre/checkpoint.pt" --anchor centre \
  --future-cut 0.3 --out "$R/temporal_centre_track" &
$T poseaug "${C[@]}" "${S2[@]}" --init "$R/temporal_causal/checkpoint.pt" --anchor last \
  --out "$R/temporal_causal_track" &
wait

# Bundles of stages 1 and 2 (lifter weights stored as float16, see docs/training.md).
B=$R/temporal_bundles
$T export --checkpoint "$R/temporal_centre_track/checkpoint.pt" --out "$B/wild-temporal-vpose-27" \
  --name wild-temporal-vpose-27
$T export --checkpoint "$R/temporal_causal_track/checkpoint.pt" \
  --out "$B/wild-temporal-causal-vpose" --name wild-temporal-causal-vpose
$T export --checkpoint "$R/temporal_centre/checkpoint.pt" --out "$B/wild-temporal-vpose-stage1" \
  --name wild-temporal-vpose-stage1

# 3. 81 frames from the stage-2 bundle, and the 27-frame control, 2 epochs each (S3 comes after
#    C, so its --epochs 2 wins over an --epochs given as an extra flag).
S3=(--lr 1e-4 --clip-detector-error track --init "$B/wild-temporal-vpose-27" --anchor centre
    --future-cut 0.3 --epochs 2)
$T poseaug "${C[@]}" "${S3[@]}" --filter-widths 3,3,3,3 --out "$R/temporal_centre_81" &
$T poseaug "${C[@]}" "${S3[@]}" --out "$R/temporal_centre_27_control" &
wait
$T export --checkpoint "$R/temporal_centre_81/checkpoint.pt" --out "$B/wild-temporal-vpose" \
  --name wild-temporal-vpose
$T export --checkpoint "$R/temporal_centre_27_control/checkpoint.pt" \
  --out "$B/wild-temporal-vpose-27-control" --name wild-temporal-vpose-27-control

# The sequence tests, beside the single-frame wild default and the earlier stages on the same
# frames (both cores: two processes at a time; the 81-frame bundle's tests in two halves).
$T temporal-eval --data "$DATA" --out "$E/sh" --threads 1 --tests h36m_sh --lookaheads 0,4,13 \
  --model wild_temporal=$B/wild-temporal-vpose &
$T temporal-eval --data "$DATA" --out "$E/rest" --threads 1 --tests h36m_gt,unseen \
  --model wild_temporal=$B/wild-temporal-vpose &
wait
$T temporal-eval --data "$DATA" --out "$E/other" --threads 1 --lookaheads 0,4 \
  --model wild_poseaug_single=models/wild-poseaug-vpose \
  --model wild_temporal_27=$B/wild-temporal-vpose-27 &
{ $T temporal-eval --data "$DATA" --out "$E/other2" --threads 1 \
    --model wild_temporal_causal=$B/wild-temporal-causal-vpose \
    --model wild_temporal_stage1=$B/wild-temporal-vpose-stage1
  $T temporal-eval --data "$DATA" --out "$E/control" --threads 1 --tests h36m_sh \
    --model wild_temporal_27_control=$B/wild-temporal-vpose-27-control; } &
wait
# One table of every model's tests (a model's tests split over two folders merge).
python -c "import json, pathlib, sys; from poseaug_training.pipeline import temporal_table; \
e = pathlib.Path(sys.argv[1]); r = {}; [r.setdefault(p.parent.name, {}).update( \
json.loads(p.read_text())['results']) for p in sorted(e.glob('*/*/evaluation.json'))]; \
(e / 'comparison.md').write_text(temporal_table(r))" "$E"

# 4. The shipped bundles, with their evaluation in the manifest.
$T export --checkpoint "$R/temporal_centre_81/checkpoint.pt" --out models/wild-temporal-vpose \
  --name wild-temporal-vpose --version 1.2.0 \
  --evaluation "temporal=$E/sh/wild_temporal/evaluation.json" \
  --evaluation "temporal=$E/rest/wild_temporal/evaluation.json" \
  --evaluation "temporal_lookahead0=$E/sh/wild_temporal@lookahead0/evaluation.json" \
  --evaluation "temporal_lookahead4=$E/sh/wild_temporal@lookahead4/evaluation.json" \
  --evaluation "temporal_lookahead13=$E/sh/wild_temporal@lookahead13/evaluation.json" \
  --evaluation "temporal_single_frame_default=$E/other/wild_poseaug_single/evaluation.json" \
  --evaluation "temporal_27frames=$E/other/wild_temporal_27/evaluation.json" \
  --evaluation "temporal_27frames_control=$E/control/wild_temporal_27_control/evaluation.json" \
  --evaluation "temporal_stage1=$E/other2/wild_temporal_stage1/evaluation.json" \
  --description "Temporal camera-aware VPose (81 frames, centred; serves lookahead 0-40) for tracked people in real footage: PoseAug per clip on virtual cameras, detector error that persists over time as a real detector's, occlusion (Human3.6M S1,S5,S6,S7,S8), from wild-poseaug-vpose"
$T export --checkpoint "$R/temporal_causal_track/checkpoint.pt" \
  --out models/wild-temporal-causal-vpose --name wild-temporal-causal-vpose --version 1.1.0 \
  --evaluation "temporal=$E/other2/wild_temporal_causal/evaluation.json" \
  --evaluation "temporal_single_frame_default=$E/other/wild_poseaug_single/evaluation.json" \
  --description "Causal twin of wild-temporal-vpose (27 frames ending at the answered one) for live streams that answer every frame at once"
