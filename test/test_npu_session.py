"""common/npu_session.py and common/ascend_flags.py on both routes: fake Ascend and plain TF."""
import argparse
import json
import os
import sys

import numpy as np
import pytest

from common import fallback, npu_session, tf_compat
from common.ascend_flags import add_ascend_arguments, define_ascend_flags, npu_options_from
from common.errors import UserError
from common.loss_scale import LossScaleOptimizer
from common.npu_session import NpuOptions
from common.tf_compat import tf


def ascend_flags(tmp_path, dump="data"):
    """Every Ascend flag set; dump='data' or 'overflow' (CANN runs one kind of dump at a time)."""
    return ["--precision_mode=allow_mix_precision", "--loss_scale=1024", "--iterations_per_loop=10",
            "--data_dump_flag=%s" % (dump == "data"), "--data_dump_step=0|5", "--over_dump=%s" % (dump == "overflow"),
            "--dump_path=%s" % (tmp_path / "dumps"), "--profiling=True",
            '--profiling_options={"output": "%s", "task_trace": "on"}' % (tmp_path / "prof")]


def options_from_argv(argv):
    return npu_options_from(add_ascend_arguments(argparse.ArgumentParser()).parse_args(argv))


def npu_params(config):
    (custom,) = config.graph_options.rewrite_options.custom_optimizers
    assert custom.name == "NpuOptimizer"
    return custom.parameter_map


def run_one_op(config):
    """A session of this config runs an op: the (fake) adapter's session checks pass."""
    with tf.Graph().as_default() as graph:
        value = tf.constant(1.0) + 1.0
        with tf.compat.v1.Session(graph=graph, config=config) as sess:
            return sess.run(value)


def test_session_config_on_npu_carries_every_flag(fake_npu, tmp_path):
    config = npu_session.session_config(options_from_argv(ascend_flags(tmp_path)))
    params = npu_params(config)
    assert params["use_off_line"].b is True
    assert params["precision_mode"].s == b"allow_mix_precision"
    assert params["iterations_per_loop"].i == 10
    assert params["enable_dump"].b is True and params["dump_mode"].s == b"all"
    assert params["dump_path"].s == str(tmp_path / "dumps").encode()
    assert params["dump_step"].s == b"0|5"
    assert "enable_dump_debug" not in params
    assert params["profiling_mode"].b is True
    assert json.loads(params["profiling_options"].s.decode()) == {"output": str(tmp_path / "prof"),
                                                                  "task_trace": "on"}
    assert params["hcom_parallel"].b is False
    rewrite = config.graph_options.rewrite_options
    assert rewrite.remapping == rewrite.memory_optimization == rewrite.OFF
    assert run_one_op(config) == 2.0


def test_dump_and_profiling_directories_are_made_before_the_adapter_checks_them(fake_npu, tmp_path):
    for dump in ("data", "overflow"):
        for path in (tmp_path / "dumps", tmp_path / "prof"):
            if path.exists():
                path.rmdir()
        config = npu_session.session_config(options_from_argv(ascend_flags(tmp_path, dump)))
        assert (tmp_path / "dumps").is_dir() and (tmp_path / "prof").is_dir()
        assert run_one_op(config) == 2.0
    params = npu_params(config)
    assert params["enable_dump_debug"].b is True and params["dump_debug_mode"].s == b"all"
    assert "enable_dump" not in params


def test_fake_adapter_rejects_a_missing_dump_directory(fake_npu, tmp_path):
    config = npu_session.session_config(options_from_argv(ascend_flags(tmp_path)))
    (tmp_path / "dumps").rmdir()
    with pytest.raises(tf.errors.InternalError, match="is not directory"):
        run_one_op(config)


def test_data_dump_and_overflow_dump_together_are_refused():
    with pytest.raises(UserError, match="data_dump_flag and over_dump cannot be on together"):
        options_from_argv(["--data_dump_flag=True", "--over_dump=True"])


