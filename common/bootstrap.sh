# The venv that the wrappers and test/run.sh run in, built on first use: a fresh clone needs no step before its
# first command. Source it, do not run it; it defines functions only.
#   venv_ready DIR              true when DIR's python has what setup.sh installs (an interrupted setup has not)
#   build_venv WHO DIR [FLAGS]  runs `bash setup.sh FLAGS` into DIR, saying so in one line; exits 1 if that fails
#   wrapper_python WHO          sets PYTHON for a wrapper: $PYTHON, else .venv, else a python3 with TensorFlow
#                               (a host whose TensorFlow came with CANN, as before), else a .venv it builds

BOOTSTRAP_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

venv_ready() {
  [ -x "$1/bin/python" ] && "$1/bin/python" -c 'import importlib.util as u, sys
sys.exit(not all(u.find_spec(m) for m in ("tensorflow", "absl", "PIL", "h5py", "matplotlib", "pytest")))' 2>/dev/null
}

build_venv() {
  local who="$1" venv="$2" command
  shift 2
  command="bash setup.sh${*:+ $*}"
  echo "$who: no working ${venv#"$BOOTSTRAP_REPO"/} yet: building it first with '$command' (once, a few minutes)"
  if ! VENV="$venv" bash "$BOOTSTRAP_REPO/setup.sh" "$@" </dev/null; then
    echo "$who: stopped: '$command' failed (it says why above); fix that, then rerun" >&2
    exit 1
  fi
}

has_tensorflow() {  # a python that imports TensorFlow (checked without importing it: milliseconds)
  "$1" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("tensorflow") is None)' 2>/dev/null
}

wrapper_python() {
  if [ -z "${PYTHON:-}" ]; then
    if venv_ready "$BOOTSTRAP_REPO/.venv"; then
      PYTHON="$BOOTSTRAP_REPO/.venv/bin/python"
    elif [ ! -e "$BOOTSTRAP_REPO/.venv" ] && has_tensorflow python3; then
      PYTHON=python3
    else
      build_venv "$1" "$BOOTSTRAP_REPO/.venv"
      PYTHON="$BOOTSTRAP_REPO/.venv/bin/python"
    fi
  fi
  case "$PYTHON" in */*) PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")" ;; esac  # we cd later
}
