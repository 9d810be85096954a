#!/usr/bin/env bash
# Performance run on one device: the SWA run only, no checkpoints; samples/s = batch_size / mean step time
# (full batches only, warm-up steps excluded).
# usage: bash swa/test/train_performance_1p.sh [--train_epochs=10] [--batch_size=16384] [Ascend flags]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../common/ascend_wrapper.sh"
source "$HERE/train_flags.sh"
# A performance run times steps, not accuracy: fewer epochs, averaging from the middle on.
train_epochs=10
swa_start=5
wrapper_parse "$@"
train_flags_args
wrapper_cost_note swa train_epochs="$train_epochs" num_samples="$num_samples" baseline=0
wrapper_run "$PYTHON" train-tf.keras-npu.py "${args[@]}" --baseline=False
wrapper_summary perf
