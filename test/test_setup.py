"""setup.sh picks the stack by the Pythons it finds, says so, and the venv it made is the one running."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, run, script_env
from common import tf_compat
from common.tf_compat import tf


def _bare_machine(tmp_path, pythons=()):
    """A copy of setup.sh beside an empty requirements.txt, and a PATH with a shell and only `pythons`."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(os.path.join(REPO, "setup.sh"), str(repo))
    (repo / "requirements.txt").write_text("")
    bare_path = tmp_path / "bin"
    bare_path.mkdir()
    for tool in ("bash", "dirname", "rm", "sed", "grep", "cat") + tuple(pythons):
        found = shutil.which(tool)
        if found:
            os.symlink(found, str(bare_path / tool))
    return repo, dict(PATH=str(bare_path), HOME=str(tmp_path), PYENV_ROOT=str(tmp_path / "no-pyenv"), PYTHON37="",
                      VENV_PYTHON="")


def test_tf115_without_python37_says_what_to_install(tmp_path):
    if os.path.exists("/usr/bin/python3.7") or os.path.exists("/usr/local/bin/python3.7"):
        pytest.skip("this machine has a system Python 3.7")
    repo, env = _bare_machine(tmp_path)
    proc = run(["bash", str(repo / "setup.sh"), "--stock"], cwd=repo, check=False, **env)
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines()[-1].startswith("setup.sh: no Python 3.7 found")
    assert "pyenv install 3.7" in proc.stdout and "bash setup.sh --tf2" in proc.stdout
    assert not (repo / ".venv").exists()


def test_without_python37_plain_setup_builds_the_tf2_stack_and_says_so(tmp_path):
    python = next((p for p in ("python3.11", "python3.10", "python3.9") if shutil.which(p)), None)
    if python is None or os.path.exists("/usr/bin/python3.7") or os.path.exists("/usr/local/bin/python3.7"):
        pytest.skip("needs a Python 3.9-3.11 on PATH and no system Python 3.7")
    repo, env = _bare_machine(tmp_path, [python])
    proc = run(["bash", str(repo / "setup.sh")], cwd=repo, check=False, **env)
    # The empty requirements and the missing project stop it after the venv: only the choice is checked here.
    assert "setup.sh: no Python 3.7 here (TF 1.15 needs it): building the TF 2.x stack on Python %s instead" \
        % python[len("python"):] in proc.stdout
    assert os.path.exists(str(repo / ".venv" / "bin" / python))


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
