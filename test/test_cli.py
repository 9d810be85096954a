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


# Every entry script: each file with `if __name__ == "__main__"` outside test/ (test_every_entry_script_is_listed).
ENTRY_SCRIPTS = SCRIPTS + ["mobilenetv3/imagenet_eval.py", "datasets/prepare_mtnet_data.py", "-m common.npu_check",
                           "-m common.precision", "-m common.reproduce", "-m common.run_cost",
                           "-m common.log_lines", "-m common.wrapper_flags",
                           "-m common.options"]

# Runs a script (or -m module) with every import of TensorFlow, Keras and npu_bridge failing.
NO_TENSORFLOW = r"""
import os, runpy, sys
class Block(object):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_core", "keras", "npu_bridge"):
            raise ImportError("--help imported %s" % name)
    find_module = find_spec
sys.meta_path.insert(0, Block())
args = sys.argv[1:]
if args[0] == "-m":
    sys.argv = args[1:]
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
else:
    sys.argv = args
    sys.path.insert(0, os.path.dirname(os.path.abspath(args[0])))
    runpy.run_path(args[0], run_name="__main__")
"""


def test_every_entry_script_is_listed():
    import os
    from conftest import REPO
    found = set()
    for top in ("am3", "common", "datasets", "mobilenetv3", "mtnet", "swa"):
        for name in sorted(os.listdir(os.path.join(REPO, top))):
            path = os.path.join(REPO, top, name)
            if name.endswith(".py") and 'if __name__ == "__main__"' in open(path).read():
                found.add("-m common.%s" % name[:-3] if top == "common" else "%s/%s" % (top, name))
    assert found == set(ENTRY_SCRIPTS)


@pytest.mark.parametrize("script", ENTRY_SCRIPTS)
def test_help_answers_without_loading_tensorflow(script):
    proc = run_python(["-c", NO_TENSORFLOW] + script.split() + ["--help"], check=False)
    assert proc.returncode == 0 and "usage" in proc.stdout.lower(), proc.stdout[-3000:]
    assert "--help imported" not in proc.stdout


def test_the_tensorflow_block_is_real():
    """The check above can fail: a script that imports TensorFlow before its flags does under the block."""
    proc = run_python(["-c", NO_TENSORFLOW, "-m", "common.tf_compat", "--help"], check=False)
    assert proc.returncode != 0 and "--help imported tensorflow" in proc.stdout


def test_mtnet_main_defines_no_flag_of_its_own():
    """MT-net's defaults are written once, in mtnet/options.py (main.py wrote them beside the trainer's before)."""
    from conftest import REPO
    with open(REPO + "/mtnet/main.py") as f:
        assert "DEFINE_" not in f.read()


def test_xla_on_the_npu_route_is_one_error_line(tmp_path):
    proc = run_python(["mtnet/main.py", "--xla", "--logdir=%s" % tmp_path, "--metatrain_iterations=2"],
                      check=False, fake_npu=True)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 2 and lines[-1].startswith("error: --xla: ") and "GE" in lines[-1], proc.stdout[-2000:]
    assert "Traceback" not in proc.stdout and not [line for line in lines if line.startswith("device: ")]
