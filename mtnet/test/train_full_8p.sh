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
source "$MODEL_DIR/test/nothing_trained.sh"
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
if "$PYTHON" -c "import sys; from common import npu_session; sys.exit(0 if npu_session.on_npu() else 3)" \
    >/dev/null 2>&1; then
  route=npu
  RankSize="${RANK_SIZE:-8}"
  if [ -z "${RANK_TABLE_FILE:-}" ] || [ ! -f "$RANK_TABLE_FILE" ]; then
    echo "train_full_8p.sh: set RANK_TABLE_FILE to the HCCL rank table of the $RankSize devices" \
         "(now '${RANK_TABLE_FILE:-}')" | tee -a "$LOG" >&2
    exit 2
  fi
  export RANK_TABLE_FILE JOB_ID="${JOB_ID:-10087}"
else
  route=collective
  RankSize="$workers"
fi
extract_losses()   { grep -a -o '^Iteration [0-9]*: [^,]*, [0-9.e+-]*' "$1" | awk '{print $NF}'; }
extract_accuracy() { grep -a -o '^update10: mean [0-9.e+-]*' "$1" | awk '{print $NF}'; }   # test MSE, 10 steps
args=(--datasource="$datasource" --metatrain_iterations="$train_steps" --meta_batch_size="$meta_batch_size"
      --update_lr="$update_lr" --norm="$norm" --resume=True --update_batch_size="$update_batch_size"
      --use_T="$use_T" --use_M="$use_M" --share_M="$share_M" --seed="$seed" --logdir="$OUTPUT_DIR/ckpt")

# The launcher writes each rank's log itself and stops every worker when one fails.
status=0
(cd "$MODEL_DIR" && "$PYTHON" -m common.launch --nproc="$RankSize" --route="$route" \
   --output_root="$(dirname "$OUTPUT_DIR")" -- "$PYTHON" main.py "${args[@]}" $(ascend_args)) || status=$?
if [ "$status" -ne 0 ]; then
  echo "train_full_8p.sh: data-parallel training failed with exit status $status" >&2
  exit "$status"
fi
TRAIN_LOG="$(dirname "$OUTPUT_DIR")/0/train_0.log"   # rank 0's log carries the losses and the step time
if [ "$TRAIN_LOG" != "$LOG" ]; then cat "$TRAIN_LOG" >> "$LOG"; fi
# Test mode is one process on rank 0's checkpoint, whatever RANK_SIZE says.
wrapper_run env -u TF_CONFIG RANK_SIZE=1 RANK_ID=0 "$PYTHON" main.py "${args[@]}" --train=False $(ascend_args)
summary_or_nothing_trained acc
