#!/usr/bin/env bash
# MobileNetV3 full training on one device (Ascend NPU, or CPU/GPU fallback), with the Ascend summary.
# usage: bash test/train_full_1p.sh --data_path=<folder with train/ and validation/> [--batch=32 ...]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../common/ascend_wrapper.sh"
source "$HERE/train_flags.sh"
wrapper_parse "$@"
train_flags_args
wrapper_run "$PYTHON" train_cls.py "${args[@]}"
wrapper_summary acc
