"""Conformance of the NPU route with the installed Ascend adapter: run on an Ascend host with `pytest -m ascend`.

Skipped unless a real `npu_bridge` imports (installed with CANN's TF 1.15 adapter, or on the path given by
NPU_BRIDGE_PATH). It builds every configuration the project builds and runs every wrapper's NPU route for a few
steps, including the data-parallel launch with two ranks (RANK_TABLE_FILE names a rank table of two devices of
this host; without one a table for devices 0 and 1 is written, which is right on the usual 8-device server).
NPU_BRIDGE_PATH=test/fake_npu runs the same suite against the project's enforcing fake.
"""
import json
import math
import os
import sys

import pytest

from common import npu_session
from common.npu_session import NpuOptions
from common.tf_compat import tf
from conftest import REPO, make_image_data, rank_table, run

pytestmark = pytest.mark.ascend
BRIDGE_PATH = os.environ.get("NPU_BRIDGE_PATH", "")
IPL = "--iterations_per_loop=2"


def _bridge_env():
    """Environment for the wrappers: the adapter's path on PYTHONPATH, no fallback, no JOB_ID of ours."""
    env = {}
    if BRIDGE_PATH:
        path = os.path.abspath(BRIDGE_PATH)
        env["PYTHONPATH"] = os.pathsep.join([REPO, path] + ([os.environ["PYTHONPATH"]]
                                                            if os.environ.get("PYTHONPATH") else []))
    return env


@pytest.fixture(scope="module", autouse=True)
def adapter():
    """The npu_bridge under test, or a skip."""
    if BRIDGE_PATH:
        sys.path.insert(0, os.path.abspath(BRIDGE_PATH))
    npu_session.reset_probe()
    try:
        available = npu_session.on_npu()
    except Exception as err:   # a broken adapter on an Ascend host: that is a failure, not a skip
        pytest.fail("npu_bridge does not import: %s" % err)
    if not available:
        pytest.skip("no npu_bridge here: run on an Ascend host, or set NPU_BRIDGE_PATH")
    import npu_bridge
    yield npu_bridge
    npu_session.reset_probe()


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("JOB_ID", raising=False)
    monkeypatch.delenv("NPU_FALLBACK", raising=False)
    return monkeypatch


OPTION_SETS = {
    "defaults": dict(),
    "mixed precision, fixed scale, loop": dict(precision_mode="allow_mix_precision", loss_scale="1024",
                                               iterations_per_loop=2),
    "force_fp16, dynamic scale": dict(precision_mode="force_fp16", loss_scale="dynamic"),
    "data dump": dict(data_dump_flag=True, data_dump_step="0|1"),
    "overflow dump": dict(over_dump=True),
    "profiling": dict(profiling=True),
}


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
@pytest.mark.parametrize("distributed", [False, True])
def test_session_config_runs_a_training_step(name, distributed, tmp_path, clean_env):
    if distributed:
        clean_env.setenv("RANK_SIZE", "1")   # one process: the all-reduce path is built, HCCL needs no peers
    options = NpuOptions(dump_path=str(tmp_path / "dump"), **OPTION_SETS[name])
    with tf.Graph().as_default() as graph:
        x = tf.random.normal([8, 4], seed=1)
        w = tf.compat.v1.get_variable("w", [4, 1])
        hidden = npu_session.dropout(tf.matmul(x, w), keep_prob=0.9)
        loss = tf.reduce_mean(tf.square(hidden - 1.0))
        step = tf.compat.v1.train.get_or_create_global_step()
        optimizer = npu_session.wrap_optimizer(tf.compat.v1.train.GradientDescentOptimizer(0.1), options,
                                               distributed=distributed)
        train_op = optimizer.minimize(loss, global_step=step)
        broadcast = npu_session.broadcast_variables_op([w])
        with tf.compat.v1.Session(graph=graph, config=npu_session.session_config(options, distributed)) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            if distributed:
                sess.run(broadcast)
            looped = npu_session.set_iterations_per_loop(sess, train_op, options)
            for _ in range(2):
                sess.run(looped)
            assert sess.run(step) >= 2
            assert math.isfinite(sess.run(loss))


