#!/usr/bin/env bash
# MT-net data-parallel meta-training of the seed configuration (10-shot sinusoid), then test mode on rank 0's
# checkpoint (one process, 600 tasks); Ascend summary.
# Ascend: one process per NPU of RANK_TABLE_FILE (RANK_SIZE devices, default 8), gradients all-reduced by HCCL.
# CPU/GPU (no npu_bridge): --workers processes on this machine, MultiWorkerMirroredStrategy over loopback.
# meta_batch_size (BatchSize) is per device: every rank draws its own tasks (graph seed + 1000 * rank), so one
# meta-update averages the gradients of RankSize * meta_batch_size tasks.
# usage: RANK_TABLE_FILE=/path/rank_table_8p.json bash test/train_full_8p.sh [--train_steps=60000 ...]
#        bash test/train_full_8p.sh --workers=2
# Rank r logs to output/<r>/train_<r>.log (r = rank); rank 0 alone keeps checkpoints and summaries.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workers=2
source "$HERE/../../common/ascend_wrapper.sh"
source "$HERE/seed_config.sh"
wrapper_flag workers "worker processes off Ascend (on Ascend: one per device of RANK_TABLE_FILE)" int
wrapper_parse "$@"
wrapper_cost_note mtnet train_steps="$train_steps" meta_batch_size="$meta_batch_size"
seed_config_args "$OUTPUT_DIR/ckpt_8p" True
data_parallel_route "$workers"
data_parallel_run "$PYTHON" main.py "${args[@]}"
# Test mode is one process on rank 0's checkpoint, whatever RANK_SIZE says.
wrapper_run env -u TF_CONFIG RANK_SIZE=1 RANK_ID=0 "$PYTHON" main.py "${args[@]}" --train=False
wrapper_summary acc
