#!/usr/bin/env bash
# Full seed run on one device: SWA (and the plain-SGD baseline) on the blobs task, 100 epochs.
# usage: bash swa/test/train_full_1p.sh [--data_path=./] [--train_epochs=100] [--batch_size=16384] [Ascend flags]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../common/ascend_wrapper.sh"
source "$HERE/train_flags.sh"
wrapper_parse "$@"
train_flags_args
wrapper_cost_note swa train_epochs="$train_epochs" num_samples="$num_samples" baseline=1
wrapper_run "$PYTHON" train-tf.keras-npu.py "${args[@]}" --model_dir="$OUTPUT_DIR/ckpt"
wrapper_summary acc
