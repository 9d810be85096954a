"""common/log_lines.py and <model>/log_lines.py: each log line's format and parser agree (format -> text -> parse
gives the values back), the text is today's format byte for byte (a literal here, so the contract cannot drift
silently), and the wrappers' Python extraction prints what their greps printed."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from am3 import log_lines as am3_lines
from common import log_lines
from conftest import REPO
from mobilenetv3 import log_lines as mobilenet_lines
from mtnet import log_lines as mtnet_lines
from swa import log_lines as swa_lines


def round_trip(line, literal, **values):
    """The formatted text equals `literal`, and parsing it gives `values` back (values exact at the printed
    digits)."""
    text = line.format(**values)
    assert text == literal
    parsed = line.parse(text)
    assert parsed is not None, text
    for name, value in values.items():
        if isinstance(value, float) or isinstance(parsed.get(name), float):   # text fields: the history's
            assert parsed[name] == pytest.approx(float(value), rel=1e-9), name
        elif not isinstance(value, (list, np.ndarray)):
            assert parsed[name] == value, name
    return parsed


def test_shared_lines_round_trip():
    round_trip(log_lines.STEP_TIME, "step_time: step=200 steps=100 mean_dt=0.012345 throughput=1234.56 images/s",
               step=200, steps=100, mean_dt=0.012345, throughput=1234.56, unit="images")
    round_trip(log_lines.STEP_TIME_SUMMARY,
               "step_time_summary: mean_dt=0.012345 steps=950 warmup=50 throughput=1234.56 tasks/s",
               mean_dt=0.012345, steps=950, warmup=50, throughput=1234.56, unit="tasks")
    text = log_lines.STEP_TIME_SUMMARY.format(mean_dt=float("nan"), steps=0, warmup=3, throughput=0.0,
                                              unit="images")
    assert text == "step_time_summary: mean_dt=nan steps=0 warmup=3 throughput=0.00 images/s"
    assert log_lines.warmup_only([text]) == ["3"] and log_lines.mean_dt([text]) == []
    round_trip(log_lines.STOPPED, "stopped by SIGTERM at step 3; saved checkpoint x/model.ckpt-3: rerun the same "
               "command to resume", signal="SIGTERM", where="step 3", saved="checkpoint x/model.ckpt-3")
    round_trip(log_lines.STOPPED_UNSAVED, "stopped by SIGINT at test episode 2 of 5; test mode saves nothing "
               "(checkpoint c unchanged): rerun the same command to test again", signal="SIGINT",
               where="test episode 2 of 5", why="test mode saves nothing (checkpoint c unchanged)",
               then="rerun the same command to test again")
    round_trip(log_lines.STOP_REQUESTED, "SIGINT: stopping after this step and saving a checkpoint (again to stop "
               "at once, without saving)", signal="SIGINT")
    round_trip(log_lines.NOTHING_TO_TRAIN, "nothing to train: checkpoint at step 12, epochs 3, max_step 0",
               why="checkpoint at step 12, epochs 3, max_step 0")


def test_am3_lines_round_trip():
    round_trip(am3_lines.LOSS, "step 40, loss : 1.235, dt: 0.0123s, accuracy: 0.4500, lambda: 0.1250",
               step=40, loss=1.235, dt=0.0123, accuracy=0.45, lam=0.125)
    parsed = round_trip(am3_lines.VALIDATION, "step 500, accuracy_sources: 0.5000, accuracy_target_tst: 0.2500.",
                        step=500, accuracies=[("sources", 0.5), ("target_tst", 0.25)])
    assert list(parsed["accuracies"].items()) == [("sources", 0.5), ("target_tst", 0.25)]
    round_trip(am3_lines.TEST, "accuracy_target_tst: 0.6512 +- 0.0071 (95% confidence interval; 5-way 1-shot, "
               "500 episodes x 100 queries, checkpoint step 30000, 0.12 s/episode, mean lambda 0.250) (upstream)",
               split="target_tst", accuracy=0.6512, ci95=0.0071, ways=5, shots=1, episodes=500, queries=100,
               step=30000, seconds=0.12, lam=0.25, note=" (upstream)")


def test_mtnet_lines_round_trip():
    pre, post = np.float32(0.53125), np.float32(0.125)
    round_trip(mtnet_lines.LOSS, "Iteration 999: 0.53125, 0.125", iteration=999, preloss=pre, postloss=post)
    parsed = round_trip(mtnet_lines.LOSS, "Iteration 99: 0.53125, 0.125 (accuracy 0.25, 0.5)", iteration=99,
                        preloss=pre, postloss=post, accuracies=np.array([0.25, 0.5]))
    assert (parsed["preacc"], parsed["postacc"]) == (0.25, 0.5)
    pretrain = mtnet_lines.PRETRAIN_LOSS.format(iteration=5, preloss=pre, postloss=post)
    assert pretrain == "Pretrain Iteration 5: 0.53125, 0.125" and mtnet_lines.LOSS.parse(pretrain) is None
    round_trip(mtnet_lines.TEST, "update10: mean 0.012300 std 0.100000 ci95 0.002000", update=10, mean=0.0123,
               std=0.1, ci95=0.002)


def test_mobilenetv3_lines_round_trip():
    round_trip(mobilenet_lines.LOSS, "train step=12 epoch=3 loss=2.302585 acc=0.1250", step=12, epoch=3,
               loss=2.302585, acc=0.125)
    parsed = round_trip(mobilenet_lines.EPOCH, "epoch 3/10: loss=2.302585 acc=0.125000 val_loss=2.100000 "
                        "val_acc=0.250000 (64 images) 12.3s best", epoch=3, epochs=10, loss="2.302585",
                        acc="0.125000", val_loss="2.100000", val_acc="0.250000", images=64, seconds=12.3, best=True)
    assert parsed["val_acc"] == 0.25 and parsed["best"] is True
    assert mobilenet_lines.EPOCH.parse(mobilenet_lines.EPOCH.format(
        epoch=1, epochs=1, loss="1", acc="1", val_loss="1", val_acc="1", images=1, seconds=1.0, best=False))["best"] \
        is False


def test_swa_lines_round_trip():
    round_trip(swa_lines.EPOCH, "sgd epoch 6/6 loss: 0.123456 acc: 0.9500 lr: 0.0005", run="sgd", epoch=6, epochs=6,
               loss=0.123456, acc=0.95, lr=0.0005)
    round_trip(swa_lines.FINAL, "final test accuracy: swa=0.9600 sgd=0.9500 swa_run_last_iterate=0.9400", swa=0.96,
               sgd=0.95, swa_run_last_iterate=0.94)
    assert swa_lines.FINAL.parse(swa_lines.FINAL.format(swa=0.96)) == {"swa": 0.96}


# What each wrapper's grep/awk/sed printed before the Python extraction replaced it, on the logs below.
OLD_EXTRACTORS = {
    "am3": (r"""grep -a -o 'step [0-9]*, loss : [0-9.eE+-]*' "$1" | awk '{print $5}'""",
            r"""grep -a -o 'accuracy_target_tst: [0-9.]*' "$1" | tail -n 1 | awk '{print $2}'"""),
    "mtnet": (r"""grep -a -o '^Iteration [0-9]*: [^,]*, [0-9.e+-]*' "$1" | awk '{print $NF}'""",
              r"""grep -a -o '^update10: mean [0-9.e+-]*' "$1" | awk '{print $NF}' | tail -n 1"""),
    "mobilenetv3": (r"""grep -a '^train step=' "$1" | sed -n 's/.* loss=\([0-9.eE+-]*\).*/\1/p'""",
                    r"""grep -a '^epoch [0-9]*/' "$1" | tail -n 1 | sed -n 's/.* val_acc=\([0-9.eE+-]*\).*/\1/p'"""),
    "swa": (r"""grep -a -o '^swa epoch [0-9]*/[0-9]* loss: [0-9.eE+-]*' "$1" | awk '{print $NF}'""",
            r"""grep -a -o 'final test accuracy: swa=[0-9.]*' "$1" | tail -n 1 | sed 's/.*swa=//'"""),
}
LOGS = {
    "am3": """\
        training AM3-TADAM from step 0 to 30: 5 tasks x (5-way 1-shot + 24 queries) = 145 images per step
        step 0, pretrain loss : 4.1, pretrain accuracy: 0.0100
        step 0, loss : 2.303, dt: 1.5s, accuracy: 0.2000, lambda: 0.5000
        step 10, loss : 1.5e-05, dt: 0.012s, accuracy: 0.2500, lambda: 0.5100
        step 20, accuracy_sources: 0.3000, accuracy_target_val: 0.3100, accuracy_target_tst: 0.3200.
        step 20, loss : 0.9876, dt: 0.0123s, accuracy: 0.3000, lambda: 0.5200
        step_time_summary: mean_dt=0.012300 steps=25 warmup=5 throughput=11788.62 images/s
        accuracy_target_tst: 0.3300 +- 0.0100 (95% confidence interval; 5-way 1-shot, 10 episodes x 100 queries, \
checkpoint step 30, 0.10 s/episode, mean lambda 0.520)
        """,
    "mtnet": """\
        Pretrain Iteration 99: 0.5, 0.4
        Iteration 999: 0.53125, 0.125
        Iteration 1999: 0.25, 1.25e-05 (accuracy 0.5, 0.75)
        Validation results: 0.5, 0.6
        update0: mean 1.000000 std 0.100000 ci95 0.010000
        update10: mean 0.123456 std 0.100000 ci95 0.010000
        update10: mean 0.654321 std 0.100000 ci95 0.010000
        """,
    "mobilenetv3": """\
        epoch 1: backbone frozen (head and classifier train, batch norm statistics kept)
        train step=4 epoch=1 loss=2.302585 acc=0.1250
        train step=8 epoch=1 loss=2.100000 acc=0.2500
        epoch 1/2: loss=2.200000 acc=0.180000 val_loss=2.000000 val_acc=0.300000 (16 images) 1.2s best
        train step=12 epoch=2 loss=1.900000 acc=0.3750
        epoch 2/2: loss=1.900000 acc=0.375000 val_loss=1.800000 val_acc=0.350000 (16 images) 1.1s best
        final: step=16 best_val_acc=0.3500 val_acc=0.350000
        """,
    "swa": """\
        sgd epoch 1/2 loss: 0.700000 acc: 0.5000 lr: 0.05
        swa epoch 1/2 loss: 0.690000 acc: 0.5100 lr: 0.05
        swa epoch 2/2 loss: 0.123456 acc: nan lr: 1e-05
        final test accuracy: swa=0.9600 sgd=0.9500 swa_run_last_iterate=0.9400
        """,
}


def _shell(command, path):
    return subprocess.run(["bash", "-c", command, "extract", str(path)], stdout=subprocess.PIPE,
                          universal_newlines=True).stdout


def _python(model, what, path):
    return subprocess.run([sys.executable, "-m", "common.log_lines", model, what, str(path)], cwd=str(REPO),
                          stdout=subprocess.PIPE, universal_newlines=True).stdout


@pytest.mark.parametrize("model", sorted(LOGS))
def test_python_extraction_prints_what_the_greps_printed(tmp_path, model):
    path = tmp_path / "train_0.log"
    path.write_text(textwrap.dedent(LOGS[model]))
    losses, accuracy = OLD_EXTRACTORS[model]
    assert _python(model, "losses", path) == _shell(losses, path) != ""
    assert _python(model, "accuracy", path) == _shell(accuracy, path) != ""


def test_shared_extraction_prints_what_the_greps_printed(tmp_path):
    path = tmp_path / "train_0.log"
    path.write_text("step_time_summary: mean_dt=nan steps=0 warmup=3 throughput=0.00 images/s\n"
                    "nothing to train: checkpoint at step 12\nstep_time: step=5 steps=5 mean_dt=0.1\n"
                    "step_time_summary: mean_dt=0.250000 steps=40 warmup=5 throughput=128.00 images/s\n"
                    "stopped by SIGTERM at step 3; saved checkpoint c: rerun the same command to resume\n")
    mean_dt = r"""grep -a 'step_time_summary:' "$1" | tail -n 1 | sed -n 's/.*mean_dt=\([0-9.eE+-]*\).*/\1/p'"""
    assert _python("common", "mean_dt", path) == _shell(mean_dt, path) == "0.250000\n"
    assert _python("common", "nothing_to_train", path) == "nothing to train: checkpoint at step 12\n"
    assert _python("common", "warmup_only", path) == ""      # the last summary timed steps
    assert _python("common", "stopped", path) != ""


def test_a_bad_call_says_what_is_known(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "common.log_lines", "am3", "nonsense", str(tmp_path / "x")],
                          cwd=str(REPO), stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 2 and proc.stderr == "error: no log value 'nonsense' of 'am3' (known: accuracy, " \
        "losses)\n"
    proc = subprocess.run([sys.executable, "-m", "common.log_lines", "am3", "losses", str(tmp_path / "x")],
                          cwd=str(REPO), stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 1 and proc.stderr.startswith("error: cannot read ")


def test_the_extraction_loads_no_tensorflow():
    code = ("import sys; from common import log_lines; [log_lines.extractors(m) for m in log_lines.MODELS]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    assert out == "[]\n"
