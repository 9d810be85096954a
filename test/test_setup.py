"""setup.sh picks the stack by the Pythons it finds, says so, and the venv it made is the one running."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, run, script_env
from common import tf_compat
from common.tf_compat import tf


def _bare_machine(tmp_path, tools=()):
    """A copy of setup.sh beside an empty requirements.txt, and a PATH with a shell and only `tools` (Pythons
    among them), so neither the machine's Pythons nor its pyenv are seen."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(os.path.join(REPO, "setup.sh"), str(repo))
    (repo / "requirements.txt").write_text("")
    bare_path = tmp_path / "bin"
    bare_path.mkdir()
    for tool in ("bash", "dirname", "rm", "sed", "grep", "cat") + tuple(tools):
        found = shutil.which(tool)
        if found:
            os.symlink(found, str(bare_path / tool))
    return repo, dict(PATH=str(bare_path), HOME=str(tmp_path), PYENV_ROOT=str(tmp_path / "no-pyenv"), PYTHON37="",
                      VENV_PYTHON="")


FAKE_PYTHON = """#!/bin/bash
# A stand-in Python %(minor)s: answers setup.sh's probes, makes a venv of itself, and stops at the first pip call.
case "$*" in
  *sys.version_info*) echo %(minor)s ;;
  *"import ensurepip, venv"*) exit %(no_venv_module)d ;;
  "-m venv "*) mkdir -p "$3/bin" && cp "$0" "$3/bin/python" ;;
  *) echo "python %(minor)s was asked: $*"; exit 1 ;;
esac
"""


def _fake_python(bin_dir, minor, no_venv_module=0):
    path = bin_dir / ("python" + minor)
    path.write_text(FAKE_PYTHON % dict(minor=minor, no_venv_module=no_venv_module))
    path.chmod(0o755)


def test_tf115_without_python37_says_what_to_install(tmp_path):
    repo, env = _bare_machine(tmp_path)
    proc = run(["bash", str(repo / "setup.sh"), "--stock"], cwd=repo, check=False, **env)
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines()[-1].startswith("setup.sh: no Python 3.7 found")
    assert "pyenv install 3.7" in proc.stdout and "bash setup.sh --tf2" in proc.stdout
    assert not (repo / ".venv").exists()


def test_without_python37_plain_setup_builds_the_tf2_stack_and_says_so(tmp_path):
    repo, env = _bare_machine(tmp_path, ["mkdir", "cp"])
    for minor in ("3.10", "3.11", "3.13"):
        _fake_python(tmp_path / "bin", minor)
    proc = run(["bash", str(repo / "setup.sh")], cwd=repo, check=False, **env)
    lines = proc.stdout.splitlines()
    assert lines[0] == ("setup.sh: no Python 3.7 here (TF 1.15 needs it): building the TF 2.x stack on Python 3.11"
                        " instead")
    assert lines[1] == "setup.sh: creating %s with %s" % (repo / ".venv", tmp_path / "bin" / "python3.11")
    assert lines[2].startswith("python 3.11 was asked: -m pip ")


@pytest.mark.parametrize("flag, missing", [("", "3.7 (TF 1.15) nor 3.9-3.11 (TF 2.15)"),
                                           ("--tf2", "3.9-3.11 (TF 2.15)")])
def test_with_only_python_312_and_313_setup_builds_the_newest_stack_and_says_so(tmp_path, flag, missing):
    repo, env = _bare_machine(tmp_path, ["mkdir", "cp"])
    for minor in ("3.12", "3.13"):
        _fake_python(tmp_path / "bin", minor)
    proc = run(["bash", str(repo / "setup.sh")] + ([flag] if flag else []), cwd=repo, check=False, **env)
    lines = proc.stdout.splitlines()
    assert lines[0] == ("setup.sh: no Python %s here: building the newest TensorFlow 2.x with tf_keras on Python 3.13"
                        " instead" % missing)
    assert lines[1] == "setup.sh: creating %s with %s" % (repo / ".venv", tmp_path / "bin" / "python3.13")
    assert lines[2].startswith("python 3.13 was asked: -m pip ")   # it went on to install into that venv
    assert proc.returncode == 1


