"""Every entry script: a wrong flag is one line 'error: ...' with exit status 2 (no usage dump, no traceback), and
--help exits 0."""
import re

import pytest

from conftest import run_python

SCRIPTS = ["am3/AM3_TADAM.py", "am3/AM3_protonet++.py", "am3/tadam.py", "am3/protonet++.py", "am3/benchmark.py",
           "am3/cross_modal_check.py", "mtnet/main.py", "mtnet/benchmark.py",
           "mobilenetv3/train_cls.py", "mobilenetv3/eval_cls.py",
           "mobilenetv3/predict.py", "mobilenetv3/export.py", "mobilenetv3/benchmark.py",
           "swa/train-tf.keras-npu.py", "swa/compare_seeds.py", "swa/bench_overhead.py",
           "datasets/create_dataset_miniImagenet.py",
           "datasets/create_dataset_tieredimagenet.py", "-m common.report", "-m common.launch"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_wrong_flag_is_one_error_line_and_help_exits_zero(script):
    args = script.split()
    bad = run_python(args + ["--no_such_flag=1"], check=False)
    lines = bad.stdout.strip().splitlines()
    assert bad.returncode == 2 and len([line for line in lines if line.startswith("error: ")]) == 1, bad.stdout
    assert lines[-1].startswith("error: ") and "usage:" not in bad.stdout and "Traceback" not in bad.stdout
    assert "no_such_flag" in lines[-1] or "the following arguments are required" in lines[-1]
    assert run_python(args + ["--help"]).returncode == 0


def _abbreviation(help_text):
    """A flag of the --help text cut by its last letter, where no other flag starts with the cut name: argparse's
    default would take it for that flag."""
    flags = set(re.findall(r"(?<![\w\[\]-])--([a-zA-Z][\w-]*[a-zA-Z0-9])", help_text)) - {"help"}
    for flag in sorted(flags, key=len, reverse=True):
        cut = flag[:-1]
        if len(cut) >= 3 and [f for f in flags if f.startswith(cut)] == [flag]:
            return flag, cut
    raise AssertionError("no flag to abbreviate in:\n" + help_text)


def _with_required(args, error_line):
    """args plus a placeholder for each argument an 'arguments are required' error names (argparse reports those
    before unknown ones)."""
    named = re.search(r"the following arguments are required: (.*?)(?: \(see --help\))?$", error_line)
    extra = []
    for name in named.group(1).split(", ") if named else []:
        first = name.split("/")[0]
        extra.append(first + "=x" if first.startswith("--") else "x")
    return args + extra


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_abbreviated_flag_is_unknown_not_another_flag(script):
    """argparse took '--train_ep=6' for --train_epochs: a typo of one flag silently set another."""
    args = script.split()
    flag, cut = _abbreviation(run_python(args + ["--help"]).stdout)
    wrong = ["--%s=1" % cut, "--no_such_flag=1"]
    bad = run_python(args + wrong, check=False)
    bad = run_python(_with_required(args, bad.stdout.strip().splitlines()[-1]) + wrong, check=False)
    lines = bad.stdout.strip().splitlines()
    assert bad.returncode == 2 and lines[-1].startswith("error: "), bad.stdout
    assert re.search(r"--%s(?!\w)" % re.escape(cut), lines[-1]), (flag, lines[-1])
