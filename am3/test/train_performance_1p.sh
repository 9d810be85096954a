#!/usr/bin/env bash
# AM3-TADAM seed configuration, short run for step time, episodes/s and images/s (no validation).
#   bash am3/test/train_performance_1p.sh --data_path=/data/mini-imagenet [--train_steps=20]
set -euo pipefail
Network="AM3_ID1260_for_TensorFlow"
BatchSize=145                    # images per step: 5 tasks x (5-way 1-shot support + 24 queries)
TasksPerStep=5
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/common/ascend_wrapper.sh"
# AM3_TADAM.py's options (am3/options.py): their defaults and kinds except as stated below; --train_steps is its
# --number_of_steps.
wrapper_options am3 data_path train_steps:number_of_steps num_filters
train_steps=20                   # a performance run times steps, not convergence
# This wrapper's --help words (unchanged since before the declarations: the wrappers' --help is the contract).
wrapper_help data_path "folder with few-shot-*.npz (or its parent holding mini-imagenet/)"
wrapper_help train_steps "training steps (the first few are warm-up, left out of the timing)"
wrapper_help num_filters "filters of the first backbone block"
wrapper_parse "$@"
if [ -z "$data_path" ]; then echo "train_performance_1p.sh: --data_path is required" >&2; exit 2; fi

extract_losses() { log_value am3 losses "$1"; }     # am3/log_lines.py

# A benchmark measures from step 0: resuming an earlier run's checkpoint would time fewer steps, or none.
rm -rf "$OUTPUT_DIR/ckpt_perf"
wrapper_cost_note am3 train_steps="$train_steps" num_filters="$num_filters"

wrapper_run "$PYTHON" AM3_TADAM.py --data_path="$data_path" --train_steps="$train_steps" \
  --num_tasks_per_batch="$TasksPerStep" --num_classes_train=5 --num_shots_train=1 --num_shots_test=1 \
  --train_batch_size=24 --mlp_dropout=0.7 --mlp_weight_decay=0.001 --att_input=word --task_encoder=self_att_mlp \
  --mlp_type=non-linear --num_filters="$num_filters" --eval_interval_steps=0 --eval_interval_fine_steps=0 \
  --log_interval_steps=1 --save_checkpoint_steps=1000000 --log_dir="$OUTPUT_DIR/ckpt_perf"
wrapper_summary perf
# From this run's part of the log only; no step timed (mean_dt nan or absent): None, not numbers derived from it.
mean_dt=$(tail -c +$((LOG_START + 1)) "$LOG" | log_value common mean_dt - || true)
awk -v t="$mean_dt" -v k="$TasksPerStep" -v b="$BatchSize" 'BEGIN{
  if (t !~ /^[0-9.eE+-]+$/ || t + 0 <= 0) { print "step time sec : None\nepisodes/sec : None\nimages/sec : None"; exit }
  printf "step time sec : %.4f\nepisodes/sec : %.3f\nimages/sec : %.2f\n", t, k / t, b / t}' | tee -a "$LOG"
