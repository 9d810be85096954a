#!/usr/bin/env bash
# Short MT-net seed-configuration run for step time and tasks/s (warm-up steps excluded); Ascend summary.
# usage: bash mtnet/test/train_performance_1p.sh [--train_steps=2000] [--use_M=False ...]   (see --help)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../common/ascend_wrapper.sh"
source "$HERE/seed_config.sh"
train_steps=2000               # a performance run times steps, not convergence
wrapper_parse "$@"
rm -rf "$OUTPUT_DIR/ckpt_perf"
wrapper_cost_note mtnet train_steps="$train_steps" meta_batch_size="$meta_batch_size"
seed_config_args "$OUTPUT_DIR/ckpt_perf" False
wrapper_run "$PYTHON" main.py "${args[@]}" --log=False --print_interval=$(( train_steps / 10 > 0 ? train_steps / 10 : 1 ))
wrapper_summary perf