def test_distributed_session_overlaps_the_all_reduce(fake_npu):
    assert npu_params(npu_session.session_config(NpuOptions(), distributed=True))["hcom_parallel"].b is True


def test_session_config_on_npu_without_dump_or_profiling(fake_npu):
    params = npu_params(npu_session.session_config(options_from_argv([])))
    assert params["precision_mode"].s == b"allow_fp32_to_fp16"
    assert params["iterations_per_loop"].i == 1
    for absent in ("enable_dump", "enable_dump_debug", "profiling_mode"):
        assert absent not in params


def test_optimizer_wrapping_on_npu(fake_npu, monkeypatch):
    # A worker started by the launcher or a rank-table job without JOB_ID: the all-reduce must still build.
    monkeypatch.delenv("JOB_ID", raising=False)
    monkeypatch.setenv("RANK_SIZE", "2")
    npu_session.reset_probe()
    with tf.Graph().as_default():
        w = tf.compat.v1.get_variable("w", [3], initializer=tf.ones_initializer())
        opt = npu_session.wrap_optimizer(tf.compat.v1.train.GradientDescentOptimizer(0.1),
                                         options_from_argv(["--loss_scale=dynamic"]), distributed=True)
        opt.minimize(tf.reduce_sum(tf.square(w)))
    assert [c["kwargs"]["reduction"] for c in fake_npu if c["name"] == "hccl_ops.allreduce"] == ["sum"]
    names = [c["name"] for c in fake_npu]
    assert names.index("NPUDistributedOptimizer") < names.index("NPULossScaleOptimizer")
    (manager,) = [c["kwargs"] for c in fake_npu if c["name"] == "ExponentialUpdateLossScaleManager"]
    assert manager["init_loss_scale"] == 2 ** 32
    assert [c["kwargs"]["is_distributed"] for c in fake_npu if c["name"] == "NPULossScaleOptimizer"] == [True]
    assert type(opt).__name__ == "NPULossScaleOptimizer"


