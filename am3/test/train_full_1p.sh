#!/usr/bin/env bash
# AM3-TADAM, 5-way 1-shot, the Ascend seed configuration: full training, then test mode (mean accuracy, 95% CI).
#   bash am3/test/train_full_1p.sh --data_path=/data/mini-imagenet [--train_steps=30000]
set -euo pipefail
Network="AM3_ID1260_for_TensorFlow"
BatchSize=145                    # images per step: 5 tasks x (5-way 1-shot support + 24 queries)
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/common/ascend_wrapper.sh"
# AM3_TADAM.py's options (am3/options.py): their defaults (the paper's 64-filter ResNet-12, upstream's 30000
# steps, 50000 test queries in episodes of 100) and kinds; --train_steps is its --number_of_steps.
wrapper_options am3 data_path train_steps:number_of_steps num_cases_test eval_batch_size num_filters
# This wrapper's --help words (unchanged since before the declarations: the wrappers' --help is the contract);
# they say what the seed configuration does with each.
wrapper_help data_path "folder with few-shot-*.npz (or its parent holding mini-imagenet/)"
wrapper_help train_steps "training steps"
wrapper_help num_cases_test "query images of the final test"
wrapper_help eval_batch_size "query images per validation and test episode (lower it for small test classes)"
wrapper_help num_filters "filters of the first backbone block"
wrapper_parse "$@"
if [ -z "$data_path" ]; then echo "train_full_1p.sh: --data_path is required" >&2; exit 2; fi

extract_losses()   { log_value am3 losses "$1"; }     # am3/log_lines.py
extract_accuracy() { log_value am3 accuracy "$1"; }

seed_flags=(--num_tasks_per_batch=5 --num_classes_train=5 --num_shots_train=1 --num_shots_test=1
            --train_batch_size=24 --mlp_dropout=0.7 --mlp_weight_decay=0.001 --att_input=word
            --task_encoder=self_att_mlp --mlp_type=non-linear --num_filters="$num_filters"
            --eval_batch_size="$eval_batch_size"
            --save_checkpoint_steps=5000 --keep_checkpoint_max=5 --log_dir="$OUTPUT_DIR/ckpt")
wrapper_cost_note am3 train_steps="$train_steps" num_filters="$num_filters" eval_batch_size="$eval_batch_size" \
  num_cases_test="$num_cases_test" validate=1
wrapper_run "$PYTHON" AM3_TADAM.py --data_path="$data_path" --train_steps="$train_steps" "${seed_flags[@]}"
wrapper_run "$PYTHON" AM3_TADAM.py --mode=test --data_path="$data_path" --num_cases_test="$num_cases_test" \
  "${seed_flags[@]}"
wrapper_summary acc
