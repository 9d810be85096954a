#!/usr/bin/env bash
# MT-net's paper tables: MAML, T-net and MT-net trained with upstream's experiment scripts' settings, then test
# mode; prints the paper's number beside this run's (95% CI) into the log, reproduction.json and the report.
#   bash mtnet/test/reproduce.sh --data_path=DIR [--table=sinusoid|omniglot-5way|omniglot-20way|miniimagenet]
#        [--variants=MT-net] [--sine_freq=0.8,1.2] [--quick]
set -euo pipefail
Network="MTnet_reproduce"
variants=""
sine_freq=""
omniglot_train_chars=""
omniglot_test_chars=""
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/common/ascend_wrapper.sh"
source "$REPO_DIR/common/reproduce_wrapper.sh"
wrapper_flag variants "rows to run: comma-separated of MAML, T-net, MT-net (default all)"
wrapper_flag sine_freq "sinusoid frequency range LOW,HIGH (default upstream's 0.8,1.2), or 1 as in MAML's paper"
wrapper_flag omniglot_train_chars "omniglot characters of meta-training (default upstream's 1100)" int
wrapper_flag omniglot_test_chars "omniglot characters of the test split (default upstream's 100)" int
REPRODUCE_FLAGS=(variants sine_freq omniglot_train_chars omniglot_test_chars)
reproduce_main mtnet "$@"
