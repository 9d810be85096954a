#!/usr/bin/env bash
# MobileNetV3 on ImageNet: top-1/top-5 of keras.applications weights (or a model directory of ours) on the
# validation folder with the standard evaluation preprocessing, beside the paper's and keras's published top-1;
# into the log, reproduction.json and the report.
#   bash mobilenetv3/test/reproduce.sh --data_path=/data/imagenet --table=imagenet-large \
#        --weights=weights_mobilenet_v3_large_224_1.0_float.h5          # data_path holds val/<wnid>/*.JPEG
set -euo pipefail
Network="MobileNetV3_reproduce"
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/common/ascend_wrapper.sh"
source "$REPO_DIR/common/reproduce_wrapper.sh"
wrapper_options mobilenetv3 weights          # train_cls.py's, passed on by common/reproduce.py
# This wrapper's --help words (unchanged since before the declarations: the wrappers' --help is the contract);
# here the weights are evaluated, not trained from.
wrapper_help weights "keras.applications MobileNetV3 .h5 of the table's model, or a model directory of ours"
REPRODUCE_FLAGS=(weights)
REPRODUCE_PATH_FLAGS=(weights)
reproduce_main mobilenetv3 "$@"
