#!/usr/bin/env bash
# Creates ./.venv with everything the project needs. Safe to run again.
#   bash setup.sh            TensorFlow 1.15.5 on Python 3.7 (the seeds' and Ascend's stack) where a Python 3.7
#                            exists; otherwise the TF 2.x stack (3.11-3.9, else the newest TF on 3.13/3.12), saying so
#   bash setup.sh --intel    TF 1.15 as intel-tensorflow==1.15.2 (oneDNN build, faster CPU training of conv nets)
#   bash setup.sh --tf2      TensorFlow 2.15.1 on Python 3.11, 3.10 or 3.9 (current CPUs and GPUs, bf16/fp16);
#                            without those, the newest TensorFlow 2.x with tf_keras on Python 3.13 or 3.12
#   bash setup.sh --newest   the newest TensorFlow 2.x with tf_keras on Python 3.13 or 3.12
# VENV_PYTHON=/path/to/python picks the interpreter (3.7: TF 1.15; 3.9-3.11: TF 2.15.1; 3.12+: the newest TF 2.x with
# tf_keras); VENV=dir builds another venv than ./.venv (CI keeps one per stack).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VENV:-$repo/.venv}"
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
flavour=stock
stack=auto

for arg in "$@"; do
  case "$arg" in
    --intel) flavour=intel ;;
    --stock) flavour=stock; stack=tf1 ;;
    --tf2) stack=tf2 ;;
    --newest) stack=newest ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (use --stock, --intel, --tf2, --newest or --help)" >&2; exit 2 ;;
  esac
done
if [ "$flavour" = intel ]; then
  if [ "$stack" = tf2 ] || [ "$stack" = newest ]; then
    echo "setup.sh: --intel is the TF 1.15 oneDNN build; TF 2.x wheels use oneDNN already (drop --intel)" >&2
    exit 2
  fi
  stack=tf1
fi

py_minor() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

find_python() {  # $@ = acceptable minor versions, best first
  local version candidate root
  root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
  for version in "$@"; do
    # Every python3.X on PATH (a pyenv shim of a version not selected fails the check: the next one is tried), then
    # pyenv's installs, which are not on PATH unless selected.
    while IFS= read -r candidate; do
      if [ "$(py_minor "$candidate")" = "$version" ]; then echo "$candidate"; return 0; fi
    done < <(type -ap "python$version"; printf '%s\n' "$root"/versions/"$version"*/bin/python"$version")
  done
  return 1
}

if [ -n "${VENV_PYTHON:-${PYTHON37:-}}" ]; then
  python="${VENV_PYTHON:-$PYTHON37}"
  minor="$(py_minor "$python" || true)"
  if [ -z "$minor" ]; then echo "setup.sh: VENV_PYTHON=$python does not run" >&2; exit 1; fi
elif [ "$stack" = newest ]; then
  if ! python="$(find_python 3.13 3.12)"; then
    echo "setup.sh: no Python 3.13 or 3.12 found (the newest TensorFlow 2.x needs one): install one, e.g." \
         "'pyenv install 3.13', or set VENV_PYTHON=/path/to/python3.13" >&2
    exit 1
  fi
  minor="$(py_minor "$python")"
elif [ "$stack" != tf2 ] && python="$(find_python 3.7)"; then
  minor=3.7
elif [ "$stack" = tf1 ]; then
  echo "setup.sh: no Python 3.7 found (TensorFlow 1.15 needs it): install one, e.g. 'pyenv install 3.7.16'," \
       "or set VENV_PYTHON=/path/to/python3.7, or use the TF 2.x stack: bash setup.sh --tf2" >&2
  exit 1
elif python="$(find_python 3.11 3.10 3.9)"; then
  minor="$(py_minor "$python")"
  if [ "$stack" = auto ]; then
    echo "setup.sh: no Python 3.7 here (TF 1.15 needs it): building the TF 2.x stack on Python $minor instead"
  fi
elif python="$(find_python 3.13 3.12)"; then   # newest first; TensorFlow has no wheel for 3.14 yet
  minor="$(py_minor "$python")"
  if [ "$stack" = auto ]; then missing="3.7 (TF 1.15) nor 3.9-3.11 (TF 2.15)"; else missing="3.9-3.11 (TF 2.15)"; fi
  echo "setup.sh: no Python $missing here: building the newest TensorFlow 2.x with tf_keras on Python $minor instead"
else
  echo "setup.sh: no Python 3.7 (TF 1.15), 3.9-3.11 (TF 2.15) nor 3.12-3.13 (newest TF 2.x) found: install one," \
       "e.g. 'pyenv install 3.11', or set VENV_PYTHON=/path/to/python" >&2
  exit 1
fi
case "$minor" in
  3.7) ;;
  3.8) echo "setup.sh: Python 3.8 has neither stack (TF 1.15 needs 3.7, TF 2.15 3.9-3.11)" >&2; exit 1 ;;
  *) if [ "$flavour" = intel ]; then echo "setup.sh: --intel needs Python 3.7 (TF 1.15)" >&2; exit 2; fi ;;
esac

if [ "$(py_minor "$venv/bin/python" || true)" != "$minor" ]; then
  # Debian and Ubuntu ship a system Python's venv module as a package of its own (python3.12-venv).
  if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    echo "setup.sh: $python has no venv module: install it, e.g. 'apt install python$minor-venv'" >&2
    exit 1
  fi
  echo "setup.sh: creating $venv with $python"
  rm -rf "$venv"
  # A half-made venv (no pip) would pass the version check above next time: remove it.
  "$python" -m venv "$venv" || { rm -rf "$venv"; exit 1; }
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check)
if [ "$minor" = 3.7 ]; then
  "${pip[@]}" install -q --upgrade "pip<24" "setuptools<68" wheel
else
  "${pip[@]}" install -q --upgrade pip setuptools wheel
fi
# requirements.txt picks the stack by Python version (environment markers).
if [ "$flavour" = intel ]; then
  # Same API as 1.15.5; the two wheels both provide the `tensorflow` module, so only one may be installed.
  "${pip[@]}" uninstall -q -y tensorflow >/dev/null 2>&1 || true
  grep -v '^tensorflow==1' "$repo/requirements.txt" > "$venv/requirements-intel.txt"
  "${pip[@]}" install -q intel-tensorflow==1.15.2 -r "$venv/requirements-intel.txt"
else
  "${pip[@]}" uninstall -q -y intel-tensorflow >/dev/null 2>&1 || true
  "${pip[@]}" install -q -r "$repo/requirements.txt"
fi
"${pip[@]}" install -q --no-deps -e "$repo"

"$venv/bin/python" - <<'EOF'
import sys
from common.tf_compat import tf, onednn_build
print("setup.sh: ready: TensorFlow %s (%s build) on Python %d.%d in %s" % (
    tf.__version__, "oneDNN" if onednn_build() else "stock", sys.version_info[0], sys.version_info[1], sys.prefix))
EOF
