"""common/ascend_wrapper.sh driven by a tiny fake model: summary lines, case log, FPS, exit status."""
import os
import re
import sys

import pytest

from conftest import REPO, run, script_env


def test_summary_lines_case_log_and_fps(fake_model, tmp_path):
    out_root = tmp_path / "out"
    proc = run(["bash", str(fake_model / "test" / "train_full_1p.sh"), "--data_path=/data/x",
                "--precision_mode=allow_mix_precision"], cwd=tmp_path, OUTPUT_ROOT=out_root, ASCEND_DEVICE_ID=3)
    out = proc.stdout
    assert "Final Performance images/sec : 128.00" in out   # 32 images / 0.25 s
    assert "Final Train Accuracy : 0.875" in out
    assert "E2E Training Duration sec : " in out
    assert "('data_dir', '/data/x')" in out and "('precision_mode', 'allow_mix_precision')" in out
    device_dir = out_root / "3"
    case = "FakeNet_for_TensorFlow_bs32_1p_acc"
    keys = dict(line.split(" = ", 1) for line in (device_dir / (case + ".log")).read_text().splitlines())
    assert keys["Network"] == "FakeNet_for_TensorFlow" and keys["RankSize"] == "1"
    assert keys["BatchSize"] == "32" and keys["CaseName"] == case
    assert keys["ActualFPS"] == "128.00" and keys["TrainingTime"] == "250.00"
    assert keys["TrainAccuracy"] == "0.875" and keys["ActualLoss"] == "0.75"
    assert set(keys) >= {"DeviceType", "E2ETrainingTime"}
    assert (device_dir / ("train_%s_loss.txt" % case)).read_text().split() == ["2.50", "1.50", "0.75"]
    log = (device_dir / "train_3.log").read_text()
    assert "step 3 loss : 0.75" in log and "Final Performance images/sec : 128.00" in log


def test_failing_command_fails_the_wrapper(fake_model, tmp_path):
    proc = run(["bash", str(fake_model / "test" / "train_full_1p.sh"), "--exit_code=3"], cwd=fake_model / "test",
               check=False, OUTPUT_ROOT=tmp_path / "out")
    assert proc.returncode == 3
    assert "command failed with exit status 3" in proc.stdout
    assert "Final Performance" not in proc.stdout


def test_unknown_flag_and_help(fake_model, tmp_path):
    script = str(fake_model / "test" / "train_full_1p.sh")
    proc = run(["bash", script, "--bogus=1"], check=False, OUTPUT_ROOT=tmp_path / "out")
    assert proc.returncode == 2 and "unknown flag --bogus" in proc.stdout
    proc = run(["bash", script, "--help"], OUTPUT_ROOT=tmp_path / "out")
    assert "--data_path" in proc.stdout and "--precision_mode" in proc.stdout
    assert not os.path.exists(str(tmp_path / "out"))


def test_the_wrappers_ascend_flags_and_help_are_the_python_declaration(fake_model, tmp_path):
    """Names, help and defaults come from common/npu_options.py: a new flag (--xla) reaches every wrapper."""
    from common.npu_options import ASCEND_FLAGS, NOT_IN_WRAPPERS
    script = str(fake_model / "test" / "train_full_1p.sh")
    out = run(["bash", script, "--help"], OUTPUT_ROOT=tmp_path / "out").stdout
    for opt in ASCEND_FLAGS:
        line = "    --%-22s %s (default: %s)" % (opt.name, opt.help, opt.default if opt.default != "" else "none")
        assert (line in out.splitlines()) == (opt.name not in NOT_IN_WRAPPERS), opt.name
    proc = run(["bash", script, "--xla", "--iterations_per_loop=2"], OUTPUT_ROOT=tmp_path / "out")
    assert "('xla', 'True')" in proc.stdout and "('iterations_per_loop', '2')" in proc.stdout
    bad = run(["bash", script, "--reference_dump_step=x"], check=False, OUTPUT_ROOT=tmp_path / "out")
    assert bad.returncode == 2 and "--reference_dump_step must be a whole number, got 'x'" in bad.stdout


def test_finished_checkpoint_reports_no_performance(fake_model, tmp_path):
    script = str(fake_model / "test" / "train_full_1p.sh")
    proc = run(["bash", script, "--finished=1"], OUTPUT_ROOT=tmp_path / "out")
    assert "no step time measured: nothing to train: checkpoint already at step 40" in proc.stdout
    assert "Final Performance images/sec : None" in proc.stdout
    assert "Final Train Accuracy : 0.875" in proc.stdout
    keys = dict(line.split(" = ", 1) for line in
                (tmp_path / "out" / "0" / "FakeNet_for_TensorFlow_bs32_1p_acc.log").read_text().splitlines())
    assert keys["ActualFPS"] == "None" and keys["TrainingTime"] == "None" and keys["ActualLoss"] == "None"
    # Without the "nothing to train" line a missing step time is still an error.
    proc = run(["bash", script, "--finished=lost"], check=False, OUTPUT_ROOT=tmp_path / "out2")
    assert proc.returncode == 1 and "no step_time_summary line with a step time" in proc.stdout


