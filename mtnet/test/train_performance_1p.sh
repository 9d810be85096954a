#!/usr/bin/env bash
# Short MT-net seed-configuration run for step time and tasks/s (warm-up steps excluded); Ascend summary.
# usage: bash mtnet/test/train_performance_1p.sh [--train_steps=2000] [--use_M=False ...]   (see --help)
set -euo pipefail
Network="MTnet_for_TensorFlow"
BatchSize=4                    # meta_batch_size: tasks per step
FPS_UNIT=tasks
train_steps=2000
use_T=True
use_M=True
share_M=True
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/common/ascend_wrapper.sh"
wrapper_flag train_steps "meta-training iterations"
wrapper_flag use_T "learn the transformations T (T-net, MT-net)"
wrapper_flag use_M "learn the masks M (MT-net)"
wrapper_flag share_M "one mask bit per unit"
wrapper_parse "$@"
extract_losses() { grep -a -o '^Iteration [0-9]*: [^,]*, [0-9.e+-]*' "$1" | awk '{print $NF}'; }
rm -rf "$OUTPUT_DIR/ckpt_perf"
wrapper_run "$PYTHON" main.py --datasource=sinusoid --metatrain_iterations="$train_steps" \
  --meta_batch_size="$BatchSize" --update_lr=0.01 --norm=None --update_batch_size=10 --use_T="$use_T" \
  --use_M="$use_M" --share_M="$share_M" --resume=False --log=False --print_interval=$(( train_steps / 10 > 0 ? train_steps / 10 : 1 )) \
  --logdir="$OUTPUT_DIR/ckpt_perf" $(ascend_args)
wrapper_summary perf
