#!/usr/bin/env bash
# Creates ./.venv with Python 3.7 and everything the project needs. Safe to run again.
#   bash setup.sh            stock tensorflow==1.15.5 (the default; what the seeds and upstreams use)
#   bash setup.sh --intel    intel-tensorflow==1.15.2 (oneDNN build, faster conv training on AVX2/AVX-512 CPUs)
# PYTHON37=/path/to/python3.7 picks the interpreter explicitly.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$repo/.venv"
flavour=stock

for arg in "$@"; do
  case "$arg" in
    --intel) flavour=intel ;;
    --stock) flavour=stock ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (use --intel, --stock or --help)" >&2; exit 2 ;;
  esac
done

is_py37() { [ -n "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 7))' >/dev/null 2>&1; }

find_python37() {
  local candidate root
  for candidate in "${PYTHON37:-}" "$(command -v python3.7 || true)"; do
    if is_py37 "$candidate"; then echo "$candidate"; return 0; fi
  done
  # pyenv installs are not on PATH unless selected: look inside its versions directly.
  root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
  for candidate in "$root"/versions/3.7*/bin/python3.7 /usr/bin/python3.7 /usr/local/bin/python3.7; do
    if is_py37 "$candidate"; then echo "$candidate"; return 0; fi
  done
  return 1
}

if ! is_py37 "$venv/bin/python"; then
  if ! python37="$(find_python37)"; then
    echo "setup.sh: no Python 3.7 found (TensorFlow 1.15 needs it): install one, e.g. 'pyenv install 3.7.16', or set PYTHON37=/path/to/python3.7" >&2
    exit 1
  fi
  echo "setup.sh: creating $venv with $python37"
  rm -rf "$venv"
  "$python37" -m venv "$venv"
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade "pip<24" "setuptools<68" wheel
if [ "$flavour" = intel ]; then
  # Same API as 1.15.5; the two wheels both provide the `tensorflow` module, so only one may be installed.
  "${pip[@]}" uninstall -q -y tensorflow >/dev/null 2>&1 || true
  grep -v '^tensorflow==' "$repo/requirements.txt" > "$venv/requirements-intel.txt"
  "${pip[@]}" install -q intel-tensorflow==1.15.2 -r "$venv/requirements-intel.txt"
else
  "${pip[@]}" uninstall -q -y intel-tensorflow >/dev/null 2>&1 || true
  "${pip[@]}" install -q -r "$repo/requirements.txt"
fi
"${pip[@]}" install -q --no-deps -e "$repo"

"$venv/bin/python" - <<'EOF'
import tensorflow as tf
print("setup.sh: ready: TensorFlow %s (%s build) in .venv" % (
    tf.__version__, "oneDNN" if tf.pywrap_tensorflow.IsMklEnabled() else "stock"))
EOF
