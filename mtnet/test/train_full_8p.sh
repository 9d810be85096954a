#!/usr/bin/env bash
# MT-net data-parallel meta-training of the seed configuration (10-shot sinusoid), then test mode on rank 0's
# checkpoint (one process, 600 tasks); Ascend summary.
# Ascend: one process per NPU of RANK_TABLE_FILE (RANK_SIZE devices, default 8), gradients all-reduced by HCCL.
# CPU/GPU (no npu_bridge): --workers processes on this machine, MultiWorkerMirroredStrategy over loopback.
# meta_batch_size (BatchSize) is per device: every rank draws its own tasks (graph seed + 1000 * rank), so one
# meta-update averages the gradients of RankSize * meta_batch_size tasks.
# usage: RANK_TABLE_FILE=/path/rank_table_8p.json bash test/train_full_8p.sh [--train_steps=60000 ...]
#        bash test/train_full_8p.sh --workers=2
# Rank r logs to output/<r>/train_<r>.log (r = rank); rank 0 alone keeps checkpoints and summaries.
set -euo pipefail
Network="MTnet_for_TensorFlow"
BatchSize=4                    # meta_batch_size: tasks per step and device
FPS_UNIT=tasks
datasource=sinusoid
train_steps=60000
meta_batch_size=4
update_lr=0.01
update_batch_size=10
norm=None
use_T=True
use_M=True
share_M=True
seed=1
workers=2
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/common/ascend_wrapper.sh"
wrapper_flag datasource "sinusoid or polynomial"
wrapper_flag train_steps "meta-training iterations"
wrapper_flag meta_batch_size "tasks per step on each device"
wrapper_flag update_lr "inner-loop step size"
wrapper_flag update_batch_size "K, support points per task"
wrapper_flag norm "batch_norm, layer_norm or None"
wrapper_flag use_T "learn the transformations T (T-net, MT-net)"
wrapper_flag use_M "learn the masks M (MT-net)"
wrapper_flag share_M "one mask bit per unit"
wrapper_flag seed "graph random seed (rank r adds 1000 * r for its tasks and masks)"
wrapper_flag workers "worker processes off Ascend (on Ascend: one per device of RANK_TABLE_FILE)"
wrapper_parse "$@"
BatchSize="$meta_batch_size"
data_parallel_route "$workers"
extract_losses()   { grep -a -o '^Iteration [0-9]*: [^,]*, [0-9.e+-]*' "$1" | awk '{print $NF}'; }
extract_accuracy() { grep -a -o '^update10: mean [0-9.e+-]*' "$1" | awk '{print $NF}'; }   # test MSE, 10 steps
args=(--datasource="$datasource" --metatrain_iterations="$train_steps" --meta_batch_size="$meta_batch_size"
      --update_lr="$update_lr" --norm="$norm" --resume=True --update_batch_size="$update_batch_size"
      --use_T="$use_T" --use_M="$use_M" --share_M="$share_M" --seed="$seed" --logdir="$OUTPUT_DIR/ckpt")

data_parallel_run "$PYTHON" main.py "${args[@]}" $(ascend_args)
if [ "$TRAIN_LOG" != "$LOG" ]; then cat "$TRAIN_LOG" >> "$LOG"; fi
# Test mode is one process on rank 0's checkpoint, whatever RANK_SIZE says.
wrapper_run env -u TF_CONFIG RANK_SIZE=1 RANK_ID=0 "$PYTHON" main.py "${args[@]}" --train=False $(ascend_args)
wrapper_summary acc
