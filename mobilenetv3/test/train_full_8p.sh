#!/usr/bin/env bash
# MobileNetV3 data-parallel training, with the Ascend summary.
# Ascend: one process per NPU of RANK_TABLE_FILE (RANK_SIZE devices, default 8), gradients all-reduced by HCCL.
# CPU/GPU (no npu_bridge): --workers processes on this machine, MultiWorkerMirroredStrategy over loopback.
# usage: RANK_TABLE_FILE=/path/rank_table_8p.json bash test/train_full_8p.sh --data_path=<folder> [--batch=32 ...]
#        bash test/train_full_8p.sh --data_path=<folder> --workers=2
# Rank r logs to output/<r>/train_<r>.log (r = device id on Ascend); rank 0 alone keeps checkpoints.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workers=2
source "$HERE/../../common/ascend_wrapper.sh"
source "$HERE/train_flags.sh"
wrapper_flag workers "worker processes off Ascend (on Ascend: one per device of RANK_TABLE_FILE)"
wrapper_parse "$@"
train_flags_args
data_parallel_route "$workers"
data_parallel_run "$PYTHON" train_cls.py "${args[@]}" $(ascend_args)
LOG="$TRAIN_LOG"
wrapper_summary acc
