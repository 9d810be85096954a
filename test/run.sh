#!/usr/bin/env bash
# The test suite, from a fresh clone too: builds .venv first when it is missing or unfinished (bash setup.sh), then
# runs pytest in it on this checkout's code; arguments go to pytest (e.g. -m slow, -k name, test/test_swa.py).
#   bash test/run.sh [pytest arguments]
# VENV=dir tests another venv, which must exist (CI keeps one per stack: VENV=dir bash setup.sh --tf2 builds one).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/common/bootstrap.sh"

if [ -n "${VENV:-}" ]; then
  venv="$(cd "$(dirname "$VENV")" 2>/dev/null && pwd)/$(basename "$VENV")"
  if ! venv_ready "$venv"; then
    echo "run.sh: no working venv at $VENV: build it first, e.g. 'VENV=$VENV bash setup.sh' (--tf2, --newest)" >&2
    exit 1
  fi
else
  venv="$repo/.venv"
  venv_ready "$venv" || build_venv run.sh "$venv"
fi
cd "$repo"
# This checkout's modules first: a venv made by another checkout's setup.sh would otherwise test that one's code.
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
unset VENV   # it chose the venv that runs the tests; left set, the setup tests' setup.sh would build into it
# The default selection runs on up to 4 cores (pytest-xdist, tests handed out as workers free up): most of a test's
# time is one Python thread building graphs and starting scripts. A marker selection (-m slow: the benchmarks,
# which must not share the machine; -m ascend: one device) or an explicit -n / -p no:xdist runs as given.
workers=()
parallel=yes
for arg in "$@"; do
  case "$arg" in -m*|-n*|--numprocesses*|-p) parallel=no ;; esac
done
cores="$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)"   # nproc: the CPUs this process may use
if [ "$parallel" = yes ] && [ "$cores" -gt 1 ] && "$venv/bin/python" -c "import xdist" 2>/dev/null; then
  workers=(-n "$(( cores < 4 ? cores : 4 ))" --dist worksteal)
fi
exec "$venv/bin/python" -m pytest ${workers[@]+"${workers[@]}"} "$@"
