#!/usr/bin/env bash
# MobileNetV3 training throughput on one device: a few steps, warm-up excluded; prints images/sec.
# usage: bash test/train_performance_1p.sh --data_path=<folder with train/ and validation/> [--max_step=60]
set -euo pipefail
Network="MobileNetV3_ID0256_for_TensorFlow"
BatchSize=32                 # per device, images per step
data_path=""
model=small
image_size=224
max_step=60
learning_rate=0.001
batch=32
modeldir=""
save_interval=0
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/common/ascend_wrapper.sh"
wrapper_flag data_path "source data of training (train/<class>/, validation/<class>/)"
wrapper_flag model "large or small"
wrapper_flag image_size "input height and width"
wrapper_flag max_step "# of step for training (the first 5 are warm-up)"
wrapper_flag learning_rate "learning rate"
wrapper_flag batch "batch size"
wrapper_flag modeldir "model dir (default <output>/ckpt_perf, cleared first)"
wrapper_flag save_interval "save interval for ckpt in steps (0: every epoch)"
wrapper_parse "$@"
BatchSize="$batch"
if [ -z "$modeldir" ]; then modeldir="$OUTPUT_DIR/ckpt_perf"; rm -rf "$modeldir"; fi
if [ -z "$data_path" ]; then echo "train_performance_1p.sh: --data_path is required (see --help)" >&2; exit 2; fi
data_path="$(abs_path "$data_path")"
modeldir="$(abs_path "$modeldir")"
extract_losses() { grep -a '^train step=' "$1" | sed -n 's/.* loss=\([0-9.eE+-]*\).*/\1/p'; }
# A performance run measures steps, not convergence: one long epoch, no early stopping.
wrapper_run "$PYTHON" train_cls.py --data_path="$data_path" --model="$model" --image_size="$image_size" \
  --epochs=1000000 --patience=0 --max_step="$max_step" --learning_rate="$learning_rate" --batch="$batch" \
  --modeldir="$modeldir" --save_interval="$save_interval" --log_every=1 $(ascend_args)
wrapper_summary perf