def test_the_project_refuses_what_the_adapter_cannot_do():
    with pytest.raises(Exception, match="cannot be on together"):
        NpuOptions(data_dump_flag=True, over_dump=True)
    with pytest.raises(Exception, match=">= 1"):
        NpuOptions(loss_scale="0.5")


def _wrapper(model, name, *flags, **env):
    env = dict(_bridge_env(), **dict(dict(RANK_SIZE=1), **env))
    return run(["bash", os.path.join(REPO, model, "test", name)] + list(flags), timeout=1200, **env)


@pytest.fixture(scope="module")
def am3_data(tmp_path_factory):
    from conftest import make_am3_data as make_data
    root = tmp_path_factory.mktemp("am3")
    make_data(str(root / "mini-imagenet"), per_class=30, classes=(6, 5, 5))
    return str(root)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Images only: conftest's image_data adds a text file and a truncated JPEG, a skip warning and an
    undecodable image in every device run, which is not what these runs check."""
    return make_image_data(tmp_path_factory.mktemp("mnv3"))


def _assert_npu_run(proc, summary):
    assert "device: Ascend NPU (npu_bridge)" in proc.stdout, proc.stdout[-3000:]
    assert summary in proc.stdout, proc.stdout[-3000:]


def test_am3_wrappers(am3_data, tmp_path, clean_env):
    out = tmp_path / "out"
    _assert_npu_run(_wrapper("am3", "train_performance_1p.sh", "--data_path=" + am3_data, "--train_steps=4",
                             "--num_filters=4", IPL, OUTPUT_ROOT=out), "Final Performance images/sec")
    _assert_npu_run(_wrapper("am3", "train_full_1p.sh", "--data_path=" + am3_data, "--train_steps=8",
                             "--num_cases_test=50", "--num_filters=4", IPL, OUTPUT_ROOT=out), "Final Train Accuracy")


def test_mtnet_wrappers(tmp_path, clean_env):
    out = tmp_path / "out"
    _assert_npu_run(_wrapper("mtnet", "train_performance_1p.sh", "--train_steps=40", IPL, "--loss_scale=dynamic",
                             OUTPUT_ROOT=out), "Final Performance tasks/sec")
    _assert_npu_run(_wrapper("mtnet", "train_full_1p.sh", "--train_steps=40", IPL, OUTPUT_ROOT=out),
                    "Final Train Accuracy")


def test_mobilenetv3_wrappers(image_folder, tmp_path, clean_env):
    out = tmp_path / "out"
    small = ["--data_path=" + image_folder, "--image_size=32", "--batch=4"]
    _assert_npu_run(_wrapper("mobilenetv3", "train_performance_1p.sh", "--max_step=16", IPL, *small,
                             OUTPUT_ROOT=out), "Final Performance images/sec")
    _assert_npu_run(_wrapper("mobilenetv3", "train_full_1p.sh", "--epochs=2", "--loss_scale=dynamic", *small,
                             OUTPUT_ROOT=out), "Final Train Accuracy")


def test_swa_wrappers(tmp_path, clean_env):
    small = ["--num_samples=1000", "--batch_size=256", "--train_epochs=4", "--swa_start=2", "--swa_freq=1"]
    for name in ("train_performance_1p.sh", "train_full_1p.sh"):
        _assert_npu_run(_wrapper("swa", name, *small, OUTPUT_ROOT=tmp_path / "out"), "Final Performance")


def _two_rank_table(tmp_path):
    table = os.environ.get("RANK_TABLE_FILE")
    if table:
        devices = json.load(open(table))
        count = sum(len(s["device"]) for s in devices.get("server_list", []))
        if count != 2:
            pytest.skip("RANK_TABLE_FILE lists %d devices; the two-rank launch needs a table of 2" % count)
        return table
    return rank_table(tmp_path, [0, 1])


@pytest.mark.parametrize("model, flags", [
    ("mtnet", ["--train_steps=12"]),
    ("mobilenetv3", ["--image_size=32", "--batch=4", "--epochs=3"]),
])
def test_data_parallel_launch_with_two_ranks(model, flags, image_folder, tmp_path, clean_env):
    if model == "mobilenetv3":
        flags = flags + ["--data_path=" + image_folder]
    out = tmp_path / "out"
    proc = _wrapper(model, "train_full_8p.sh", *flags, OUTPUT_ROOT=out, RANK_SIZE=2,
                    RANK_TABLE_FILE=_two_rank_table(tmp_path))
    assert "launch: all 2 workers finished" in proc.stdout, proc.stdout[-3000:]
    for rank in (0, 1):
        log = (out / str(rank) / ("train_%d.log" % rank)).read_text()
        assert "cluster: rank %d of 2 (HCCL on Ascend)" % rank in log and "device: Ascend NPU" in log


# ---- issue 23: what the adapter leaves on the host, against what common.npu_check predicted -------------------
HOST_CHECKS = {
    "am3": ["train_performance_1p.sh", "--train_steps=4", "--num_filters=4", IPL],
    "mtnet": ["train_performance_1p.sh", "--train_steps=40", IPL],
    "mobilenetv3": ["train_performance_1p.sh", "--max_step=16", "--image_size=32", "--batch=4", IPL],
    "swa": ["train_performance_1p.sh", "--num_samples=1000", "--batch_size=256", "--train_epochs=4",
            "--swa_start=2", "--swa_freq=1"],
}


def _predicted_host_ops(command, tmp_path):
    """The op types common.npu_check (with CANN's npu_supported_ops.json) says stay on the host."""
    proc = run([sys.executable, "-m", "common.npu_check", "--"] + command, check=False, timeout=1800,
               OUTPUT_ROOT=tmp_path / "check")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "ops left on the host: not checked" not in proc.stdout, "no npu_supported_ops.json: set ASCEND_OPP_PATH"
    marker = "stays on the host (not in npu_supported_ops.json): "
    return {op.strip() for line in proc.stdout.splitlines() if marker in line
            for op in line.split(marker, 1)[1].split(",")}


def _reports(*roots):
    """The adapter's check_result.tf.json files (tf_adapter/util/generate_report.cc: written in the cwd)."""
    return [os.path.join(d, f) for root in roots for d, _, files in os.walk(str(root)) for f in files
            if f == "check_result.tf.json"]


@pytest.mark.parametrize("model", sorted(HOST_CHECKS))
def test_ops_left_on_the_host_were_predicted(model, am3_data, image_folder, tmp_path, clean_env):
    """A device run with PRINT_MODEL=1 and DUMP_GE_GRAPH=2: every op of ours the adapter reports unsupported
    (check_result.tf.json, is_support false) must be one that common.npu_check named beforehand."""
    if not os.environ.get("ASCEND_OPP_PATH"):
        pytest.skip("needs CANN's ASCEND_OPP_PATH (its npu_supported_ops.json) and the real adapter")
    name, flags = HOST_CHECKS[model][0], HOST_CHECKS[model][1:]
    data = {"am3": ["--data_path=" + am3_data], "mobilenetv3": ["--data_path=" + image_folder]}.get(model, [])
    command = ["bash", os.path.join(REPO, model, "test", name)] + data + flags
    predicted = _predicted_host_ops(command, tmp_path)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = dict(_bridge_env(), RANK_SIZE=1, PRINT_MODEL=1, DUMP_GE_GRAPH=2, OUTPUT_ROOT=tmp_path / "out")
    _assert_npu_run(run(command, cwd=cwd, timeout=1200, **env), "Final Performance")
    unexpected = {}
    for path in _reports(cwd, tmp_path / "out"):
        with open(path) as f:
            for op in json.load(f).get("op", []):
                if not op.get("is_support", True) and op.get("type") not in predicted:
                    unexpected[op.get("name")] = op.get("type")
    assert not unexpected, "left on the host but not predicted by common.npu_check: %s" % unexpected
