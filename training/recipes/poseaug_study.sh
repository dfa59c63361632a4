#!/usr/bin/env bash
# The PoseAug study (issue 20): does the camera-aware generation's augmentor add what virtual
# cameras cannot? Table S1 (twin, augmentation without error feedback, PoseAug) on three
# novelty stand-ins, at a study scale both sides share (512 channels, bf16):
#   full   S1, S5, S6, S7, S8 (every 10th frame)      -> unseen cameras, unseen bodies
#   nosit  the same without Sitting and SittingDown   -> unseen poses (those two actions)
#   s1     S1 alone (every 2nd frame: the same steps) -> unseen cameras (scarce data)
# Each setting: 6 pretraining epochs, then 4 epochs of each row from the same pretraining, one
# core each (run side by side). Every step resumes if killed: run the script again.
#   training/recipes/poseaug_study.sh [DATA] [RUNS] [SEEDS, e.g. "0 1 2"] [extra flags]
# It ran on the 2-core CPU of this project beside other work (wall times in each run's
# checkpoint); with a GPU pass --device cuda.
set -euo pipefail
DATA=${1:-../shared/data/h36m}
R=${2:-runs/study}
SEEDS=${3:-0}
shift $(($# < 3 ? $# : 3))
EXTRA=("$@")
T="poseaug-train"
export OMP_WAIT_POLICY=PASSIVE
C=(--data "$DATA" --wild --estimator vpose_rays --precision bf16 --batch-size 512 --channels 512
   --val-stride 100 --threads 1 "${EXTRA[@]}")
declare -A SET=(
  [full]="--stride 10"
  [nosit]="--stride 10 --exclude-actions Sitting,SittingDown"
  [s1]="--subjects S1 --stride 2"
)
declare -A TESTS=([full]="unseen,unseen_bodies,h36m_sh" [nosit]="unseen_actions" [s1]="unseen")
# The camera-aware augmentor: RT about gravity only (tilt <= 60 deg), the joint-limit penalty,
# a smaller BA range than the official 0.205 +- 0.165, BL on other bodies.
PA=(--warmup-epochs 1 --rt-mode gravity --max-tilt-deg 60 --w-rom 100 --ba-range 0.1,0.08
    --bl-limit 0.3 --bl-reg-limit 0.2 --bl-bodies)
NOFB=(--w-feedback-ba 0 --w-feedback-rt 0)

for s in "${!SET[@]}"; do  # pretraining, the three settings side by side
  # shellcheck disable=SC2086
  $T baseline "${C[@]}" ${SET[$s]} --out "$R/${s}_pre" --epochs 6 --lr 1e-3 &
done
wait
for seed in $SEEDS; do
  for s in "${!SET[@]}"; do
    F=("${C[@]}" ${SET[$s]} --init "$R/${s}_pre/checkpoint.pt" --epochs 4 --lr 2e-4 --seed "$seed")
    $T baseline "${F[@]}" --out "$R/${s}_twin_seed$seed" &
    $T poseaug "${F[@]}" "${PA[@]}" --out "$R/${s}_poseaug_seed$seed" &
    $T poseaug "${F[@]}" "${PA[@]}" "${NOFB[@]}" --out "$R/${s}_no_feedback_seed$seed" &
    wait
  done
done
# The stand-ins, each setting's models side by side (named ROW_seedK for study-table).
for s in "${!SET[@]}"; do
  M=()
  for run in "$R/${s}"_*_seed*; do M+=(--model "$(basename "$run" | sed "s/^${s}_//")=$run/checkpoint.pt"); done
  $T wild-eval --data "$DATA" --out "$R/eval_$s" --tests "${TESTS[$s]}" --stride 10 "${M[@]}"
done
$T study-table --setting "full=$R/eval_full" --setting "nosit=$R/eval_nosit" \
  --setting "s1=$R/eval_s1" --out docs/results/poseaug_study