def test_newest_picks_python_313_over_311(tmp_path):
    repo, env = _bare_machine(tmp_path, ["mkdir", "cp"])
    for minor in ("3.11", "3.12", "3.13"):
        _fake_python(tmp_path / "bin", minor)
    proc = run(["bash", str(repo / "setup.sh"), "--newest"], cwd=repo, check=False, **env)
    newest = tmp_path / "bin" / "python3.13"
    assert proc.stdout.splitlines()[0] == "setup.sh: creating %s with %s" % (repo / ".venv", newest)
    os.remove(str(tmp_path / "bin" / "python3.13"))
    os.remove(str(tmp_path / "bin" / "python3.12"))
    proc = run(["bash", str(repo / "setup.sh"), "--newest"], cwd=repo, check=False, **env)
    assert proc.returncode == 1 and proc.stdout.splitlines() == [
        "setup.sh: no Python 3.13 or 3.12 found (the newest TensorFlow 2.x needs one): install one, e.g. "
        "'pyenv install 3.13', or set VENV_PYTHON=/path/to/python3.13"]


def test_without_any_supported_python_one_line_says_what_to_install(tmp_path):
    repo, env = _bare_machine(tmp_path, ["mkdir", "cp"])
    for minor in ("3.8", "3.14"):      # no TensorFlow wheel for either
        _fake_python(tmp_path / "bin", minor)
    proc = run(["bash", str(repo / "setup.sh")], cwd=repo, check=False, **env)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "setup.sh: no Python 3.7 (TF 1.15), 3.9-3.11 (TF 2.15) nor 3.12-3.13 (newest TF 2.x) found: install one, "
        "e.g. 'pyenv install 3.11', or set VENV_PYTHON=/path/to/python"]
    assert not (repo / ".venv").exists()


def test_a_python_without_its_venv_module_is_one_line_naming_the_package(tmp_path):
    repo, env = _bare_machine(tmp_path, ["mkdir", "cp"])
    _fake_python(tmp_path / "bin", "3.12", no_venv_module=1)     # Ubuntu 24.04 without python3.12-venv
    proc = run(["bash", str(repo / "setup.sh")], cwd=repo, check=False, **env)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-1] == ("setup.sh: %s has no venv module: install it, e.g. 'apt install "
                                            "python3.12-venv'" % (tmp_path / "bin" / "python3.12"))
    assert not (repo / ".venv").exists()


def test_setup_rejects_unknown_option(tmp_path):
    venv = dict(VENV=str(tmp_path / "venv"))     # were a check missing, the project's own venv stays untouched
    proc = run(["bash", os.path.join(REPO, "setup.sh"), "--gpu"], check=False, **venv)
    assert proc.returncode == 2 and "unknown option '--gpu'" in proc.stdout
    proc = run(["bash", os.path.join(REPO, "setup.sh"), "--tf2", "--intel"], check=False, **venv)
    assert proc.returncode == 2 and "TF 2.x wheels use oneDNN already" in proc.stdout


def test_the_stack_follows_the_python_version():
    minor = sys.version_info[:2]
    if minor == (3, 7):
        assert tf.__version__.startswith("1.15")
    elif minor <= (3, 11):
        assert tf.__version__ == "2.15.1"
    else:
        assert tuple(int(p) for p in tf.__version__.split(".")[:2]) >= (2, 16)


READ_MISSING_FILE = """
from common.tf_compat import tf
try:
    tf.Session().run(tf.io.read_file(%r))
except tf.errors.NotFoundError as err:
    print("raised: " + err.message)
"""


