#!/usr/bin/env bash
# The commands that trained, evaluated and exported the shipped bundles on a 2-core CPU
# (about 2 hours in all). Every step resumes if killed: run the script again.
#   training/recipes/shipped_bundles.sh [DATA] [RUNS]
# With a GPU, add --device cuda and raise --epochs / lower --stride for the full recipe.
set -euo pipefail
DATA=${1:-../shared/data/h36m}
R=${2:-runs}
E=$R/eval
T="poseaug-train"
C="--data $DATA --batch-size 256 --val-stride 50"
export OMP_WAIT_POLICY=PASSIVE  # idle torch threads must not spin on a shared small CPU

# 1. Shared pretraining (projected ground-truth 2D): 10 epochs on every 10th frame, then 3 more
#    on every 5th frame with dropout 0.1.
$T baseline $C --out $R/pre_full --stride 10 --epochs 10 --lr 1e-3
$T baseline $C --out $R/pre2 --init $R/pre_full/checkpoint.pt --stride 5 --epochs 3 --lr 5e-4 --dropout 0.1

# 2. The two bundles: the same 3 epochs on every 20th frame, without and with PoseAug.
P2="$C --init $R/pre2/checkpoint.pt --stride 20 --epochs 3 --lr 2e-4 --dropout 0.1"
$T baseline $P2 --out $R/base_g
$T poseaug  $P2 --out $R/pa_g --warmup-epochs 1

# 3. The same recipe with Stacked Hourglass detections as training inputs (the paper's protocol
#    for detected 2D), and the data-scarce scenario (S1 only; its own pretraining).
$T baseline $P2 --out $R/base_s --train-2d sh
$T poseaug  $P2 --out $R/pa_s_w25 --warmup-epochs 1 --train-2d sh --aug-weight 0.25
$T baseline $C --subjects S1 --out $R/s1_pre --stride 5 --epochs 8 --lr 1e-3
S1="$C --subjects S1 --init $R/s1_pre/checkpoint.pt --stride 5 --epochs 4 --lr 2e-4"
$T baseline $S1 --out $R/s1_base
$T poseaug  $S1 --out $R/s1_pa --warmup-epochs 1
$T baseline $S1 --out $R/s1_base_s --train-2d sh
$T poseaug  $S1 --out $R/s1_pa_s_w25 --warmup-epochs 1 --train-2d sh --aug-weight 0.25

# 4. Protocols 1 and 2 on S9/S11 (every frame; every 5th for the unseen viewpoints).
V="--data $DATA"
for m in pa base; do
  $T eval $V --checkpoint $R/${m}_g/checkpoint.pt --out $E/${m}_g/h36m --inputs gt,sh
  $T eval $V --checkpoint $R/${m}_g/checkpoint.pt --out $E/${m}_g/novel --inputs novel --stride 5 --no-plots
  $T eval $V --checkpoint $R/${m}_g/checkpoint.pt --out $E/${m}_g/s9 --inputs gt --subjects S9 --stride 50 --no-plots
  $T eval $V --checkpoint $R/s1_${m}/checkpoint.pt --out $E/s1_${m}/h36m --inputs gt,sh --no-plots
done
for m in pa_s_w25 base_s; do
  $T eval $V --checkpoint $R/$m/checkpoint.pt --out $E/$m/h36m --inputs sh,gt --no-plots
  $T eval $V --checkpoint $R/s1_$m/checkpoint.pt --out $E/s1_$m/h36m --inputs sh --no-plots
done

# 5. Bundles: each manifest embeds its own evaluations and the recipe's other scenarios.
for m in pa base; do
  if [ $m = pa ]; then
    name=poseaug-vpose flag=--default sh=pa_s_w25
    desc="VPose 1f lifter (1024 ch, 4 blocks, 17 joints) trained with PoseAug on Human3.6M S1,S5,S6,S7,S8 with projected ground-truth 2D (CPU budget; see training)"
  else
    name=baseline-vpose flag= sh=base_s
    desc="The same VPose 1f lifter, data, epochs and seed as poseaug-vpose, without augmentation"
  fi
  $T export --checkpoint $R/${m}_g/checkpoint.pt --out models/$name --name $name --version 2.0.0 \
    $flag --description "$desc" \
    --evaluation h36m=$E/${m}_g/h36m/evaluation.json \
    --evaluation h36m_novelview=$E/${m}_g/novel/evaluation.json \
    --evaluation h36m_s9stride50=$E/${m}_g/s9/evaluation.json \
    --evaluation h36m_s1only=$E/s1_${m}/h36m/evaluation.json \
    --evaluation h36m_trained_on_sh=$E/$sh/h36m/evaluation.json \
    --evaluation h36m_s1only_trained_on_sh=$E/s1_$sh/h36m/evaluation.json
done
