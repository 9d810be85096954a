#!/usr/bin/env bash
# MT-net seed configuration (10-shot sinusoid, 60000 iterations), then test mode on 600 tasks; Ascend summary.
# usage: bash mtnet/test/train_full_1p.sh [--train_steps=60000] [--use_M=False ...]   (see --help)
# Rerun on a finished checkpoint (train_steps already reached): "nothing to train", test mode, no step time.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../common/ascend_wrapper.sh"
source "$HERE/seed_config.sh"
wrapper_parse "$@"
wrapper_cost_note mtnet train_steps="$train_steps" meta_batch_size="$meta_batch_size"
seed_config_args "$OUTPUT_DIR/ckpt" True
wrapper_run "$PYTHON" main.py "${args[@]}"
wrapper_run "$PYTHON" main.py "${args[@]}" --train=False
wrapper_summary acc