def _read_missing_file(tmp_path, **level):
    env = script_env(**level)
    if not level:
        env.pop("TF_CPP_MIN_LOG_LEVEL")      # conftest quiets the scripts it runs; a user's shell does not
    proc = subprocess.run([sys.executable, "-c", READ_MISSING_FILE % str(tmp_path / "missing")], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stdout
    assert "raised: " in proc.stdout and "No such file or directory" in proc.stdout   # the error itself is whole
    return proc.stdout


def test_tensorflow_2_keeps_its_start_up_lines_out_unless_asked(tmp_path):
    quiet = _read_missing_file(tmp_path)
    if not tf_compat.TF2:     # TF 1.15 logs as it always did
        assert "OP_REQUIRES failed" in quiet
        return
    assert "Unable to register" not in quiet and "OP_REQUIRES failed" not in quiet
    assert "OP_REQUIRES failed" in _read_missing_file(tmp_path, TF_CPP_MIN_LOG_LEVEL=0)   # README's way back


FAKE_SETUP = """#!/usr/bin/env bash
# A stand-in setup.sh: the venv's python is the interpreter running the tests (it has every package).
echo "setup.sh $* into $VENV"
if [ -e "$(dirname "$0")/setup-fails" ]; then
  echo "setup.sh: no Python 3.7 (TF 1.15), 3.9-3.11 (TF 2.15) nor 3.12-3.13 (newest TF 2.x) found: install one" >&2
  exit 1
fi
mkdir -p "$VENV/bin"
printf '#!/bin/sh\\nexec %s "$@"\\n' "TEST_PYTHON" > "$VENV/bin/python"
chmod +x "$VENV/bin/python"
"""

FRESH_WRAPPER = """#!/usr/bin/env bash
set -euo pipefail
Network=FakeNet
BatchSize=1
source "$(dirname "$0")/../../common/ascend_wrapper.sh"
wrapper_parse "$@"
"$PYTHON" -c 'import sys; print("trained with", sys.argv[1])' "$PYTHON"
"""


def _fresh_clone(tmp_path, python3_with_tensorflow=False):
    """The wrapper library, test/run.sh, a stand-in setup.sh and a fake model's wrapper, no .venv; and a PATH whose
    python3 has TensorFlow or is missing."""
    repo = tmp_path / "clone"
    shutil.copytree(os.path.join(REPO, "common"), str(repo / "common"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.png"))
    (repo / "test").mkdir()
    shutil.copy(os.path.join(REPO, "test", "run.sh"), str(repo / "test"))
    (repo / "setup.sh").write_text(FAKE_SETUP.replace("TEST_PYTHON", sys.executable))
    (repo / "fake" / "test").mkdir(parents=True)
    (repo / "fake" / "test" / "train_full_1p.sh").write_text(FRESH_WRAPPER)
    bare_path = tmp_path / "bin"
    bare_path.mkdir()
    for tool in ("bash", "dirname", "basename", "mkdir", "chmod", "cat", "date", "flock", "stat", "tee", "env"):
        os.symlink(shutil.which(tool), str(bare_path / tool))
    if python3_with_tensorflow:     # e.g. an Ascend host's Python, where CANN's TensorFlow is installed
        (bare_path / "python3").write_text('#!/bin/sh\nexec %s "$@"\n' % sys.executable)
        (bare_path / "python3").chmod(0o755)
    env = script_env(PATH=str(bare_path), OUTPUT_ROOT=str(tmp_path / "out"))
    env.pop("PYTHON")
    return repo, env


def _sh(args, cwd, env):
    return subprocess.run(args, cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300)


def test_a_wrapper_on_a_fresh_clone_builds_the_venv_first_and_says_so(tmp_path):
    repo, env = _fresh_clone(tmp_path)
    wrapper = ["bash", str(repo / "fake" / "test" / "train_full_1p.sh")]
    proc = _sh(wrapper, tmp_path, env)
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["train_full_1p.sh: no working .venv yet: building it first with 'bash setup.sh' (once, a "
                         "few minutes)", "setup.sh  into %s" % (repo / ".venv")]
    assert lines[-1] == "trained with %s" % (repo / ".venv" / "bin" / "python")
    proc = _sh(wrapper, tmp_path, env)           # built once: the next run just trains
    assert proc.returncode == 0 and "setup.sh" not in proc.stdout, proc.stdout
    assert proc.stdout.splitlines()[-1] == "trained with %s" % (repo / ".venv" / "bin" / "python")


def test_a_wrapper_stops_with_one_line_naming_the_command_when_the_venv_cannot_be_built(tmp_path):
    repo, env = _fresh_clone(tmp_path)
    (repo / "setup-fails").write_text("")
    proc = _sh(["bash", str(repo / "fake" / "test" / "train_full_1p.sh")], tmp_path, env)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-2:] == [
        "setup.sh: no Python 3.7 (TF 1.15), 3.9-3.11 (TF 2.15) nor 3.12-3.13 (newest TF 2.x) found: install one",
        "train_full_1p.sh: stopped: 'bash setup.sh' failed (it says why above); fix that, then rerun"]
    assert "trained with" not in proc.stdout


def test_a_wrapper_rebuilds_an_unfinished_venv(tmp_path):
    repo, env = _fresh_clone(tmp_path)
    (repo / ".venv" / "bin").mkdir(parents=True)      # setup.sh stopped before pip had installed TensorFlow
    (repo / ".venv" / "bin" / "python").write_text("#!/bin/sh\nexit 1\n")
    (repo / ".venv" / "bin" / "python").chmod(0o755)
    proc = _sh(["bash", str(repo / "fake" / "test" / "train_full_1p.sh")], tmp_path, env)
    assert proc.returncode == 0 and "building it first with 'bash setup.sh'" in proc.stdout, proc.stdout


def test_help_and_a_wrong_flag_build_nothing_and_a_python3_with_tensorflow_is_used_as_before(tmp_path):
    repo, env = _fresh_clone(tmp_path, python3_with_tensorflow=True)
    wrapper = ["bash", str(repo / "fake" / "test" / "train_full_1p.sh")]
    assert _sh(wrapper + ["--help"], tmp_path, env).returncode == 0
    assert _sh(wrapper + ["--nope=1"], tmp_path, env).returncode == 2
    assert not (repo / ".venv").exists()
    proc = _sh(wrapper, tmp_path, env)
    assert proc.returncode == 0 and "setup.sh" not in proc.stdout, proc.stdout
    assert not (repo / ".venv").exists()


def test_the_test_command_on_a_fresh_clone_builds_the_venv_first(tmp_path):
    repo, env = _fresh_clone(tmp_path)
    proc = _sh(["bash", "test/run.sh", "--version"], repo, env)
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[0] == "run.sh: no working .venv yet: building it first with 'bash setup.sh' (once, a few minutes)"
    assert lines[-1].startswith("pytest ")
    proc = _sh(["bash", "test/run.sh", "--version"], repo, dict(env, VENV=".venv-tf2"))
    assert proc.returncode == 1 and proc.stdout.splitlines() == [
        "run.sh: no working venv at .venv-tf2: build it first, e.g. 'VENV=.venv-tf2 bash setup.sh' (--tf2, --newest)"]


def test_the_suite_spreads_over_the_cores_but_a_marker_selection_runs_in_one_process(tmp_path):
    """test/run.sh adds pytest-xdist's -n (up to 4 workers) to the default selection only: the benchmarks
    (-m slow) must not share the machine, and an explicit -n or -p is the user's."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"     # venv_ready's check and `import xdist` pass; pytest prints its arguments
    python.write_text('#!/bin/sh\ncase "$1" in -c) exit 0 ;; esac\necho "$@"\n')
    python.chmod(0o755)
    env = dict(os.environ, VENV=str(venv))
    cores = int(subprocess.check_output(["nproc"]))   # what run.sh counts
    expected = "-m pytest -n %d --dist worksteal" % min(cores, 4) if cores > 1 else "-m pytest"

    def args(*given):
        return _sh(["bash", os.path.join(REPO, "test", "run.sh")] + list(given), tmp_path, env).stdout.strip()
    assert args("-k", "seed") == expected + " -k seed"
    assert args("-m", "slow") == "-m pytest -m slow"
    assert args("-n", "0", "test/test_mtnet.py") == "-m pytest -n 0 test/test_mtnet.py"
    assert args("-p", "no:xdist") == "-m pytest -p no:xdist"
