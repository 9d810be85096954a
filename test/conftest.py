"""Shared fixtures: the fake npu_bridge, and running the project's scripts in a subprocess."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_NPU_DIR = os.path.join(REPO, "test", "fake_npu")


def _forget_npu_bridge():
    for name in [m for m in sys.modules if m == "npu_bridge" or m.startswith("npu_bridge.")]:
        del sys.modules[name]


@pytest.fixture
def fake_npu(monkeypatch):
    """Put the recording fake npu_bridge on sys.path; yields its CALLS list."""
    from common import npu_session
    monkeypatch.delenv(npu_session.FALLBACK_ENV, raising=False)
    monkeypatch.delenv("JOB_ID", raising=False)   # the NPU route sets a default; undone after the test
    monkeypatch.syspath_prepend(FAKE_NPU_DIR)
    _forget_npu_bridge()
    npu_session.reset_probe()
    import npu_bridge
    assert npu_session.on_npu()
    yield npu_bridge.CALLS
    _forget_npu_bridge()
    npu_session.reset_probe()


@pytest.fixture
def no_npu():
    """The fallback route (npu_bridge is not installed here; this makes it explicit)."""
    from common import npu_session
    _forget_npu_bridge()
    npu_session.reset_probe()
    assert not npu_session.on_npu()
    yield
    npu_session.reset_probe()


def script_env(fake_npu=False, record_file=None, **extra):
    """Environment for running a project script: repo on PYTHONPATH, quiet TF, optionally the fake NPU."""
    env = dict(os.environ)
    paths = [REPO] + ([FAKE_NPU_DIR] if fake_npu else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHON"] = sys.executable
    env.pop("NPU_FALLBACK", None)
    env.pop("VENV", None)       # setup.sh run by a test must never build into the caller's venv
    env.pop("TF2_BEHAVIOR", None)   # TF 2.x's import sets it here; a TF 1.15 child would take v2 shapes from it
    env.pop("JOB_ID", None)
    if record_file:
        env["FAKE_NPU_RECORD"] = str(record_file)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(args, cwd=REPO, timeout=600, check=True, **env_kwargs):
    """Run a command (list) and return the CompletedProcess with text stdout+stderr in .stdout."""
    proc = subprocess.run(args, cwd=str(cwd), env=script_env(**env_kwargs), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("command failed (%d): %s\n%s" % (proc.returncode, " ".join(map(str, args)),
                                                              proc.stdout[-6000:]))
    return proc


def run_python(script_and_args, **kwargs):
    """Run a Python script of the project with this interpreter."""
    return run([sys.executable] + [str(a) for a in script_and_args], **kwargs)


def rank_table(tmp_path, devices, name="rank_table.json"):
    """Write an Ascend rank table (format 1.0, one server) listing `devices`; returns its path."""
    table = {"version": "1.0", "status": "completed", "server_count": "1",
             "server_list": [{"server_id": "10.0.0.1", "device": [
                 {"device_id": str(d), "device_ip": "192.168.100.%d" % (d + 1), "rank_id": str(i)}
                 for i, d in enumerate(devices)]}]}
    path = tmp_path / name
    path.write_text(json.dumps(table))
    return str(path)
