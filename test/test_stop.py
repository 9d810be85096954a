"""Ctrl-C and SIGTERM stop each model between steps: a checkpoint is saved, one line says where, the exit status
is 128 + signal, and the same command resumes there (common/stop.py)."""
import os
import re
import signal
import subprocess
import sys

import pytest

from conftest import REPO, run_python, script_env
from test_am3 import TINY, data_dir  # noqa: F401  (fixture)
from test_mobilenetv3 import image_data  # noqa: F401  (fixture)


def stop_when(ready, args, signum, timeout=300):
    """Run a project script, send `signum` once a line matches `ready`; returns (exit status, whole output)."""
    proc = subprocess.Popen([sys.executable] + [str(a) for a in args], cwd=REPO, env=script_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if re.search(ready, line):
            proc.send_signal(signum)
            break
    rest, _ = proc.communicate(timeout=timeout)
    return proc.returncode, "".join(seen) + rest


def stopped_line(out, signum):
    lines = [line for line in out.splitlines() if line.startswith("stopped by %s at " % signum.name)]
    assert len(lines) == 1 and "Traceback" not in out, out[-3000:]
    return lines[0]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_am3_saves_and_resumes_where_it_stopped(tmp_path, data_dir, signum):  # noqa: F811
    args = ["am3/AM3_TADAM.py", "--data_dir", data_dir, "--log_dir", tmp_path / "log", "--log_interval_steps=1",
            "--eval_interval_steps=0", "--eval_interval_fine_steps=0"] + TINY
    status, out = stop_when(r"^step 2, loss", args + ["--train_steps=100000"], signum)
    assert status == 128 + signum
    step = int(re.search(r"at step (\d+); saved (\S+)-(\d+):", stopped_line(out, signum)).group(3))
    resumed = run_python(args + ["--train_steps=%d" % (step + 1)]).stdout
    assert "resumed from %s" % (tmp_path / "log" / "train" / ("model.ckpt-%d" % step)) in resumed


def test_mtnet_saves_and_resumes_where_it_stopped(tmp_path):
    args = ["mtnet/main.py", "--datasource=sinusoid", "--logdir=%s" % tmp_path, "--print_interval=10",
            "--num_threads=1"]
    status, out = stop_when(r"^Iteration 20:", args + ["--metatrain_iterations=10000000"], signal.SIGTERM)
    assert status == 143
    line = stopped_line(out, signal.SIGTERM)
    itr = int(re.search(r"at iteration (\d+); saved \S+model(\d+):", line).group(1))
    assert line.endswith("model%d: rerun the same command to resume" % (itr - 1))
    resumed = run_python(args + ["--metatrain_iterations=%d" % (itr + 5)]).stdout
    assert re.search(r"Restoring model weights from \S+/model%d\n" % (itr - 1), resumed)


def test_mobilenetv3_saves_and_resumes_where_it_stopped(tmp_path, image_data):  # noqa: F811
    args = ["mobilenetv3/train_cls.py", "--data_path=" + image_data, "--image_size=32", "--batch=4",
            "--patience=0", "--log_every=1", "--modeldir=%s" % tmp_path]
    status, out = stop_when(r"^train step=3 ", args + ["--epochs=1000"], signal.SIGINT)
    assert status == 130
    step = int(re.search(r"at step (\d+) \(epoch \d+\); saved \S+model.ckpt-(\d+):",
                         stopped_line(out, signal.SIGINT)).group(2))
    resumed = run_python(args + ["--max_step=%d" % (step + 1)]).stdout
    assert "resumed from %s" % (tmp_path / "checkpoints" / ("model.ckpt-%d" % step)) in resumed


def test_swa_saves_the_epoch_and_resumes_after_it(tmp_path):
    args = [os.path.join(REPO, "swa", "train-tf.keras-npu.py"), "--num_samples=3000", "--batch_size=512",
            "--swa_start=3", "--swa_freq=2", "--swa_lr=0.01", "--swa_lr2=0.03", "--model_dir=%s" % tmp_path]
    status, out = stop_when(r"^sgd epoch 2/", args + ["--train_epochs=99999"], signal.SIGINT)
    assert status == 130
    epoch = int(re.search(r"at the end of sgd epoch (\d+); saved checkpoint \S+/sgd/ckpt-(\d+):",
                          stopped_line(out, signal.SIGINT)).group(1))
    assert os.path.isdir(str(tmp_path / "sgd" / ("ckpt-%d" % epoch)))
