#!/usr/bin/env bash
# MobileNetV3 data-parallel training, with the Ascend summary.
# Ascend: one process per NPU of RANK_TABLE_FILE (RANK_SIZE devices, default 8), gradients all-reduced by HCCL.
# CPU/GPU (no npu_bridge): --workers processes on this machine, MultiWorkerMirroredStrategy over loopback.
# usage: RANK_TABLE_FILE=/path/rank_table_8p.json bash test/train_full_8p.sh --data_path=<folder> [--batch=32 ...]
#        bash test/train_full_8p.sh --data_path=<folder> --workers=2
# Rank r logs to output/<r>/train_<r>.log (r = device id on Ascend); rank 0 alone keeps checkpoints.
set -euo pipefail
Network="MobileNetV3_ID0256_for_TensorFlow"
BatchSize=32                 # per device, images per step
data_path=""
model=small
image_size=224
epochs=20
max_step=0
learning_rate=0.001
batch=32
modeldir=""
save_interval=0
workers=2
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
wrapper_flag workers "worker processes off Ascend (on Ascend: one per device of RANK_TABLE_FILE)"
wrapper_parse "$@"
BatchSize="$batch"
modeldir="${modeldir:-$OUTPUT_DIR/ckpt}"
if [ -z "$data_path" ]; then echo "train_full_8p.sh: --data_path is required (see --help)" >&2; exit 2; fi
data_path="$(abs_path "$data_path")"
modeldir="$(abs_path "$modeldir")"
data_parallel_route "$workers"
extract_losses()   { grep -a '^train step=' "$1" | sed -n 's/.* loss=\([0-9.eE+-]*\).*/\1/p'; }
extract_accuracy() { grep -a '^epoch [0-9]*/' "$1" | tail -n 1 | sed -n 's/.* val_acc=\([0-9.eE+-]*\).*/\1/p'; }

data_parallel_run "$PYTHON" train_cls.py --data_path="$data_path" --model="$model" --image_size="$image_size" \
  --epochs="$epochs" --max_step="$max_step" --learning_rate="$learning_rate" --batch="$batch" --modeldir="$modeldir" \
  --save_interval="$save_interval" $(ascend_args)
LOG="$TRAIN_LOG"
wrapper_summary acc
