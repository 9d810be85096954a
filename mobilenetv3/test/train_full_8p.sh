#!/usr/bin/env bash
# MobileNetV3 data-parallel training on 8 Ascend NPUs (one process per device, HCCL all-reduce of gradients).
# usage: RANK_TABLE_FILE=/path/rank_table_8p.json bash test/train_full_8p.sh --data_path=<folder> [--batch=32 ...]
# Needs npu_bridge; on CPU/GPU use train_full_1p.sh (multi-worker CPU/GPU training is a separate route).
set -euo pipefail
Network="MobileNetV3_ID0256_for_TensorFlow"
BatchSize=32                 # per device, images per step
RankSize="${RANK_SIZE:-8}"   # devices 0..RankSize-1
data_path=""
model=small
image_size=224
epochs=20
max_step=0
learning_rate=0.001
batch=32
modeldir=""
save_interval=0
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/common/ascend_wrapper.sh"
wrapper_flag data_path "source data of training (train/<class>/, validation/<class>/)"
wrapper_flag model "large or small"
wrapper_flag image_size "input height and width"
wrapper_flag epochs "epochs (early stopping may end sooner)"
wrapper_flag max_step "# of step for training (0: all epochs)"
wrapper_flag learning_rate "learning rate"
wrapper_flag batch "batch size per device"
wrapper_flag modeldir "model dir written by rank 0 (default <output>/ckpt)"
wrapper_flag save_interval "save interval for ckpt in steps (0: every epoch)"
wrapper_parse "$@"
BatchSize="$batch"
modeldir="${modeldir:-$OUTPUT_DIR/ckpt}"
if [ -z "$data_path" ]; then echo "train_full_8p.sh: --data_path is required (see --help)" >&2; exit 2; fi
# The script runs from the model directory: make relative paths absolute first.
abs_path() { case "$1" in /*|"") echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
data_path="$(abs_path "$data_path")"
modeldir="$(abs_path "$modeldir")"
if ! "$PYTHON" -c "import sys; from common import npu_session; sys.exit(0 if npu_session.on_npu() else 3)" \
    >/dev/null 2>&1; then
  echo "train_full_8p.sh: 8-device training needs Ascend NPUs with npu_bridge, which $PYTHON cannot import;" \
       "on CPU/GPU run test/train_full_1p.sh (one process)" | tee -a "$LOG" >&2
  exit 2
fi
if [ -z "${RANK_TABLE_FILE:-}" ] || [ ! -f "$RANK_TABLE_FILE" ]; then
  echo "train_full_8p.sh: set RANK_TABLE_FILE to the HCCL rank table of the $RankSize devices" \
       "(now '${RANK_TABLE_FILE:-}')" | tee -a "$LOG" >&2
  exit 2
fi
export RANK_TABLE_FILE RANK_SIZE="$RankSize" JOB_ID="${JOB_ID:-10087}"
extract_losses()   { grep -a '^train step=' "$1" | sed -n 's/.* loss=\([0-9.eE+-]*\).*/\1/p'; }
extract_accuracy() { grep -a '^epoch [0-9]*/' "$1" | tail -n 1 | sed -n 's/.* val_acc=\([0-9.eE+-]*\).*/\1/p'; }

# One process per device; device 0 (rank 0, which writes checkpoints) logs to $LOG, the others beside it.
OUTPUT_ROOT_DIR="$(dirname "$OUTPUT_DIR")"
pids=()
for ((rank = 0; rank < RankSize; rank++)); do
  mkdir -p "$OUTPUT_ROOT_DIR/$rank"
  rank_log="$OUTPUT_ROOT_DIR/$rank/train_$rank.log"
  [ "$rank" -eq 0 ] && rank_log="$LOG"
  echo "+ rank $rank: $PYTHON train_cls.py ... (log $rank_log)" | tee -a "$LOG"
  (cd "$MODEL_DIR" && ASCEND_DEVICE_ID=$rank RANK_ID=$rank exec "$PYTHON" train_cls.py --data_path="$data_path" \
     --model="$model" --image_size="$image_size" --epochs="$epochs" --max_step="$max_step" \
     --learning_rate="$learning_rate" --batch="$batch" --modeldir="$modeldir" --save_interval="$save_interval" \
     $(ascend_args)) >> "$rank_log" 2>&1 &
  pids+=("$!")
done
status=0
for rank in "${!pids[@]}"; do
  if ! wait "${pids[$rank]}"; then
    echo "train_full_8p.sh: rank $rank failed; see $OUTPUT_ROOT_DIR/$rank/train_$rank.log" >&2
    status=1
  fi
done
[ "$status" -eq 0 ] || exit "$status"
wrapper_summary acc
