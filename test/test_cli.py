"""Every entry script: a wrong flag is one line 'error: ...' with exit status 2 (no usage dump, no traceback), and
--help exits 0."""
import pytest

from conftest import run_python

SCRIPTS = ["am3/AM3_TADAM.py", "am3/AM3_protonet++.py", "am3/tadam.py", "am3/protonet++.py", "am3/benchmark.py",
           "am3/cross_modal_check.py", "mtnet/main.py", "mobilenetv3/train_cls.py", "mobilenetv3/eval_cls.py",
           "mobilenetv3/predict.py", "mobilenetv3/export.py", "mobilenetv3/benchmark.py",
           "swa/train-tf.keras-npu.py", "datasets/create_dataset_miniImagenet.py",
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
