#!/usr/bin/env bash
# AM3's paper tables: each variant trained with upstream's settings for the table, then tested with the paper's
# protocol; prints the paper's accuracy beside this run's (95% CI) into the log, reproduction.json and the report.
#   bash am3/test/reproduce.sh --data_path=/data [--table=mini-1shot] [--variants=AM3_TADAM] [--upstream_eval]
#   bash am3/test/reproduce.sh --data_path=/data --quick          # toy scale: checks the pipeline
set -euo pipefail
Network="AM3_reproduce"
variants=""
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/common/ascend_wrapper.sh"
source "$REPO_DIR/common/reproduce_wrapper.sh"
wrapper_flag variants "rows to run: comma-separated of protonet++, AM3_protonet++, tadam, AM3_TADAM (default all)"
wrapper_options am3 upstream_eval            # am3/options.py's, passed on by common/reproduce.py
upstream_eval=""                             # empty: not passed on (each row's own setting)
# This wrapper's --help words (unchanged since before the declarations: the wrappers' --help is the contract);
# here the flag adds rows rather than changing how each is tested.
wrapper_help upstream_eval "True: also test the TADAM-based rows as upstream did (FiLM off; see am3/README.md)"
REPRODUCE_FLAGS=(variants upstream_eval)
reproduce_main am3 "$@"
