"""setup.sh: without a Python 3.7 it stops with one clear line; with one, the venv it made is the one running."""
import os
import shutil
import sys

from conftest import REPO, run


def test_setup_without_python37_says_what_to_install(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(os.path.join(REPO, "setup.sh"), str(repo))
    shutil.copy(os.path.join(REPO, "requirements.txt"), str(repo))
    bare_path = tmp_path / "bin"
    bare_path.mkdir()
    for tool in ("bash", "dirname", "rm", "sed", "grep", "cat"):   # a machine with a shell and no Python 3.7
        found = shutil.which(tool)
        if found:
            os.symlink(found, str(bare_path / tool))
    proc = run(["bash", str(repo / "setup.sh")], cwd=repo, check=False, PATH=str(bare_path),
               HOME=str(tmp_path), PYENV_ROOT=str(tmp_path / "no-pyenv"), PYTHON37="")
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines()[-1].startswith("setup.sh: no Python 3.7 found")
    assert "pyenv install 3.7" in proc.stdout
    assert not (repo / ".venv").exists()


def test_setup_rejects_unknown_option():
    proc = run(["bash", os.path.join(REPO, "setup.sh"), "--gpu"], check=False)
    assert proc.returncode == 2 and "unknown option '--gpu'" in proc.stdout


def test_tests_run_on_python37_with_tensorflow_115():
    import tensorflow as tf
    assert sys.version_info[:2] == (3, 7)
    assert tf.__version__.startswith("1.15")
