#!/usr/bin/env bash
# The commands that trained, evaluated and exported the temporal wild bundles on a 2-core CPU:
# two 75-minute runs (about 1 s a step each) side by side (one core each), then about 25 minutes of evaluation. They
# start from the single-frame wild PoseAug run (training/recipes/wild_bundles.sh), whose
# weights sit on the anchor tap of each temporal convolution, and whose augmentor and critics
# go on training. Every run resumes if killed: run the script again.
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
   --init "$R/wild_pa/checkpoint.pt" --warmup-epochs 0 --batch-size 256 --stride 5 --epochs 4
   --lr 2e-4 --threads 1 "${EXTRA[@]}")

# 1. Centred (answers frame 13 of 27; 30% of windows see a future cut at a random lookahead, so
#    it also serves streams with less lookahead) and causal (answers the newest frame).
$T poseaug "${C[@]}" --anchor centre --future-cut 0.3 --out "$R/temporal_centre" &
$T poseaug "${C[@]}" --anchor last --out "$R/temporal_causal" &
wait