def test_no_accuracy_line_is_none_not_a_silent_failure(fake_model, tmp_path):
    """An accuracy extractor whose grep finds nothing (MobileNetV3's on a rerun with nothing to train) failed
    the summary under pipefail: exit 1 and no message."""
    script = fake_model / "test" / "train_full_1p.sh"
    text = script.read_text().replace(
        """extract_accuracy() { grep -o 'accuracy_sources: [0-9.]*' "$1" | awk '{print $2}'; }""",
        """extract_accuracy() { grep -a '^epoch [0-9]*/' "$1" | tail -n 1 | """
        """sed -n 's/.* val_acc=\\([0-9.]*\\).*/\\1/p'; }""")
    assert "^epoch" in text
    script.write_text(text)
    proc = run(["bash", str(script), "--finished=1"], check=False, OUTPUT_ROOT=tmp_path / "out")
    assert proc.returncode == 0, proc.stdout
    assert "Final Train Accuracy : None" in proc.stdout


def test_help_shows_the_default_a_wrapper_sets_after_sharing_flags(tmp_path):
    # SWA's two wrappers declare their flags once (swa/test/train_flags.sh); the performance run then shortens
    # the defaults, and --help must show the values the run will use.
    def default_of(script, flag):
        out = run(["bash", os.path.join(REPO, "swa", "test", script), "--help"], OUTPUT_ROOT=tmp_path).stdout
        line = next(line for line in out.splitlines() if line.strip().startswith("--%s " % flag))
        return line.rsplit("(default: ", 1)[1].rstrip(")")

    assert default_of("train_full_1p.sh", "train_epochs") == "100"
    assert default_of("train_performance_1p.sh", "train_epochs") == "10"
    assert default_of("train_performance_1p.sh", "swa_start") == "5"
    assert default_of("train_performance_1p.sh", "batch_size") == "16384"


def test_runs_append_to_the_log_and_a_rerun_keeps_the_losses(fake_model, tmp_path):
    script = str(fake_model / "test" / "train_full_1p.sh")
    device_dir = tmp_path / "out" / "0"
    run(["bash", script], OUTPUT_ROOT=tmp_path / "out")
    failed = run(["bash", script, "--exit_code=4"], check=False, OUTPUT_ROOT=tmp_path / "out")
    assert failed.returncode == 4
    rerun = run(["bash", script, "--finished=1"], OUTPUT_ROOT=tmp_path / "out")
    log = (device_dir / "train_0.log").read_text()
    assert log.count("===== train_full_1p.sh") == 3 and log.count("step 3 loss : 0.75") == 2
    assert "--exit_code=4" in log and "Final Performance images/sec : 128.00" in log
    # the rerun trained nothing: the loss file keeps the losses of the run that did, and says so
    assert (device_dir / "train_FakeNet_for_TensorFlow_bs32_1p_acc_loss.txt").read_text().split() == \
        ["2.50", "1.50", "0.75"]
    assert "kept the losses of the previous run" in rerun.stdout
    keys = dict(line.split(" = ", 1) for line in
                (device_dir / "FakeNet_for_TensorFlow_bs32_1p_acc.log").read_text().splitlines())
    assert keys["ActualFPS"] == "None" and keys["ActualLoss"] == "0.75"


def test_two_runs_on_one_output_directory_are_refused(fake_model, tmp_path):
    script = str(fake_model / "test" / "train_full_1p.sh")
    out_dir = tmp_path / "out" / "0"
    out_dir.mkdir(parents=True)
    holder = __import__("subprocess").Popen(["flock", str(out_dir / ".wrapper.lock"), "sleep", "30"])
    try:
        import time
        time.sleep(0.5)
        proc = run(["bash", script], check=False, OUTPUT_ROOT=tmp_path / "out")
    finally:
        holder.kill()
    assert proc.returncode == 2 and "another run is using %s" % out_dir in proc.stdout
    assert not (out_dir / "train_0.log").exists()


@pytest.mark.parametrize("model,script", [("am3", "train_full_1p.sh"), ("mtnet", "train_performance_1p.sh"),
                                          ("mobilenetv3", "train_full_1p.sh"), ("swa", "train_full_1p.sh")])
