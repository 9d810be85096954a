#!/usr/bin/env bash
# MT-net's paper tables: MAML, T-net and MT-net trained with upstream's experiment scripts' settings, then test
# mode; prints the paper's number beside this run's (95% CI) into the log, reproduction.json and the report.
#   bash mtnet/test/reproduce.sh --data_path=DIR [--table=sinusoid|omniglot-5way|omniglot-20way|miniimagenet]
#        [--variants=MT-net] [--sine_freq=0.8,1.2] [--quick]
set -euo pipefail
Network="MTnet_reproduce"
variants=""
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/common/ascend_wrapper.sh"
source "$REPO_DIR/common/reproduce_wrapper.sh"
wrapper_flag variants "rows to run: comma-separated of MAML, T-net, MT-net (default all)"
# main.py's options (mtnet/options.py), passed on to every row by common/reproduce.py; their kinds are the
# declaration's.
wrapper_options mtnet sine_freq omniglot_train_chars omniglot_test_chars
# Empty: not passed on, so each row runs with its table's setting (upstream's values).
sine_freq=""
omniglot_train_chars=""
omniglot_test_chars=""
# This wrapper's --help words (unchanged since before the declarations: the wrappers' --help is the contract);
# they name upstream's value, which --help shows as none here.
wrapper_help sine_freq "sinusoid frequency range LOW,HIGH (default upstream's 0.8,1.2), or 1 as in MAML's paper"
wrapper_help omniglot_train_chars "omniglot characters of meta-training (default upstream's 1100)"
wrapper_help omniglot_test_chars "omniglot characters of the test split (default upstream's 100)"
REPRODUCE_FLAGS=(variants sine_freq omniglot_train_chars omniglot_test_chars)
reproduce_main mtnet "$@"
