#!/usr/bin/env bash
# MT-net seed configuration (10-shot sinusoid, 60000 iterations), then test mode on 600 tasks; Ascend summary.
# usage: bash mtnet/test/train_full_1p.sh [--train_steps=60000] [--use_M=False ...]   (see --help)
# Rerun on a finished checkpoint (train_steps already reached): "nothing to train", test mode, no step time.
set -euo pipefail
Network="MTnet_for_TensorFlow"
BatchSize=4                    # meta_batch_size: tasks per step
FPS_UNIT=tasks
datasource=sinusoid
train_steps=60000
update_lr=0.01
update_batch_size=10
norm=None
use_T=True
use_M=True
share_M=True
seed=1
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/common/ascend_wrapper.sh"
wrapper_flag datasource "sinusoid or polynomial"
wrapper_flag train_steps "meta-training iterations"
wrapper_flag update_lr "inner-loop step size"
wrapper_flag update_batch_size "K, support points per task"
wrapper_flag norm "batch_norm, layer_norm or None"
wrapper_flag use_T "learn the transformations T (T-net, MT-net)"
wrapper_flag use_M "learn the masks M (MT-net)"
wrapper_flag share_M "one mask bit per unit"
wrapper_flag seed "graph random seed"
wrapper_parse "$@"
extract_losses()   { grep -a -o '^Iteration [0-9]*: [^,]*, [0-9.e+-]*' "$1" | awk '{print $NF}'; }
extract_accuracy() { grep -a -o '^update10: mean [0-9.e+-]*' "$1" | awk '{print $NF}'; }   # test MSE, 10 steps
args=(--datasource="$datasource" --metatrain_iterations="$train_steps" --meta_batch_size="$BatchSize"
      --update_lr="$update_lr" --norm="$norm" --resume=True --update_batch_size="$update_batch_size"
      --use_T="$use_T" --use_M="$use_M" --share_M="$share_M" --seed="$seed" --logdir="$OUTPUT_DIR/ckpt")
wrapper_run "$PYTHON" main.py "${args[@]}" $(ascend_args)
wrapper_run "$PYTHON" main.py "${args[@]}" --train=False $(ascend_args)
wrapper_summary acc
