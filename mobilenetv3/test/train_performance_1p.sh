#!/usr/bin/env bash
# MobileNetV3 training throughput on one device: a few steps, warm-up excluded; prints images/sec.
# usage: bash test/train_performance_1p.sh --data_path=<folder with train/ and validation/> [--max_step=60]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../common/ascend_wrapper.sh"
source "$HERE/train_flags.sh"
max_step=60                  # the first 5 are warm-up
epochs=1000000               # a performance run measures steps, not convergence: max_step ends it
patience=0                   # no early stopping: max_step ends it
wrapper_parse "$@"
if [ -z "$modeldir" ]; then modeldir="$OUTPUT_DIR/ckpt_perf"; rm -rf "$modeldir"; fi
train_flags_args
wrapper_run "$PYTHON" train_cls.py "${args[@]}" --log_every=1
wrapper_summary perf
