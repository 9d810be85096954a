#!/usr/bin/env bash
# Performance run on one device: the SWA run only, no checkpoints; samples/s = batch_size / mean step time
# (full batches only, warm-up steps excluded).
# usage: bash swa/test/train_performance_1p.sh [--train_epochs=10] [--batch_size=16384] [Ascend flags]
set -euo pipefail
Network="SWA_ID0252_for_TensorFlow"
BatchSize=16384
FPS_UNIT=samples
data_path="./"                   # unused: the blobs are generated
train_epochs=10
batch_size=16384
num_samples=131072
swa_start=5
swa_freq=3
swa_lr=0.001
swa_lr2=0.003
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/common/ascend_wrapper.sh"
wrapper_flag data_path "unused (no data set to download; kept for the Ascend convention)"
wrapper_flag train_epochs "epochs"
wrapper_flag batch_size "samples per step"
wrapper_flag num_samples "blob points generated before the 80/20 train/test split"
wrapper_flag swa_start "SWA start epoch, counted from 1"
wrapper_flag swa_freq "epochs per SWA cycle"
wrapper_flag swa_lr "SWA learning rate (bottom of the cycle)"
wrapper_flag swa_lr2 "top of the cyclic learning rate"
wrapper_parse "$@"
BatchSize="$batch_size"
extract_losses()   { grep -a -o '^swa epoch [0-9]*/[0-9]* loss: [0-9.eE+-]*' "$1" | awk '{print $NF}'; }
wrapper_run "$PYTHON" train-tf.keras-npu.py --train_epochs="$train_epochs" --batch_size="$batch_size" \
  --num_samples="$num_samples" --swa_start="$swa_start" --swa_freq="$swa_freq" --swa_lr="$swa_lr" \
  --swa_lr2="$swa_lr2" --baseline=False $(ascend_args)
wrapper_summary perf
