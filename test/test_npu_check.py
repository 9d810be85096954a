"""common.npu_check: a training command checked on the CPU against the adapter's graph rules (issue 23.3)."""
import json
import sys

import pytest

from conftest import AM3_TINY as TINY, make_am3_data as make_data, run

PLANTED = '''
from common import npu_session
from common.npu_session import NpuOptions
from common.tf_compat import tf
v1 = tf.compat.v1
ds = tf.data.Dataset.from_tensor_slices(tf.zeros([8, 2])).batch(4, drop_remainder=True).repeat()
it = v1.data.make_initializable_iterator(ds)
x = it.get_next()
loss = tf.reduce_sum(tf.nn.conv2d(tf.reshape(x, [1, 4, 2, 1]), tf.ones([1, 1, 1, 1]), 1, "SAME"))
summary = v1.summary.scalar("loss", loss)
with npu_session.new_session(NpuOptions()) as sess:
    sess.run(it.initializer)
    for _ in range(3):
        sess.run([loss] + ([summary] if PLANT else []))
'''


def check(args, tmp_path, **kwargs):
    return run([sys.executable, "-m", "common.npu_check"] + [str(a) for a in args], check=False, **kwargs)


def test_am3_passes_and_a_planted_summary_fetch_fails(tmp_path):
    data = make_data(str(tmp_path / "data"))
    proc = check(["--", sys.executable, "am3/AM3_TADAM.py", "--data_path", data, "--log_dir", tmp_path / "log",
                  "--train_steps=4", "--iterations_per_loop=2"] + TINY, tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "npu_check: ok" in proc.stdout and "graph scan" in proc.stdout
    for plant, status in ((False, 0), (True, 1)):
        script = tmp_path / ("planted%d.py" % plant)
        script.write_text("PLANT = %r\n" % plant + PLANTED)
        ops = tmp_path / "ops.json"
        ops.write_text(json.dumps({"Sum": {"isGray": False}, "Reshape": {}, "Const": {}}))
        proc = check(["--ops_json", ops, "--", sys.executable, script], tmp_path)
        assert proc.returncode == status, proc.stdout
        assert "stays on the host (not in npu_supported_ops.json): Conv2D" in proc.stdout
        if plant:
            assert "BREAKS rule 8 (summaries/prints): summary fetched in sess.run mode" in proc.stdout
            assert proc.stdout.strip().splitlines()[-1].startswith("npu_check: 1 rule(s) break a run")


def test_a_string_handle_iterator_is_reported_before_it_runs(tmp_path):
    """The graph scan sees a GetNext the command has not run yet (e.g. validation built beside training)."""
    script = tmp_path / "later.py"
    script.write_text(PLANTED.replace("it = v1.data", "late = v1.data.Iterator.from_string_handle(v1.placeholder("
                                      "tf.string, []), v1.data.get_output_types(ds), v1.data.get_output_shapes(ds))"
                                      ".get_next()\nit = v1.data") .replace("PLANT", "False"))
    proc = check(["--", sys.executable, script], tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert "graph scan" in proc.stdout and "BREAKS rule 1 (GetNext not sunk)" in proc.stdout


def test_bad_use_is_one_line(tmp_path):
    proc = check(["--ops_json", tmp_path / "missing.json", "--", sys.executable, "-c", "pass"], tmp_path)
    assert proc.returncode == 1 and proc.stdout.strip().startswith("error: cannot read the ops table")
    proc = check([sys.executable, "x.py"], tmp_path)
    assert proc.returncode == 2 and "give the train command after --" in proc.stdout
    proc = check(["--", sys.executable, "-c", "raise SystemExit(3)"], tmp_path)
    assert proc.returncode == 1 and "error: the command failed (exit status 3)" in proc.stdout


WRAPPERS = {
    "am3": ["am3/test/train_performance_1p.sh", "--data_path={data}"],
    "mtnet": ["mtnet/test/train_performance_1p.sh"],
    "swa": ["swa/test/train_performance_1p.sh"],
    # MobileNetV3 at 224 px and its default batch takes minutes a step on a CPU: its tiny-image flags instead
    "mobilenetv3": ["mobilenetv3/test/train_performance_1p.sh", "--data_path={images}", "--image_size=32",
                    "--batch=8"],
}


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(WRAPPERS))
def test_wrappers_pass_at_their_defaults(model, tmp_path):
    data = tmp_path / "data"
    make_data(str(data / "mini-imagenet"), per_class=30, classes=(6, 5, 5))
    from conftest import make_image_folder as make_folder
    images = tmp_path / "images"
    make_folder(images / "train", 8)
    make_folder(images / "validation", 2, seed=1)
    args = [a.format(data=data, images=images) for a in WRAPPERS[model]]
    proc = check(["--", "bash"] + args, tmp_path, OUTPUT_ROOT=tmp_path / "out", timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("npu_check: ok")
