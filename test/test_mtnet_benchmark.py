"""mtnet/benchmark.py (issue 27): the parser both sides' step times go through, and, with a scratch interpreter
that has JAX in $MTNET_JAX_PYTHON (JAX is never a project dependency), that mtnet/bench/jax_maml.py computes
our meta-step and that the driver prints a table of positive times."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from common.step_timer import StepTimer
from common.tf_compat import tf
from conftest import REPO, run_python, script_env
from mtnet import benchmark
from mtnet import model as mtnet_model
from mtnet.model import MetaLearner, ModelSpec

tf1 = tf.compat.v1
JAX_PYTHON = os.environ.get(benchmark.JAX_ENV, "")
needs_jax = pytest.mark.skipif(not JAX_PYTHON, reason="set $%s to a scratch interpreter with JAX"
                               % benchmark.JAX_ENV)


def test_step_ms_reads_the_step_timers_summary_line():
    lines = []
    timer = StepTimer(4, warmup_steps=2, unit="tasks", log_every=0, printer=lines.append)
    for seconds in (9.0, 9.0, 0.002, 0.004):        # the two warm-up calls are left out
        timer.record(seconds, steps=1)
    timer.summary()
    assert benchmark.step_ms("Iteration 3: 1, 2\n" + lines[-1] + "\n") == (pytest.approx(3.0), 2)
    with pytest.raises(ValueError, match="no step_time_summary"):
        benchmark.step_ms("final: preloss 1 postloss 2\n")
    empty = []
    StepTimer(4, warmup_steps=5, printer=empty.append).summary()
    with pytest.raises(ValueError, match="no timed steps"):
        benchmark.step_ms(empty[-1])


def test_cpu_description_names_the_model_and_its_simd_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 avx512f amx_tile\n\n"
                       "processor\t: 1\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 avx512f amx_tile\n")
    assert benchmark.cpu_description(str(cpuinfo)) == "Some CPU, 2 logical CPUs; SIMD flags: avx2 avx512f amx_tile"
    assert benchmark.cpu_description(str(tmp_path / "none")).startswith("unknown CPU")


@pytest.mark.parametrize("flags,message", [
    (["--iterations=150"], "--iterations=150 must be a positive multiple of 100"),
    (["--xla=maybe"], "--xla off,on,env"),
    (["--rounds=0"], "--rounds must be >= 1"),
    (["--jax_python=/no/such/python", "--tf_python=" + sys.executable],   # a clone may have no .venv-tf2
     "--jax_python=/no/such/python is not an executable interpreter"),
])
def test_bad_settings_are_one_error_line(flags, message):
    proc = run_python([os.path.join(REPO, "mtnet", "benchmark.py")] + flags, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout, proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("error: ") and message in proc.stdout


def _fake_case(tmp_path, output, status=0, loop=1):
    """A case whose 'training run' prints `output` and exits with `status`."""
    script = tmp_path / "fake_run.py"
    script.write_text("import sys\nsys.stdout.write(%r)\nsys.exit(%d)\n" % (output, status))
    return benchmark.Case("fake", "maml", [sys.executable, str(script)], loop=loop, logdir=True)


def test_a_rejected_flag_or_a_run_that_did_not_loop_is_skipped_with_the_reason(tmp_path):
    rejected = _fake_case(tmp_path, "error: unknown flag --xla (see --help)\n", status=2)
    with pytest.raises(benchmark.Skipped, match="the run stopped with error: unknown flag --xla"):
        benchmark.run_case(rejected, str(tmp_path), timeout=60)
    summary = "step_time_summary: mean_dt=0.000500 steps=%d warmup=%d throughput=8000.00 tasks/s\n"
    one_step_calls = _fake_case(tmp_path, summary % (150, 50), loop=100)
    with pytest.raises(benchmark.Skipped, match="did not loop: N=100"):
        benchmark.run_case(one_step_calls, str(tmp_path), timeout=60)
    looped = _fake_case(tmp_path, "final: preloss 3.5 postloss 2.5 (mean)\n" + summary % (100, 100), loop=100)
    benchmark.run_case(looped, str(tmp_path), timeout=60)
    assert looped.ms == [pytest.approx(0.5)] and looped.postloss == [2.5]
    crashed = _fake_case(tmp_path, "Traceback (most recent call last):\nValueError: boom\n", status=1)
    with pytest.raises(RuntimeError, match="exit status 1: ValueError: boom"):
        benchmark.run_case(crashed, str(tmp_path), timeout=60)


def _tf_meta_gradient(monkeypatch, switches, weights, x, y, noise):
    """mtnet/model.py's meta-loss and meta-gradient for fixed weights and tasks; the mask's uniform noise is
    replaced by `noise` (layer by layer, in the order sample_masks draws it)."""
    draws = iter([noise[i][:, None, :] for i in sorted(noise)])
    monkeypatch.setattr(mtnet_model.tf1, "random_uniform", lambda shape, **kw: tf.constant(next(draws)))
    with tf.Graph().as_default():
        learner = MetaLearner(ModelSpec("fc", 1, 1, dim_hidden=[40, 40], norm="None", update_lr=0.01, **switches))
        out = learner.build(tf.constant(x[:, :10]), tf.constant(y[:, :10]), tf.constant(x[:, 10:]),
                            tf.constant(y[:, 10:]), num_steps=1)
        keys = sorted(learner.weights)
        post, pre = tf.reduce_mean(out["lossesb"][0]), tf.reduce_mean(out["lossa"])
        grads = tf.gradients(post, [learner.weights[k] for k in keys])
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for key in keys:
                learner.weights[key].load(weights.get(key, sess.run(learner.weights[key])), sess)
            values = sess.run([pre, post] + grads)
            start = {k: v for k, v in zip(keys, sess.run([learner.weights[k] for k in keys]))}
    assert next(draws, None) is None, "the model drew a different number of masks"
    return values[0], values[1], dict(zip(keys, values[2:])), start


@needs_jax
@pytest.mark.parametrize("variant", ["maml", "mtnet"])
def test_the_jax_step_computes_our_meta_gradient(variant, tmp_path, monkeypatch):
    """Same weights, tasks and mask noise: the JAX reference gives our model's losses and meta-gradient of every
    weight (T and mask logits too), so the benchmark times the same computation."""
    rng = np.random.RandomState(3)
    x = rng.uniform(-5, 5, (4, 20, 1)).astype(np.float32)
    y = (rng.uniform(0.1, 5, (4, 1, 1)) * np.sin(x - rng.uniform(0, np.pi, (4, 1, 1)))).astype(np.float32)
    dims = [1, 40, 40, 1]
    weights = {}
    for i in range(1, 4):
        weights["w%d" % i] = rng.normal(0, 0.3, (dims[i - 1], dims[i])).astype(np.float32)
        weights["b%d" % i] = rng.normal(0, 0.1, (dims[i],)).astype(np.float32)
        if variant == "mtnet":
            weights["w%d_f" % i] = (np.eye(dims[i]) + rng.normal(0, 0.05, (dims[i], dims[i]))).astype(np.float32)
            weights["w%d_prob" % i] = rng.normal(0, 1.0, (dims[i],)).astype(np.float32)
    noise = {i: rng.uniform(1e-6, 1, (4, dims[i])).astype(np.float32) for i in range(1, 4)} \
        if variant == "mtnet" else {}
    switches = {k: v for k, v in benchmark.VARIANTS[variant][1].items()}
    pre, post, grads, used = _tf_meta_gradient(monkeypatch, switches, weights, x, y, noise)
    assert set(used) == set(weights)
    path_in, path_out = str(tmp_path / "in.npz"), str(tmp_path / "out.npz")
    np.savez(path_in, x=x, y=y, **dict({"p_" + k: v for k, v in weights.items()},
                                       **{"u%d" % i: u for i, u in noise.items()}))
    subprocess.run([JAX_PYTHON, benchmark.JAX_SCRIPT, "--variant=" + variant, "--check", path_in, path_out],
                   check=True, env=script_env(), timeout=300)
    ref = np.load(path_out)
    assert float(ref["preloss"]) == pytest.approx(pre, rel=1e-5)
    assert float(ref["postloss"]) == pytest.approx(post, rel=1e-5)
    assert sorted(k[2:] for k in ref.files if k.startswith("g_")) == sorted(grads)
    for key, grad in grads.items():
        scale = np.abs(grad).max()
        assert scale > 0, key
        np.testing.assert_allclose(ref["g_" + key], grad, rtol=0, atol=1e-4 * scale, err_msg=key)


@pytest.mark.slow
@needs_jax
def test_the_driver_prints_a_table_of_positive_times():
    """A short run of every case: ours at N=1 without XLA and both JAX modes have times; N=100 and --xla
    have times once built, until then a skip line that says why."""
    proc = run_python([os.path.join(REPO, "mtnet", "benchmark.py"), "--rounds=1", "--iterations=200",
                       "--tf_python=" + sys.executable, "--jax_python=" + JAX_PYTHON], timeout=1800)
    out = proc.stdout
    assert "cpu: " in out and "SIMD flags:" in out
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3 and not cells[0].startswith("ms per"):
            rows[cells[0]] = cells[1:]
    version = re.search(r"this project, TF (\S+), N=1 \|", out).group(1)
    must = ["this project, TF %s, N=1" % version, "JAX, jit of one meta-step",
            "JAX, 100 meta-steps per call (lax.scan)"]
    for label in must:
        assert all(float(v) > 0 for v in rows[label]), (label, out)
    for label, values in rows.items():
        for value, variant in zip(values, ("maml", "mtnet")):
            if value == "skipped":
                assert re.search(r"^skipped %s \(%s\): \S" % (re.escape(label), variant), out, re.M), out
            else:
                assert float(value) > 0, (label, out)
    assert len(rows) == 6, out