def test_a_non_numeric_flag_is_one_line_not_a_bash_error(model, script, tmp_path):
    flag = {"am3": "train_steps", "mtnet": "train_steps", "mobilenetv3": "max_step", "swa": "train_epochs"}[model]
    proc = run(["bash", os.path.join(REPO, model, "test", script), "--data_path=.", "--%s=abc" % flag],
               check=False, OUTPUT_ROOT=tmp_path / "out")
    assert proc.returncode == 2
    assert proc.stdout.strip().splitlines() == ["%s: --%s must be a whole number, got 'abc'" % (script, flag)]


def test_relative_data_path_and_python_are_made_absolute(fake_model, tmp_path):
    (tmp_path / "data").mkdir()
    os.symlink(sys.executable, str(tmp_path / "py"))
    proc = run(["bash", str(fake_model / "test" / "train_full_1p.sh"), "--data_path=data"], cwd=tmp_path,
               OUTPUT_ROOT=tmp_path / "out", PYTHON="./py")
    assert "('data_dir', '%s/data')" % tmp_path in proc.stdout


def test_ctrl_c_to_the_process_group_stops_a_wrapper_that_says_how_to_resume(tmp_path):
    """A terminal's Ctrl-C reaches bash, the script and tee together: the script's save and last line must still
    reach the log, and the wrapper says how to go on."""
    import signal
    import subprocess
    import time
    proc = subprocess.Popen(["bash", os.path.join(REPO, "mtnet", "test", "train_full_1p.sh"),
                             "--train_steps=100000000"], env=dict(script_env(), OUTPUT_ROOT=str(tmp_path)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                            start_new_session=True)
    log = tmp_path / "0" / "train_0.log"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and "Iteration 1000:" in log.read_text()):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "train_full_1p.sh: stopped (exit status 130); rerun the same command to resume" in out
    assert re.search(r"stopped by SIGINT at iteration \d+; saved \S+model\d+: rerun", log.read_text())


def test_a_stop_before_the_script_saved_does_not_promise_a_resume(fake_model, tmp_path):
    """A group SIGTERM (a scheduler's) that kills the script before it saved: the wrapper lives to say so, and
    does not claim a rerun resumes from where it stopped."""
    import signal
    import subprocess
    import time
    proc = subprocess.Popen(["bash", str(fake_model / "test" / "train_full_1p.sh"), "--finished=never"],
                            env=script_env(OUTPUT_ROOT=tmp_path / "out"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True, start_new_session=True)
    log = tmp_path / "out" / "0" / "train_0.log"
    deadline = time.time() + 60
    while time.time() < deadline and not (log.exists() and "starting" in log.read_text()):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out
    assert out.strip().splitlines()[-1] == (
        "train_full_1p.sh: stopped (exit status 143) with no checkpoint saved on the way out; a rerun starts from "
        "the last checkpoint saved before, if any (see %s)" % log)


def test_every_value_reaches_the_script_as_one_argument(fake_model, tmp_path):
    """The Ascend flags were passed as $(ascend_args), word-split: an OUTPUT_ROOT with a space broke --dump_path
    into two arguments, and a value holding ' --seed=7' passed a flag of its own to the script."""
    out_root = tmp_path / "my runs"
    proc = run(["bash", str(fake_model / "test" / "train_full_1p.sh"), "--data_path=/data/a b",
                "--precision_mode=force_fp16 --seed=7", "--profiling=True"], cwd=tmp_path, OUTPUT_ROOT=out_root)
    args = re.search(r"^args: (.*)$", proc.stdout, re.M).group(1)
    assert args == repr(sorted({"data_dir": "/data/a b", "exit_code": "0", "finished": "0",
                                "precision_mode": "force_fp16 --seed=7", "profiling": "True",
                                "dump_path": str(out_root / "0" / "dump")}.items()))


def test_a_run_of_warm_up_steps_only_reports_no_performance_and_exits_0(fake_model, tmp_path):
    """Training succeeded, but every step was a warm-up step (left out of the timing): the wrapper exited 1 with
    'no step_time_summary line with a step time', no summary, no report."""
    proc = run(["bash", str(fake_model / "test" / "train_full_1p.sh"), "--finished=warmup"], check=False,
               OUTPUT_ROOT=tmp_path / "out")
    assert proc.returncode == 0, proc.stdout
    assert "no step time measured: every step of this run (3) was a warm-up step, left out of the timing" in proc.stdout
    assert "Final Performance images/sec : None" in proc.stdout and "Final Train Accuracy : 0.5" in proc.stdout
    keys = dict(line.split(" = ", 1) for line in
                (tmp_path / "out" / "0" / "FakeNet_for_TensorFlow_bs32_1p_acc.log").read_text().splitlines())
    assert keys["ActualFPS"] == "None" and keys["TrainingTime"] == "None" and keys["ActualLoss"] == "2.50"
