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
wrapper_flag workers "worker processes off Ascend (on Ascend: one per device of RANK_TABLE_FILE)" int
wrapper_parse "$@"
if [ -z "$modeldir" ]; then modeldir="$OUTPUT_DIR/ckpt_8p"; fi   # not the 1p run's checkpoints (other batch, ranks)
train_flags_args
data_parallel_route "$workers"
data_parallel_run "$PYTHON" train_cls.py "${args[@]}"
wrapper_summary acc
