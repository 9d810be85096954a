"""Ctrl-C and SIGTERM stop each model between steps: a checkpoint is saved, one line says where, the exit status
is 128 + signal, and the same command resumes there (common/stop.py)."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from common.log_lines import STOPPED, STOPPED_UNSAVED
from conftest import AM3_TINY as TINY, REPO, make_am3_data as make_data, run, run_python, script_env


def stop_when(ready, args, signum, timeout=300):
    """Run a project script, send `signum` once a line matches `ready`; returns (exit status, whole output)."""
    proc = subprocess.Popen([sys.executable] + [str(a) for a in args], cwd=REPO, env=script_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    seen = []
    watchdog = threading.Timer(timeout, proc.kill)   # a stop that is not honoured fails the test, not hangs it
    watchdog.start()
    try:
        for line in proc.stdout:
            seen.append(line)
            if re.search(ready, line):
                proc.send_signal(signum)
                break
        rest, _ = proc.communicate()
    finally:
        watchdog.cancel()
    return proc.returncode, "".join(seen) + rest


def stopped_line(out, signum, kind=STOPPED):
    """The one 'stopped by ...' line of `out`, of the kind (common/log_lines.STOPPED: saved) given: its fields
    and the line."""
    lines = [line for line in out.splitlines() if line.startswith("stopped by %s at " % signum.name)]
    assert len(lines) == 1 and "Traceback" not in out, out[-3000:]
    fields = kind.parse(lines[0])
    assert fields and fields["signal"] == signum.name, lines[0]
    return fields, lines[0]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_am3_saves_and_resumes_where_it_stopped(tmp_path, data_dir, signum):
    args = ["am3/AM3_TADAM.py", "--data_dir", data_dir, "--log_dir", tmp_path / "log", "--log_interval_steps=1",
            "--eval_interval_steps=0", "--eval_interval_fine_steps=0"] + TINY
    status, out = stop_when(r"^step 2, loss", args + ["--train_steps=100000"], signum)
    assert status == 128 + signum
    stopped, _ = stopped_line(out, signum)
    assert re.match(r"step \d+$", stopped["where"]), stopped
    step = int(stopped["saved"].rsplit("-", 1)[1])
    resumed = run_python(args + ["--train_steps=%d" % (step + 1)]).stdout
    assert "resumed from %s" % (tmp_path / "log" / "train" / ("model.ckpt-%d" % step)) in resumed


def test_mtnet_saves_and_resumes_where_it_stopped(tmp_path):
    args = ["mtnet/main.py", "--datasource=sinusoid", "--logdir=%s" % tmp_path, "--print_interval=10",
            "--num_threads=1"]
    status, out = stop_when(r"^Iteration 20:", args + ["--metatrain_iterations=10000000"], signal.SIGTERM)
    assert status == 143
    stopped, _ = stopped_line(out, signal.SIGTERM)
    itr = int(re.match(r"iteration (\d+)$", stopped["where"]).group(1))
    assert stopped["saved"].endswith("model%d" % (itr - 1)), stopped
    resumed = run_python(args + ["--metatrain_iterations=%d" % (itr + 5)]).stdout
    assert re.search(r"Restoring model weights from \S+/model%d\n" % (itr - 1), resumed)


def test_mobilenetv3_saves_and_resumes_where_it_stopped(tmp_path, image_data):
    args = ["mobilenetv3/train_cls.py", "--data_path=" + image_data, "--image_size=32", "--batch=4",
            "--patience=0", "--log_every=1", "--modeldir=%s" % tmp_path]
    status, out = stop_when(r"^train step=3 ", args + ["--epochs=1000"], signal.SIGINT)
    assert status == 130
    stopped, _ = stopped_line(out, signal.SIGINT)
    assert re.match(r"step \d+ \(epoch \d+\)$", stopped["where"]), stopped
    step = int(re.search(r"model.ckpt-(\d+)$", stopped["saved"]).group(1))
    resumed = run_python(args + ["--max_step=%d" % (step + 1)]).stdout
    assert "resumed from %s" % (tmp_path / "checkpoints" / ("model.ckpt-%d" % step)) in resumed


def test_swa_saves_the_epoch_and_resumes_after_it(tmp_path):
    args = [os.path.join(REPO, "swa", "train-tf.keras-npu.py"), "--num_samples=3000", "--batch_size=512",
            "--swa_start=3", "--swa_freq=2", "--swa_lr=0.01", "--swa_lr2=0.03", "--model_dir=%s" % tmp_path]
    status, out = stop_when(r"^sgd epoch 2/", args + ["--train_epochs=99999"], signal.SIGINT)
    assert status == 130
    stopped, _ = stopped_line(out, signal.SIGINT)
    epoch = int(re.match(r"the end of sgd epoch (\d+)$", stopped["where"]).group(1))
    assert stopped["saved"].endswith("/sgd/ckpt-%d" % epoch), stopped
    assert os.path.isdir(str(tmp_path / "sgd" / ("ckpt-%d" % epoch)))


def stop_wrapper(wrapper, flags, ready, out_root, signum=signal.SIGTERM, timeout=300):
    """Run a model's wrapper in a session of its own and, once its log has a line matching `ready`, send `signum`
    to the whole process group, as a scheduler (or `timeout -s TERM`) does: bash, the script and tee all get it.
    Returns (exit status, the wrapper's output, its log)."""
    log = out_root / "0" / "train_0.log"
    with open(str(out_root.parent / (out_root.name + ".out")), "w+") as out:
        proc = subprocess.Popen(["bash", os.path.join(REPO, wrapper)] + flags, cwd=REPO,
                                env=script_env(OUTPUT_ROOT=out_root), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.time() + timeout
        while not (log.exists() and re.search(ready, log.read_text(), re.M)):
            assert proc.poll() is None and time.time() < deadline, log.read_text() if log.exists() else "no log"
            time.sleep(0.5)
        os.killpg(proc.pid, signum)
        proc.wait(timeout=timeout)
        out.seek(0)
        return proc.returncode, out.read(), log.read_text()


WRAPPER_STOPS = {   # wrapper, its flags, a line of training, the stop line (step, checkpoint), the resume line
    "am3": ("am3/test/train_full_1p.sh", ["--train_steps=100000", "--num_filters=4", "--num_cases_test=200"],
            r"^step 100, loss", r"stopped by SIGTERM at step (\d+); saved (\S+-(\d+)): rerun",
            "--train_steps=%d", "resumed from %s\n"),
    "mtnet": ("mtnet/test/train_full_1p.sh", ["--train_steps=100000000"], r"^Iteration 1000:",
              r"stopped by SIGTERM at iteration (\d+); saved (\S+model(\d+)): rerun", "--train_steps=%d",
              "Restoring model weights from %s\n"),
    "mobilenetv3": ("mobilenetv3/test/train_full_1p.sh",
                    ["--image_size=32", "--batch=8", "--epochs=1000", "--patience=0"], r"^train step=10 ",
                    r"stopped by SIGTERM at step (\d+) \(epoch \d+\); saved (\S+model.ckpt-(\d+)): rerun",
                    "--max_step=%d", "resumed from %s\n"),
}


@pytest.mark.parametrize("model", sorted(WRAPPER_STOPS))
def test_a_group_sigterm_to_a_wrapper_saves_the_step_in_flight_and_the_rerun_resumes_there(
        model, tmp_path, image_data):
    """A scheduler's stop reaches bash, the script and tee at once. tee used to die at once (tee -i ignores only
    SIGINT): the script's save and stop line then hit a broken pipe, nothing was saved, and the wrapper still said
    'rerun the same command to resume'."""
    wrapper, flags, ready, stopped, more_steps, resumed = WRAPPER_STOPS[model]
    if model == "am3":
        make_data(str(tmp_path / "am3data"), per_class=30, classes=(6, 5, 5))
        flags = flags + ["--data_path=%s" % (tmp_path / "am3data")]
    elif model == "mobilenetv3":
        flags = flags + ["--data_path=" + image_data]
    status, out, log = stop_wrapper(wrapper, flags, ready, tmp_path / "out")
    last_step = max(int(n) for n in re.findall(r"^(?:step|Iteration|train step=)\s?(\d+)", log, re.M))
    assert status == 143, out
    assert "%s: stopped (exit status 143); rerun the same command to resume" % os.path.basename(wrapper) in out
    match = re.search(stopped, log)
    assert match and "Traceback" not in log, log[-3000:]
    step, checkpoint = int(match.group(1)), match.group(2)
    assert step >= last_step and os.path.exists(checkpoint + ".index"), (step, last_step, checkpoint)
    rerun = run(["bash", wrapper] + flags + [more_steps % (step + 8)], check=False, OUTPUT_ROOT=tmp_path / "out")
    assert resumed % checkpoint in rerun.stdout, rerun.stdout[-3000:]


def test_am3_stops_during_validation_between_episodes_and_resumes(tmp_path, data_dir):
    """A stop request during validation waited for every episode of all three splits (~13 min at the seed
    configuration on a CPU, far past a scheduler's grace period). Here validation would never end."""
    args = ["am3/AM3_TADAM.py", "--data_dir", data_dir, "--log_dir", tmp_path / "log"] + TINY + \
        ["--num_cases_val=100000000"]
    status, out = stop_when(r"^step 1, loss", args + ["--train_steps=100000"], signal.SIGTERM, timeout=120)
    assert status == 143, out[-3000:]
    assert re.search(r"^validation at step 2 cut short by the stop request after \d+ of 20000000 episodes",
                     out, re.M), out[-3000:]
    stopped, line = stopped_line(out, signal.SIGTERM)
    assert stopped["where"] == "step 2" and stopped["saved"].endswith("model.ckpt-2"), line
    resumed = run_python(args[:-1] + ["--train_steps=3", "--num_cases_val=10"]).stdout
    assert "resumed from %s" % (tmp_path / "log" / "train" / "model.ckpt-2") in resumed


def test_am3_test_mode_stops_between_episodes_with_one_line(tmp_path, data_dir):
    """A group SIGTERM during test mode ended it without a word."""
    args = ["am3/AM3_TADAM.py", "--data_dir", data_dir, "--log_dir", tmp_path / "log"] + TINY
    run_python(args + ["--train_steps=2"])
    status, out = stop_when(r"^test mode: ", args + ["--mode=test", "--num_cases_test=100000000"],
                            signal.SIGTERM, timeout=120)
    assert status == 143, out[-3000:]
    stopped, line = stopped_line(out, signal.SIGTERM, STOPPED_UNSAVED)
    assert re.match(r"test episode \d+ of 20000000$", stopped["where"]), line
    assert re.match(r"test mode saves nothing \(checkpoint \S+model.ckpt-2 unchanged\)$", stopped["why"]), line
    assert stopped["then"] == "rerun the same command to test again" and STOPPED.parse(line) is None, line


def test_a_second_signal_stops_at_once():
    from common.stop import StopRequest
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)   # the handler runs in the main thread between bytecodes
        assert stop.requested and stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