def test_iterations_per_loop_on_npu_and_off(fake_npu):
    options = options_from_argv(["--iterations_per_loop=4"])
    with tf.Graph().as_default() as graph:
        step = tf.compat.v1.train.get_or_create_global_step()
        op = tf.compat.v1.assign_add(step, 1).op
        with npu_session.new_session(options, graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            looped = npu_session.set_iterations_per_loop(sess, op, options)
            assert looped.name.startswith("IterationOp")
            sess.run(looped)
    assert [c["kwargs"] for c in fake_npu if c["name"] == "set_iteration_per_loop"] == [{"iterations_per_loop": 4}]
    assert npu_session.steps_per_run(options) == 4
    assert "Ascend NPU" in npu_session.describe(options)


def test_fake_adapter_holds_set_iteration_per_loop_to_its_contract(fake_npu):
    from npu_bridge.estimator.npu import util
    with tf.Graph().as_default() as graph:
        op = tf.no_op()
        with pytest.raises(ValueError, match="need type is 'Operation'"):
            util.set_iteration_per_loop(None, tf.constant(1.0), 2)
        with pytest.raises(ValueError, match="Either session argument should be provided"):
            util.set_iteration_per_loop(None, op, 2)
        with tf.compat.v1.Session(graph=graph) as sess:
            graph.finalize()
            with pytest.raises(RuntimeError, match="finalized"):
                util.set_iteration_per_loop(sess, op, 2)


def test_fake_adapter_aborts_a_looped_session_that_runs_a_one_shot_iterator(fake_npu):
    from npu_bridge.session_rules import AdapterAbort
    for kind, aborts in (("one_shot", True), ("initializable", False)):
        options = options_from_argv(["--iterations_per_loop=2"])
        with tf.Graph().as_default() as graph:
            dataset = tf.data.Dataset.range(10)
            if kind == "one_shot":
                iterator = tf.compat.v1.data.make_one_shot_iterator(dataset)
            else:
                iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
            value = iterator.get_next()
            with npu_session.new_session(options, graph=graph) as sess:
                if kind == "initializable":
                    sess.run(iterator.initializer)
                if aborts:
                    with pytest.raises(AdapterAbort, match="iterator_per_loop only support 1"):
                        sess.run(value)
                else:
                    assert sess.run(value) == 0


def test_fallback_env_overrides_installed_npu_bridge(fake_npu, monkeypatch):
    monkeypatch.setenv(npu_session.FALLBACK_ENV, "1")
    assert not npu_session.on_npu()


def test_fallback_builds_plain_configs(no_npu, tmp_path):
    options = options_from_argv(ascend_flags(tmp_path))
    config = npu_session.session_config(options)
    assert not config.graph_options.rewrite_options.custom_optimizers
    assert config.intra_op_parallelism_threads >= 1
    assert npu_session.steps_per_run(options) == 1
    line = npu_session.describe(options)
    assert "fallback" in line and "compute precision: " in line and "fixed 1024" in line
    assert "Ascend NPU" not in line and "ignored off Ascend: data dump, profiling" in line


@pytest.mark.parametrize("onednn, preset, expected", [(True, None, "0"), (True, "30", "30"), (False, None, None)])
def test_onednn_build_stops_openmp_spinning_unless_set(no_npu, monkeypatch, tmp_path, onednn, preset, expected):
    monkeypatch.setattr(tf_compat, "onednn_build", lambda: onednn)
    monkeypatch.delenv("KMP_BLOCKTIME", raising=False)
    if preset is not None:
        monkeypatch.setenv("KMP_BLOCKTIME", preset)
    npu_session.session_config(options_from_argv(ascend_flags(tmp_path)))
    assert os.environ.get("KMP_BLOCKTIME") == expected


@pytest.mark.parametrize("loss_scale", ["128", "dynamic"])
def test_fallback_loss_scaling_trains_with_finite_loss(no_npu, loss_scale):
    options = options_from_argv(["--loss_scale=" + loss_scale])
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(0)
        rng = np.random.RandomState(0)
        inputs = rng.randn(64, 3).astype(np.float32)
        x = tf.constant(inputs)
        y = tf.constant(inputs @ np.array([[1.0], [-2.0], [0.5]], np.float32))
        pred = tf.compat.v1.layers.dense(x, 1)
        loss = tf.reduce_mean(tf.square(pred - y))
        opt = npu_session.wrap_optimizer(tf.compat.v1.train.GradientDescentOptimizer(0.1), options)
        assert isinstance(opt, LossScaleOptimizer)
        train = opt.minimize(loss)
        with npu_session.new_session(options, graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            first = sess.run(loss)
            for _ in range(30):
                sess.run(train)
            last = sess.run(loss)
    assert np.isfinite(last) and last < 0.5 * first


def test_no_loss_scale_leaves_optimizer_alone(no_npu):
    opt = tf.compat.v1.train.GradientDescentOptimizer(0.1)
    assert npu_session.wrap_optimizer(opt, NpuOptions()) is opt


@pytest.mark.parametrize("kwargs, message", [
    (dict(precision_mode="fp8"), "unknown precision_mode"),
    (dict(loss_scale="0"), ">= 1"),
    (dict(loss_scale="-4"), ">= 1"),
    (dict(loss_scale="0.5"), ">= 1"),   # FixedLossScaleManager: "loss scale must be at least 1."
    (dict(loss_scale="lots"), "loss_scale must be"),
    (dict(iterations_per_loop=0), "iterations_per_loop"),
    (dict(profiling=True, profiling_options="{bad json"), "profiling_options"),
])
def test_bad_values_fail_clearly(kwargs, message):
    with pytest.raises(UserError, match=message):
        NpuOptions(**kwargs)


def test_loss_scale_words():
    assert NpuOptions(loss_scale="False").loss_scale is None
    assert NpuOptions(loss_scale="off").loss_scale is None
    assert NpuOptions(loss_scale="True").loss_scale == "dynamic"
    assert NpuOptions(loss_scale="1024").loss_scale == 1024.0


def test_argparse_rejects_non_integer_iterations(capsys):
    with pytest.raises(SystemExit):
        options_from_argv(["--iterations_per_loop=ten"])
    assert "iterations_per_loop" in capsys.readouterr().err


def test_tf_flags_route_matches_argparse():
    from absl import flags as absl_flags
    flag_values = absl_flags.FlagValues()

    class Definer(object):  # define_ascend_flags on a private FlagValues, as tf.flags would on the global one
        DEFINE_string = staticmethod(lambda n, d, h, **kw: absl_flags.DEFINE_string(n, d, h, flag_values=flag_values))
        DEFINE_integer = staticmethod(lambda n, d, h, **kw: absl_flags.DEFINE_integer(n, d, h, flag_values=flag_values))
        DEFINE_boolean = staticmethod(lambda n, d, h, **kw: absl_flags.DEFINE_boolean(n, d, h, flag_values=flag_values))

    define_ascend_flags(Definer, loss_scale="1024", precision_mode="allow_mix_precision")
    flag_values(["prog", "--iterations_per_loop=3", "--over_dump=true"])
    from_tf = npu_options_from(flag_values)
    from_argparse = options_from_argv(["--loss_scale=1024", "--precision_mode=allow_mix_precision",
                                       "--iterations_per_loop=3", "--over_dump=True"])
    assert vars(from_tf) == vars(from_argparse)


def test_dropout_uses_npu_kernel_on_npu(fake_npu):
    with tf.Graph().as_default():
        npu_session.dropout(tf.ones([4, 4]), keep_prob=0.7)
    assert [c["kwargs"] for c in fake_npu if c["name"] == "npu_ops.dropout"] == [{"keep_prob": 0.7}]


def test_an_ascend_host_whose_npu_bridge_is_missing_is_an_error_not_a_fallback(no_npu, monkeypatch):
    monkeypatch.setenv("ASCEND_OPP_PATH", "/usr/local/Ascend/opp")
    npu_session.reset_probe()
    with pytest.raises(UserError, match="Ascend host .*ASCEND_OPP_PATH.* npu_bridge failed to import.*NPU_FALLBACK=1"):
        npu_session.on_npu()
    monkeypatch.setenv(npu_session.FALLBACK_ENV, "1")
    assert not npu_session.on_npu()


def test_a_broken_npu_bridge_is_an_error_not_a_fallback(no_npu, monkeypatch, tmp_path):
    # As when _tf_adapter.so fails to load: helper.py prints, then `import npu_bridge` fails on a missing name.
    package = tmp_path / "npu_bridge"
    package.mkdir()
    (package / "__init__.py").write_text("from os import npu_bridge_handle\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    npu_session.reset_probe()
    try:
        with pytest.raises(UserError, match="npu_bridge is installed but npu_bridge failed to import "
                                            r"\(ImportError: cannot import name 'npu_bridge_handle'"):
            npu_session.on_npu()
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "npu_bridge"]:
            del sys.modules[name]


@pytest.fixture
def cpu_machine(no_npu, monkeypatch):
    """The fallback on a CPU whose flags and TensorFlow build the test sets."""
    monkeypatch.setattr(fallback, "gpus", lambda: False)

    def machine(flags=(), onednn=True):
        monkeypatch.setattr(fallback, "cpu_flags", lambda: set(flags))
        monkeypatch.setattr(tf_compat, "onednn_build", lambda: onednn)
    return machine


def _rewrites(options):
    return npu_session.session_config(options).graph_options.rewrite_options


def test_mixed_precision_is_fp16_on_a_gpu(no_npu, monkeypatch):
    monkeypatch.setattr(fallback, "gpus", lambda: True)
    options = NpuOptions(precision_mode="allow_mix_precision")
    rewrite = _rewrites(options)
    assert rewrite.auto_mixed_precision == rewrite.ON
    line = npu_session.describe(options)
    assert line.startswith("device: GPU fallback") and "compute precision: fp16 (" in line
    assert "without --loss_scale small fp16 gradients can underflow" in line
    assert "underflow" not in npu_session.describe(NpuOptions(precision_mode="force_fp16", loss_scale="dynamic"))


@pytest.mark.parametrize("mode", ["allow_fp32_to_fp16", "must_keep_origin_dtype"])
def test_other_precision_modes_compute_in_fp32_off_ascend(cpu_machine, mode):
    cpu_machine(["avx512_bf16"])
    rewrite = _rewrites(NpuOptions(precision_mode=mode))
    assert rewrite.auto_mixed_precision != rewrite.ON
    assert "compute precision: fp32 (precision_mode=%s applies on Ascend only)" % mode in \
        npu_session.describe(NpuOptions(precision_mode=mode))


@pytest.mark.skipif(not tf_compat.TF2, reason="TF 1.15 has no oneDNN bf16 rewrite")
@pytest.mark.parametrize("flags, onednn, expected", [
    (["avx512_bf16"], True, "compute precision: bf16 (precision_mode=allow_mix_precision: oneDNN's automatic "
                            "mixed precision, AVX512_BF16)"),
    (["amx_bf16", "avx512_bf16"], True, "compute precision: bf16 (precision_mode=allow_mix_precision: oneDNN's "
                                        "automatic mixed precision, AVX512_BF16 and AMX_BF16)"),
    (["avx2", "avx512f"], True, "compute precision: fp32 (bf16 requested by precision_mode=allow_mix_precision, "
                                "this CPU lacks AVX512_BF16 and AMX: fp32)"),
    (["avx512_bf16"], False, "this TensorFlow runs without oneDNN"),
])
def test_mixed_precision_on_a_cpu_is_bf16_where_cpu_and_build_have_it(cpu_machine, flags, onednn, expected):
    cpu_machine(flags, onednn)
    options = NpuOptions(precision_mode="allow_mix_precision")
    rewrite = _rewrites(options)
    assert (rewrite.auto_mixed_precision_onednn_bfloat16 == rewrite.ON) == ("bf16 (" in expected)
    assert expected in npu_session.describe(options)


@pytest.mark.skipif(tf_compat.TF2, reason="the TF 2.x stack has the rewrite")
def test_tf115_says_it_has_no_bf16_rewrite(cpu_machine):
    cpu_machine(["avx512_bf16"])
    assert "compute precision: fp32 (bf16 requested by precision_mode=force_fp16, but TensorFlow 1.15" in \
        npu_session.describe(NpuOptions(precision_mode="force_fp16"))


def test_the_precision_the_log_names_is_the_one_that_runs(no_npu):
    """On this machine, whatever it is: bf16 ops in the executed graph exactly when the line says bf16."""
    options = NpuOptions(precision_mode="allow_mix_precision")
    with tf.Graph().as_default() as graph:
        x = tf.random.normal([64, 64], seed=1)
        w = tf.compat.v1.get_variable("w", [64, 64])
        y = tf.nn.relu(tf.matmul(tf.nn.relu(tf.matmul(x, w)), w))
        with tf.compat.v1.Session(graph=graph, config=npu_session.session_config(options)) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            metadata = tf.compat.v1.RunMetadata()
            sess.run(y, options=tf.compat.v1.RunOptions(output_partition_graphs=True), run_metadata=metadata)
    executed = "".join(str(g) for g in metadata.partition_graphs)
    said = fallback.fallback_precision(options)[0]
    assert ("DT_BFLOAT16" in executed) == (said == "bf16"), said
    assert ("DT_HALF" in executed) == (said == "fp16"), said


# One training step in a fresh process (TensorFlow reads TF_XLA_FLAGS once per process): the `device:` line and
# the XLA ops among those the session executed. --parse_first: TensorFlow runs a session before the flags.
XLA_STEP = r"""
import sys
from common import npu_session
from common.ascend_flags import add_ascend_arguments, npu_options_from
from common.errors import ArgumentParser, main_guard
from common.tf_compat import tf
tf1 = tf.compat.v1

@main_guard
def main(argv):
    if "--parse_first" in argv:
        argv.remove("--parse_first")
        tf.config.experimental.list_physical_devices("GPU")
        with tf1.Session(graph=tf.Graph()) as sess:
            sess.run(tf.constant(1.0))
    options = npu_options_from(add_ascend_arguments(ArgumentParser()).parse_args(argv))
    with tf.Graph().as_default() as graph:
        x = tf.random.normal([16, 16], seed=1)
        w = tf1.get_variable("w", [16, 16])
        step = tf1.train.AdamOptimizer(0.01).minimize(tf.reduce_mean(tf.square(tf.tanh(tf.matmul(x, w)) - 0.5)))
        with tf1.Session(graph=graph, config=npu_session.session_config(options)) as sess:
            sess.run(tf1.global_variables_initializer())
            metadata = tf1.RunMetadata()
            sess.run(step, options=tf1.RunOptions(output_partition_graphs=True), run_metadata=metadata)
    print("executed XLA ops:", sorted({n.op for g in metadata.partition_graphs for n in g.node if "Xla" in n.op}))

main(sys.argv[1:])
"""


def _xla_step(*flags, **env):
    from conftest import run_python
    env.setdefault("TF_XLA_FLAGS", "")
    proc = run_python(["-c", XLA_STEP] + list(flags), check=False, **env)
    device = [line for line in proc.stdout.splitlines() if line.startswith("device: ")]
    executed = [line for line in proc.stdout.splitlines() if line.startswith("executed XLA ops: ")]
    return proc, device, executed


def test_xla_clusters_and_runs_the_training_step_only_with_the_flag():
    proc, device, executed = _xla_step("--xla")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert device[0].endswith("; loss scale: off; XLA: on (auto-clustering)")
    assert "_XlaRun" in executed[0] and "_XlaCompile" in executed[0], executed
    proc, device, executed = _xla_step()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert device[0].endswith("; loss scale: off; XLA: off") and executed == ["executed XLA ops: []"]


def test_xla_asked_after_tensorflow_read_its_flags_is_one_error_line_not_a_false_on():
    proc, device, executed = _xla_step("--xla", "--parse_first")
    assert proc.returncode == 2 and not device and not executed, proc.stdout[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("error: --xla: XLA clustered nothing in a test graph")
    # Set before the process starts, the same request works.
    proc, device, executed = _xla_step("--xla", "--parse_first", TF_XLA_FLAGS="--tf_xla_cpu_global_jit")
    assert proc.returncode == 0 and "_XlaRun" in executed[0], proc.stdout[-3000:]


def test_xla_is_refused_on_ascend(fake_npu):
    with pytest.raises(UserError, match=r"^--xla: .*on Ascend the graph engine \(GE\) compiles the graph"):
        npu_session.session_config(NpuOptions(xla=True))
    npu_session.reset_probe()
    assert npu_params(npu_session.session_config(NpuOptions()))["iterations_per_loop"].i == 1


def test_xla_unavailable_in_a_build_is_one_error_line(no_npu, monkeypatch):
    monkeypatch.setenv("TF_XLA_FLAGS", "")   # the check asks for CPU clustering there; undone after the test
    monkeypatch.setattr(tf_compat, "has_xla", lambda: False)
    monkeypatch.setattr(fallback, "_xla_checked", None)
    with pytest.raises(UserError, match="^--xla: this TensorFlow .* is built without XLA's JIT"):
        npu_session.describe(NpuOptions(xla=True))
    monkeypatch.setattr(fallback, "_xla_checked", None)
