"""common/npu_session.py and common/ascend_flags.py on both routes: fake Ascend and plain TF."""
import argparse
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from common import npu_session
from common.ascend_flags import add_ascend_arguments, define_ascend_flags, npu_options_from
from common.errors import UserError
from common.npu_session import NpuOptions

FLAGS = ["--precision_mode=allow_mix_precision", "--loss_scale=1024", "--iterations_per_loop=10",
         "--data_dump_flag=True", "--data_dump_step=0|5", "--over_dump=true", "--dump_path=/tmp/dumps",
         "--profiling=True", '--profiling_options={"output": "/tmp/prof", "task_trace": "on"}']


def options_from_argv(argv):
    return npu_options_from(add_ascend_arguments(argparse.ArgumentParser()).parse_args(argv))


def npu_params(config):
    (custom,) = config.graph_options.rewrite_options.custom_optimizers
    assert custom.name == "NpuOptimizer"
    return custom.parameter_map


def test_session_config_on_npu_carries_every_flag(fake_npu):
    from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig
    config = npu_session.session_config(options_from_argv(FLAGS))
    params = npu_params(config)
    assert params["use_off_line"].b is True
    assert params["precision_mode"].s == b"allow_mix_precision"
    assert params["iterations_per_loop"].i == 10
    assert params["enable_dump"].b is True and params["dump_mode"].s == b"all"
    assert params["dump_path"].s == b"/tmp/dumps"
    assert params["dump_step"].s == b"0|5"
    assert params["enable_dump_debug"].b is True and params["dump_debug_mode"].s == b"all"
    assert params["profiling_mode"].b is True
    assert json.loads(params["profiling_options"].s.decode()) == {"output": "/tmp/prof", "task_trace": "on"}
    assert config.graph_options.rewrite_options.remapping == RewriterConfig.OFF
    assert config.graph_options.rewrite_options.memory_optimization == RewriterConfig.OFF


def test_session_config_on_npu_without_dump_or_profiling(fake_npu):
    params = npu_params(npu_session.session_config(options_from_argv([])))
    assert params["precision_mode"].s == b"allow_fp32_to_fp16"
    assert params["iterations_per_loop"].i == 1
    for absent in ("enable_dump", "enable_dump_debug", "profiling_mode"):
        assert absent not in params


def test_run_config_on_npu_passes_npu_keywords(fake_npu):
    config = npu_session.run_config(options_from_argv(FLAGS), "/tmp/model", save_checkpoints_steps=5000,
                                    keep_checkpoint_max=5, distributed=True)
    assert type(config).__name__ == "NPURunConfig"
    (call,) = [c for c in fake_npu if c["name"] == "NPURunConfig"]
    kw = call["kwargs"]
    assert kw["precision_mode"] == "allow_mix_precision"
    assert kw["iterations_per_loop"] == 10
    assert kw["save_checkpoints_steps"] == 5000 and kw["keep_checkpoint_max"] == 5
    assert kw["model_dir"] == "/tmp/model" and kw["hcom_parallel"] is True
    assert kw["dump_config"] == "DumpConfig" and kw["profiling_config"] == "ProfilingConfig"
    (dump,) = [c["kwargs"] for c in fake_npu if c["name"] == "DumpConfig"]
    assert dump == dict(enable_dump=True, dump_path="/tmp/dumps", dump_step="0|5", dump_mode="all",
                        enable_dump_debug=True, dump_debug_mode="all")
    assert npu_session.estimator_class().__name__ == "NPUEstimator"


def test_optimizer_wrapping_on_npu(fake_npu):
    opt = npu_session.wrap_optimizer(tf.compat.v1.train.GradientDescentOptimizer(0.1),
                                     options_from_argv(["--loss_scale=dynamic"]), distributed=True)
    names = [c["name"] for c in fake_npu]
    assert names.index("NPUDistributedOptimizer") < names.index("NPULossScaleOptimizer")
    (manager,) = [c["kwargs"] for c in fake_npu if c["name"] == "ExponentialUpdateLossScaleManager"]
    assert manager["init_loss_scale"] == 2 ** 32
    assert [c["kwargs"]["is_distributed"] for c in fake_npu if c["name"] == "NPULossScaleOptimizer"] == [True]
    assert type(opt).__name__ == "NPULossScaleOptimizer"


def test_iterations_per_loop_on_npu_and_off(fake_npu):
    options = options_from_argv(["--iterations_per_loop=4"])
    op = tf.no_op()
    assert npu_session.set_iterations_per_loop(None, op, options) is op
    assert [c["kwargs"] for c in fake_npu if c["name"] == "set_iteration_per_loop"] == [{"iterations_per_loop": 4}]
    assert npu_session.steps_per_run(options) == 4
    assert "Ascend NPU" in npu_session.describe(options)


def test_fallback_env_overrides_installed_npu_bridge(fake_npu, monkeypatch):
    monkeypatch.setenv(npu_session.FALLBACK_ENV, "1")
    assert not npu_session.on_npu()


def test_fallback_builds_plain_configs(no_npu):
    options = options_from_argv(FLAGS)
    config = npu_session.session_config(options)
    assert not config.graph_options.rewrite_options.custom_optimizers
    assert config.intra_op_parallelism_threads >= 1
    run_config = npu_session.run_config(options, "/tmp/model", save_checkpoints_steps=7, keep_checkpoint_max=3)
    assert type(run_config) is tf.estimator.RunConfig
    assert run_config.save_checkpoints_steps == 7 and run_config.keep_checkpoint_max == 3
    assert npu_session.estimator_class() is tf.estimator.Estimator
    assert npu_session.steps_per_run(options) == 1
    line = npu_session.describe(options)
    assert "fallback" in line and "fp32" in line and "fixed 1024" in line
    assert "Ascend NPU" not in line and "ignored off Ascend: data dump, overflow dump, profiling" in line


@pytest.mark.parametrize("onednn, preset, expected", [(True, None, "0"), (True, "30", "30"), (False, None, None)])
def test_onednn_build_stops_openmp_spinning_unless_set(no_npu, monkeypatch, onednn, preset, expected):
    monkeypatch.setattr(npu_session, "onednn_build", lambda: onednn)
    monkeypatch.delenv("KMP_BLOCKTIME", raising=False)
    if preset is not None:
        monkeypatch.setenv("KMP_BLOCKTIME", preset)
    npu_session.session_config(options_from_argv(FLAGS))
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
        assert isinstance(opt, tf.contrib.mixed_precision.LossScaleOptimizer)
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
    (dict(loss_scale="0"), "positive"),
    (dict(loss_scale="-4"), "positive"),
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
        DEFINE_string = staticmethod(lambda n, d, h: absl_flags.DEFINE_string(n, d, h, flag_values=flag_values))
        DEFINE_integer = staticmethod(lambda n, d, h: absl_flags.DEFINE_integer(n, d, h, flag_values=flag_values))
        DEFINE_boolean = staticmethod(lambda n, d, h: absl_flags.DEFINE_boolean(n, d, h, flag_values=flag_values))

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
