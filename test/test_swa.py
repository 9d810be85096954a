"""SWA callback (swa.keras and swa.tfkeras run the same tests), its BN pass, and the seed script end to end.

This process runs TensorFlow in graph mode (common.tf_compat); eager fit (TF 2.x's default) and Keras 3 are tested
by test/swa_eager_cases.py in processes of their own (test_eager_fit)."""
import importlib
import importlib.util
import json
import os
import sys
import threading

import numpy as np
import pytest

from conftest import REPO, run, run_python

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

KERAS3 = int(__import__("keras").__version__.split(".")[0]) >= 3
FLAVOURS = (pytest.param("keras", marks=pytest.mark.skipif(
    KERAS3, reason="keras is Keras 3 here: swa.keras runs eager fit only (test_eager_fit)")),
            "tfkeras")
SCRIPT = os.path.join(REPO, "swa", "train-tf.keras-npu.py")
N, BATCH = 200, 64          # 4 batches per epoch, the last one partial (8 samples)
BATCHES = 4


class Flavour(object):
    """The Keras API under test: its modules and the SWA package built on it."""

    def __init__(self, name):
        from common import tf_compat
        from common.tf_compat import tf
        self.swa = importlib.import_module("swa." + name)
        self.keras = self.swa.KERAS if name == "keras" else tf.keras
        # Keras 2.3 on TF 1.15 is a library of its own; the Keras of TF 2.x is what tf.keras is.
        self.standalone = name == "keras" and not tf_compat.TF2
        self.K = self.keras.backend
        self.K.clear_session()

    def model(self, batch_norm=False, lr=0.1, seed=0):
        from common.tf_compat import tf
        tf.compat.v1.set_random_seed(seed)
        layers = self.keras.layers
        stack = [layers.Dense(8, activation="relu", input_shape=(2,))]
        if batch_norm:
            stack.append(layers.BatchNormalization())
        stack.append(layers.Dense(3, activation="softmax"))
        model = self.keras.models.Sequential(stack)
        model.compile(self.keras.optimizers.SGD(lr), "sparse_categorical_crossentropy")
        return model

    def probe(self, on_epoch_end=None, on_batch_begin=None):
        callback = self.keras.callbacks.Callback()
        if on_epoch_end:
            callback.on_epoch_end = lambda epoch, logs=None: on_epoch_end(callback.model, epoch)
        if on_batch_begin:
            callback.on_batch_begin = lambda batch, logs=None: on_batch_begin(callback.model, batch)
        return callback


@pytest.fixture(params=FLAVOURS)
def flavour(request):
    return Flavour(request.param)


def data(n=N, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, 2).astype("float32") * 2.0
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 1).astype("int64")
    return x, y


# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule,freq,averaged_epochs", [
    ("manual", 1, [2, 3, 4, 5, 6, 7, 8]),       # start_epoch=2, every epoch from the 2nd on
    ("cyclic", 3, [4, 7]),                      # cycles 2-4 and 5-7 (1-indexed); epoch 8 starts a cycle
])
def test_average_is_the_mean_of_the_cycle_end_weights(flavour, schedule, freq, averaged_epochs):
    x, y = data()
    model = flavour.model()
    seen = {}
    probe = flavour.probe(on_epoch_end=lambda m, epoch: seen.__setitem__(epoch + 1, m.get_weights()))
    swa = flavour.swa.SWA(start_epoch=2, lr_schedule=schedule, swa_lr=0.01, swa_freq=freq)
    model.fit(x, y, batch_size=BATCH, epochs=8, callbacks=[probe, swa], verbose=0)
    expected = [np.mean([seen[e][i] for e in averaged_epochs], axis=0) for i in range(len(seen[1]))]
    for got, want, last in zip(model.get_weights(), expected, seen[8]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert not np.allclose(got, last)       # the average, not the last iterate
    assert swa.n_averaged == len(averaged_epochs)


def _expected_rates(schedule, epochs, start, init_lr, swa_lr, swa_lr2, freq):
    """The schedules written out independently of swa.core: per (epoch, batch), 0-indexed."""
    rates = []
    for epoch in range(epochs):
        for batch in range(BATCHES):
            if schedule == "manual":
                rates.append(init_lr)
                continue
            if epoch < start:
                t = epoch / float(start)
                rate = init_lr if t <= 0.5 else (
                    init_lr - (init_lr - swa_lr) * (t - 0.5) / 0.4 if t <= 0.9 else swa_lr)
            elif schedule == "constant":
                rate = swa_lr
            else:
                i = ((epoch - start) % freq) * BATCHES + batch + 1
                t = i / float(freq * BATCHES)
                rate = swa_lr2 - (swa_lr2 - swa_lr) * t
            rates.append(rate)
    return rates


@pytest.mark.parametrize("schedule", ["manual", "constant", "cyclic"])
def test_per_batch_learning_rates_follow_the_schedule(flavour, schedule):
    x, y = data()
    model = flavour.model(lr=0.2)
    rates = []
    probe = flavour.probe(on_batch_begin=lambda m, batch: rates.append(float(flavour.K.get_value(m.optimizer.lr))))
    swa = flavour.swa.SWA(start_epoch=6, lr_schedule=schedule, swa_lr=0.02, swa_lr2=0.08, swa_freq=2)
    history = model.fit(x, y, batch_size=BATCH, epochs=10, callbacks=[swa, probe], verbose=0)
    expected = _expected_rates(schedule, 10, 5, 0.2, 0.02, 0.08, 2)
    np.testing.assert_allclose(rates, expected, rtol=1e-6)
    if schedule == "cyclic":
        # Each cycle (2 epochs x 4 batches, the 4th partial) ends exactly at swa_lr: no jump back up.
        assert rates[5 * BATCHES + 2 * BATCHES - 1] == pytest.approx(0.02)
        np.testing.assert_allclose(history.history["lr"], expected, rtol=1e-6)
    else:
        per_epoch = expected[::BATCHES]
        np.testing.assert_allclose(history.history["lr"], per_epoch, rtol=1e-6)


def test_rate_set_inside_the_step_trains_as_a_session_call_per_batch(flavour, monkeypatch):
    """The cyclic schedule lets each step assign the next batch's rate after its updates; training must be
    the same as with a separate assignment before every batch (so each step used its own batch's rate), and
    fit must give the training function back unchanged."""
    from swa import graph
    x, y = data()
    model = flavour.model(lr=0.2)
    initial = model.get_weights()
    args = dict(start_epoch=3, lr_schedule="cyclic", swa_lr=0.02, swa_lr2=0.15, swa_freq=2)
    runs = []
    for in_step in (True, False):
        if not in_step:
            monkeypatch.setattr(graph._RateFeed, "attach", classmethod(lambda cls, *a, **k: None))
        model.set_weights(initial)
        flavour.K.set_value(model.optimizer.lr, 0.2)
        swa = flavour.swa.SWA(**args)
        np.random.seed(0)
        history = model.fit(x, y, batch_size=BATCH, epochs=7, callbacks=[swa], verbose=0)
        assert (swa._feed_cache is not None) == in_step
        runs.append((model.get_weights(), history.history["lr"]))
        fn = model.train_function
        assert not fn.feed_dict and all("swa_next_rate" not in t.name for t in fn.fetches)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-7)
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_auto_rates(flavour):
    x, y = data()
    model = flavour.model(lr=0.2)
    swa = flavour.swa.SWA(start_epoch=2, lr_schedule="cyclic", swa_freq=2)
    model.fit(x, y, batch_size=BATCH, epochs=4, callbacks=[swa], verbose=0)
    assert swa.swa_lr == pytest.approx(0.02)
    assert swa.swa_lr2 == pytest.approx(0.02 + 0.25 * (0.2 - 0.02))


def _dense_output(flavour, model, x):
    fn = flavour.K.function(model.inputs, [model.layers[0].output])
    return fn([x])[0].astype(np.float64)


def test_batch_norm_statistics_are_those_of_the_training_data_under_the_average(flavour):
    x, y = data()
    model = flavour.model(batch_norm=True)
    seen = {}
    probe = flavour.probe(on_epoch_end=lambda m, epoch: seen.__setitem__(epoch + 1, m.get_weights()))
    swa = flavour.swa.SWA(start_epoch=3, lr_schedule="cyclic", swa_lr=0.01, swa_lr2=0.05, swa_freq=2)
    model.fit(x, y, batch_size=BATCH, epochs=8, callbacks=[probe, swa], verbose=0)
    # Epoch 8 is the BN pass; cycles 3-4, 5-6 are averaged, 7 is an unfinished cycle.
    dense, bn = model.layers[0], model.layers[1]
    for got, want in zip(dense.get_weights(), [np.mean([seen[e][i] for e in (4, 6)], axis=0) for i in (0, 1)]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    h = _dense_output(flavour, model, x)
    np.testing.assert_allclose(flavour.K.get_value(bn.moving_mean), h.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(flavour.K.get_value(bn.moving_variance), h.var(axis=0), rtol=1e-4, atol=1e-5)
    # The pass applied no update: gamma/beta are the averaged ones too.
    gamma_beta = [np.mean([seen[e][i] for e in (4, 6)], axis=0) for i in (2, 3)]
    np.testing.assert_allclose(bn.get_weights()[:2], gamma_beta, rtol=1e-5, atol=1e-6)


def test_recompute_helper_sets_exact_statistics(flavour):
    x, y = data()
    model = flavour.model(batch_norm=True)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    bn = model.layers[1]
    seen = flavour.swa.recompute_bn_statistics(model, x, batch_size=48)
    assert seen == N
    h = _dense_output(flavour, model, x)
    np.testing.assert_allclose(flavour.K.get_value(bn.moving_mean), h.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(flavour.K.get_value(bn.moving_variance), h.var(axis=0), rtol=1e-4, atol=1e-5)
    # A generator of (x, y) batches gives the same result.
    flavour.swa.recompute_bn_statistics(model, ((x[i:i + 30], y[i:i + 30]) for i in range(0, N, 30)))
    np.testing.assert_allclose(flavour.K.get_value(bn.moving_variance), h.var(axis=0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("nested", [False, True])
def test_recompute_helper_handles_conv_inputs_and_nested_models(flavour, nested):
    """BN over the channels of a 4-d input; nested: in a model used as a layer of another model."""
    keras, layers = flavour.keras, flavour.keras.layers
    inner_in = layers.Input((5, 5, 2))
    conv = layers.Conv2D(3, 3, padding="same")
    bn = layers.BatchNormalization()
    features = bn(conv(inner_in))
    if nested:
        outer_in = layers.Input((5, 5, 2))
        inner = keras.models.Model(inner_in, features)
        model = keras.models.Model(outer_in, layers.Dense(2)(layers.Flatten()(inner(outer_in))))
    else:
        model = keras.models.Model(inner_in, layers.Dense(2)(layers.Flatten()(features)))
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x = np.random.RandomState(1).randn(40, 5, 5, 2).astype("float32")
    if nested and flavour.standalone:
        # Standalone Keras runs a nested model's layers without recording where: a clear error, not a guess.
        with pytest.raises(ValueError, match="cannot find the input of batch normalization layer"):
            flavour.swa.recompute_bn_statistics(model, x, batch_size=16)
        return
    assert flavour.swa.recompute_bn_statistics(model, x, batch_size=16) == 40 * 25
    h = flavour.K.function([inner_in], [conv.output])([x])[0].reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(flavour.K.get_value(bn.moving_mean), h.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(flavour.K.get_value(bn.moving_variance), h.var(axis=0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs,message", [
    (dict(start_epoch=3, swa_lr2=0.01), "swa_lr2 cannot be set while swa_lr is 'auto'"),
    (dict(start_epoch=3, lr_schedule="cyclic", swa_lr=0.05, swa_lr2=0.01), "must not exceed swa_lr2"),
    (dict(start_epoch=3, lr_schedule="linear"), "lr_schedule must be one of"),
    (dict(start_epoch=0), "start_epoch must be an integer >= 1"),
    (dict(start_epoch=3, batch_size=0), "batch_size must be an integer >= 1"),
    (dict(start_epoch=3, swa_freq=0), "swa_freq must be an integer >= 1"),
    (dict(start_epoch=3, swa_lr=-1.0), "swa_lr must be 'auto' or a positive number"),
])
def test_bad_arguments_fail_at_construction(flavour, kwargs, message):
    with pytest.raises(ValueError, match=message):
        flavour.swa.SWA(**kwargs)


@pytest.mark.parametrize("case,message", [
    ("lr_above", r"swa_lr \(0.5\) is above the optimizer's learning rate \(0.1\)"),
    ("start_beyond", r"averages first at the end of epoch 6, but fit trains 4 epoch\(s\)"),
    ("bn_start_beyond", r"fit trains 4 epoch\(s\) \(the last of the 5 is the batch-norm pass\)"),
    ("no_lr", "needs an optimizer with a numeric learning-rate variable"),
])
def test_bad_fit_configurations_fail_before_training(flavour, case, message):
    from common.errors import UserError
    from common.tf_compat import tf
    x, y = data()
    model = flavour.model(batch_norm=case == "bn_start_beyond")
    epochs = 4
    swa = flavour.swa.SWA(start_epoch=3, lr_schedule="cyclic", swa_lr=0.01, swa_lr2=0.05, swa_freq=2)
    if case == "lr_above":
        swa = flavour.swa.SWA(start_epoch=2, lr_schedule="constant", swa_lr=0.5)
    elif case == "start_beyond":
        swa = flavour.swa.SWA(start_epoch=5, swa_freq=2)
    elif case == "bn_start_beyond":
        swa, epochs = flavour.swa.SWA(start_epoch=5), 5
    elif case == "no_lr":
        opt = tf.compat.v1.train.GradientDescentOptimizer(0.1)
        if flavour.standalone:
            opt = flavour.keras.optimizers.TFOptimizer(opt)
        model.compile(opt, "sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(UserError, match=message):
        model.fit(x, y, batch_size=BATCH, epochs=epochs, callbacks=[swa], verbose=0)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)        # failed before the first step


def test_resume_keeps_the_running_average(flavour, tmp_path):
    x, y = data()
    swa_args = dict(start_epoch=2, lr_schedule="cyclic", swa_lr=0.01, swa_lr2=0.05, swa_freq=2)

    model = flavour.model()
    initial = model.get_weights()
    swa = flavour.swa.SWA(**swa_args)
    model.fit(x, y, batch_size=BATCH, epochs=8, callbacks=[swa], verbose=0, shuffle=False)
    straight = model.get_weights()

    def stop_after_5(m, epoch):
        if epoch == 4:
            np.savez(str(tmp_path / "model.npz"), *m.get_weights())
            first.save_state(str(tmp_path / "swa.npz"))
            m.stop_training = True

    flavour.K.clear_session()
    model = flavour.model()
    model.set_weights(initial)
    first = flavour.swa.SWA(**swa_args)
    model.fit(x, y, batch_size=BATCH, epochs=8, callbacks=[first, flavour.probe(on_epoch_end=stop_after_5)],
              verbose=0, shuffle=False)
    assert first.n_averaged == 2

    flavour.K.clear_session()                   # a new process, as far as Keras is concerned
    model = flavour.model(lr=0.1)
    with np.load(str(tmp_path / "model.npz")) as saved:
        model.set_weights([saved["arr_%d" % i] for i in range(len(saved.files))])
    second = flavour.swa.SWA(**swa_args)
    second.load_state(str(tmp_path / "swa.npz"))
    model.fit(x, y, batch_size=BATCH, epochs=8, initial_epoch=5, callbacks=[second], verbose=0, shuffle=False)
    assert second.n_averaged == 3               # cycle ends: epochs 3, 5 (before the stop) and 7
    for got, want in zip(model.get_weights(), straight):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not KERAS3, reason="keras is Keras 2 here")
def test_swa_keras_is_the_keras_3_callback_where_keras_3_is_installed():
    import keras
    import swa.keras
    assert swa.keras.KERAS3 and issubclass(swa.keras.SWA, keras.callbacks.Callback)


@pytest.mark.skipif(KERAS3, reason="swa.keras needs Keras 2")
def test_keras_and_tfkeras_share_one_implementation():
    import keras
    from common.tf_compat import tf
    import swa.keras
    import swa.tfkeras
    assert swa.keras.SWA.__init__.__code__ is swa.tfkeras.SWA.__init__.__code__
    assert swa.keras.SWA.on_epoch_end.__wrapped__.__code__ is swa.tfkeras.SWA.on_epoch_end.__wrapped__.__code__
    assert issubclass(swa.keras.SWA, keras.callbacks.Callback)
    assert issubclass(swa.tfkeras.SWA, tf.keras.callbacks.Callback)
    assert sys.modules["keras"].__file__ != os.path.join(REPO, "swa", "keras.py")


# ---------------------------------------------------------------------------------------------------------
# Eager fit and Keras 3, each flavour in a process of its own that never imports common.tf_compat.

EAGER_CASES = ("average_manual", "average_cyclic", "average_cyclic_steps_per_execution", "average_cyclic_tf_data",
               "average_cyclic_unknown_length", "average_cyclic_legacy_optimizer", "batch_norm",
               "batch_norm_tf_data_steps_per_execution", "batch_norm_mirrored", "recompute", "recompute_nested",
               "recompute_float64")
KERAS2_ONLY = ("average_cyclic_legacy_optimizer",)
TF_ONLY = ("average_cyclic_tf_data", "average_cyclic_unknown_length", "batch_norm_tf_data_steps_per_execution",
           "batch_norm_mirrored")
NOT_TORCH = ("average_cyclic_steps_per_execution",)
EAGER_CASES_SCRIPT = os.path.join(REPO, "test", "swa_eager_cases.py")


def _has(python, module, backend="tensorflow"):
    """Whether `python` imports `module` (Keras: on `backend`, which need not be TensorFlow)."""
    return bool(python) and run([python, "-c", "import %s" % module], check=False,
                                KERAS_BACKEND=backend).returncode == 0


def _eager_runs():
    """(id, interpreter, flavour, environment, reason to skip or None) of every eager run this stack offers."""
    from common import tf_compat
    tf1 = None if tf_compat.TF2 else "TensorFlow 1.15 fits in graph mode (the tests above)"
    # On TF 2.16+ tf.keras is Keras 3 unless tf_keras is selected: the tf.keras flavour is tested on tf_keras.
    legacy = {"TF_USE_LEGACY_KERAS": "1"} if importlib.util.find_spec("tf_keras") else {}
    keras3_python = sys.executable if KERAS3 else os.environ.get("SWA_KERAS3_PYTHON")
    no_keras3 = ("no Keras 3 in this environment (SWA_KERAS3_PYTHON=an interpreter with keras>=3 and tensorflow "
                 "runs these)")
    # Keras 3's other backends: an interpreter with Keras 3 and jax (SWA_KERAS3_PYTHON's, if it has jax) or torch
    # (SWA_KERAS3_TORCH_PYTHON, or SWA_KERAS3_PYTHON's if it has torch).
    jax_python = keras3_python if _has(keras3_python, "jax") else None
    torch_python = os.environ.get("SWA_KERAS3_TORCH_PYTHON") or keras3_python
    torch_python = torch_python if _has(torch_python, "torch, keras", "torch") else None
    return [
        ("tfkeras", sys.executable, "tfkeras", legacy, tf1),
        ("keras2", sys.executable, "keras", {}, tf1 or ("keras is Keras 3 here (the keras3 run)" if KERAS3 else None)),
        ("keras3", keras3_python, "keras", {"KERAS_BACKEND": "tensorflow"}, None if keras3_python else no_keras3),
        ("keras3-jax", jax_python, "keras", {"KERAS_BACKEND": "jax"},
         None if jax_python else "jax is not installed beside Keras 3 here (SWA_KERAS3_PYTHON)"),
        ("keras3-torch", torch_python, "keras", {"KERAS_BACKEND": "torch"},
         None if torch_python else "torch is not installed beside Keras 3 here (SWA_KERAS3_TORCH_PYTHON=an "
                                   "interpreter with keras>=3 and torch runs these)"),
    ]


EAGER_RUNS = {run_id: rest for run_id, *rest in _eager_runs()}
_eager_output = {}


@pytest.mark.parametrize("case", EAGER_CASES)
@pytest.mark.parametrize("run_id", sorted(EAGER_RUNS))
def test_eager_fit(run_id, case):
    """On each Keras: averaged weights = mean of the cycle-end weights, each step's cyclic rate the scheduled one
    (same trajectory as a run setting every batch's rate), exact BN statistics over the training set, with
    numpy, tf.data, steps_per_execution and a two-replica MirroredStrategy; the program stays eager."""
    python, flavour, env, reason = EAGER_RUNS[run_id]
    if reason:
        pytest.skip(reason)
    if run_id.startswith("keras3") and case in KERAS2_ONLY:
        pytest.skip("Keras 3 has no legacy OptimizerV2")
    if run_id in ("keras3-jax", "keras3-torch") and case in TF_ONLY:
        pytest.skip("tf.data and tf.distribute are TensorFlow's")
    if run_id == "keras3-torch" and case in NOT_TORCH:
        pytest.skip("Keras 3 on PyTorch refuses steps_per_execution > 1")
    if run_id not in _eager_output:
        _eager_output[run_id] = run([python, EAGER_CASES_SCRIPT, flavour], check=False, timeout=900, **env).stdout
    out = _eager_output[run_id]
    assert "ok %s" % case in out.splitlines(), out[-6000:]


@pytest.mark.parametrize("module", ["swa.tfkeras", "swa.keras"])
def test_importing_the_callback_leaves_tf2_eager(module):
    """Importing the callback once switched TF 2.x to graph mode for the whole program (issue 28)."""
    python, _, env, reason = EAGER_RUNS["tfkeras" if module == "swa.tfkeras" else
                                        ("keras3" if KERAS3 else "keras2")]
    if reason:
        pytest.skip(reason)
    code = ("import %s; from swa._tf import tf; import sys; "
            "print('eager' if tf.executing_eagerly() and tf.compat.v1.executing_eagerly_outside_functions() "
            "else 'graph', 'common.tf_compat' in sys.modules)" % module)
    assert run([python, "-c", code], **env).stdout.split()[-2:] == ["eager", "False"]


def test_the_library_installs_alone(tmp_path):
    """`pip install ./swa` ships the callback's modules only, and they reach the project's common/ only for its
    error class, optionally (swa/setup.py)."""
    import shutil
    import zipfile
    source = tmp_path / "swa"
    source.mkdir()
    for name in os.listdir(os.path.join(REPO, "swa")):
        if name.endswith(".py"):
            shutil.copy(os.path.join(REPO, "swa", name), str(source / name))
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "w"),
         str(source)], timeout=300)
    wheel, = os.listdir(str(tmp_path / "w"))
    modules = {n for n in zipfile.ZipFile(str(tmp_path / "w" / wheel)).namelist() if not n.startswith("swa_")}
    names = ("__init__", "_tf", "core", "eager", "eager_common", "graph", "keras", "portable", "tfkeras")
    library = {"swa/%s.py" % m for m in names}
    assert modules == library
    for path in sorted(library):
        text = open(os.path.join(REPO, path)).read()
        uses = [ln.strip() for ln in text.splitlines() if ln.strip().startswith(("from common", "import common"))]
        assert uses == (["from common.errors import UserError"] if path == "swa/core.py" else []), path


# ---------------------------------------------------------------------------------------------------------
SMALL = ["--num_samples=3000", "--batch_size=512", "--train_epochs=6", "--swa_start=3", "--swa_freq=2",
         "--swa_lr=0.01", "--swa_lr2=0.03"]


def test_seed_script_runs_end_to_end_and_resumes(tmp_path):
    args = [SCRIPT] + SMALL + ["--model_dir=%s" % (tmp_path / "ckpt"), "--population_samples=5000"]
    out = run_python(args, timeout=300).stdout
    assert "data: 2400 training and 600 test points, 5 batches of up to 512 per epoch" in out
    assert "swa epoch 6/6" in out and "sgd epoch 6/6" in out
    assert "batch normalization statistics recomputed over 2400 samples" in out
    lines = out.splitlines()    # SWA's notices of an epoch follow that epoch's line (its epoch end is a loop hook)
    assert lines.index("Epoch 00004: weights averaged (1 model)") > lines.index([ln for ln in lines
                                                                                if ln.startswith("swa epoch 4/6")][0])
    line = [ln for ln in out.splitlines() if ln.startswith("final test accuracy:")][-1]
    accs = dict(kv.split("=") for kv in line.split(":", 1)[1].split())
    # SGD's BN moving averages (momentum 0.99) are far from converged after 30 steps; SWA's are exact.
    assert float(accs["swa"]) > 0.75 and 0.0 <= float(accs["sgd"]) <= 1.0
    assert "step_time_summary: mean_dt=" in out and "samples/s" in out
    gap = float(out.split("under its weights: max abs gap ")[1].split()[0])
    assert gap < 1e-3
    results = json.loads([ln for ln in out.splitlines() if ln.startswith("results: ")][-1][len("results: "):])
    assert results["test_accuracy_swa"] == pytest.approx(float(accs["swa"]), abs=5e-5)
    # The fresh points are other draws of the same blobs: the nearest true centre scores about the same there.
    assert abs(results["population_accuracy_bayes"] - results["test_accuracy_bayes"]) < 0.05
    assert 0.5 < results["population_accuracy_swa"] <= results["population_accuracy_bayes"] + 0.02
    assert "accuracy on 5000 fresh points of the same blobs: swa=" in out
    again = run_python(args, timeout=300).stdout          # everything done: resumes and only evaluates
    assert "nothing to train: swa: all 6 epochs already done" in again   # the wrappers' "no step time" line
    line2 = [ln for ln in again.splitlines() if ln.startswith("final test accuracy:")][-1]
    assert line2 == line
    # A lost checkpoint.json and a truncated newest model.npz: the previous epoch's checkpoint, same result.
    swa_dir = tmp_path / "ckpt" / "swa"
    (swa_dir / "checkpoint.json").unlink()
    damaged = swa_dir / "ckpt-6" / "model.npz"
    damaged.write_bytes(damaged.read_bytes()[:100])
    third = run_python(args, timeout=300).stdout
    assert "warning: checkpoint %s is damaged" % (swa_dir / "ckpt-6") in third
    assert "resumed from %s after epoch 5" % (swa_dir / "ckpt-5") in third and "Traceback" not in third
    assert [ln for ln in third.splitlines() if ln.startswith("final test accuracy:")][-1] == line


def _tf2():
    from common import tf_compat
    return tf_compat.TF2


@pytest.mark.skipif(not _tf2(), reason="--eager needs TensorFlow 2.x")
def test_seed_script_fits_eagerly_on_tf2(tmp_path):
    """--eager=True: the TF 2.x eager route, with the same pairing (both runs identical before SWA starts), exact
    BN statistics, and a resume from its checkpoints."""
    args = [SCRIPT] + SMALL + ["--eager=True", "--model_dir=%s" % (tmp_path / "ckpt")]
    out = run_python(args, timeout=300).stdout
    lines = out.splitlines()
    for epoch in (1, 2):
        sgd = [ln for ln in lines if ln.startswith("sgd epoch %d/6" % epoch)][0]
        assert [ln for ln in lines if ln.startswith("swa epoch %d/6" % epoch)][0] == "swa" + sgd[3:]
    assert "batch normalization statistics recomputed over 2400 samples" in out
    assert float(out.split("under its weights: max abs gap ")[1].split()[0]) < 1e-3
    line = [ln for ln in lines if ln.startswith("final test accuracy:")][-1]
    assert float(line.split("swa=")[1].split()[0]) > 0.75
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(str(tmp_path / "ckpt" / "swa")))
    again = run_python(args, timeout=300).stdout
    assert "nothing to train: swa: all 6 epochs already done" in again
    assert [ln for ln in again.splitlines() if ln.startswith("final test accuracy:")][-1] == line


@pytest.mark.skipif(not _tf2(), reason="--eager needs TensorFlow 2.x")
def test_iterations_per_loop_is_steps_per_execution_in_eager_fit_and_trains_alike():
    """--iterations_per_loop=2 with --eager: Keras runs 2 batches per call (5 per epoch: calls of 2, 2, 1); the
    epoch lines and accuracies are those of one batch per call, and the step timer counts every batch."""
    args = [SCRIPT] + SMALL + ["--baseline=False", "--eager=True"]
    one, looped = (run_python(args + ["--iterations_per_loop=%d" % n], timeout=300).stdout for n in (1, 2))

    def lines(out, prefixes):
        return [ln for ln in out.splitlines() if ln.startswith(prefixes)]
    assert len(lines(one, "swa epoch ")) == 6
    assert lines(looped, ("swa epoch ", "final test accuracy")) == lines(one, ("swa epoch ", "final test accuracy"))
    summary = lines(looped, "step_time_summary:")[0]
    assert int(summary.split(" steps=")[1].split()[0]) + int(summary.split(" warmup=")[1].split()[0]) == 30


@pytest.mark.parametrize("flag,message", [
    ("--eager=True --precision_mode=allow_mix_precision" if _tf2() else "--eager=True", "error: --eager "),
    ("--train_epochs=0", "error: --train_epochs must be a positive integer, got 0"),
    ("--swa_start=9", "error: SWA(start_epoch=9, swa_freq=2) averages first at the end of epoch 10"),
    ("--loss_scale=1024", "error: --loss_scale is not supported by this Keras script"),
    ("--batch_size=5000", "error: --batch_size=5000 is larger than the training set (2400 points"),
    ("--iterations_per_loop=2", "error: --iterations_per_loop must be 1 in graph mode: graph-mode tf.keras runs one "
                                "step per call"),
])
def test_seed_script_bad_input_is_one_line(flag, message):
    proc = run_python([SCRIPT] + SMALL + ["--baseline=False"] + flag.split(), check=False, timeout=300)
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert message in proc.stdout
    assert "Traceback" not in proc.stdout


def test_seed_script_on_the_npu_route(tmp_path):
    record = tmp_path / "npu_calls.jsonl"
    out = run_python([SCRIPT] + SMALL + ["--baseline=False", "--precision_mode=allow_mix_precision"],
                     fake_npu=True, record_file=record, timeout=300).stdout
    assert "device: Ascend NPU (npu_bridge); precision_mode=allow_mix_precision" in out
    assert "final test accuracy: swa=" in out
    # 2400 training points in batches of 512: the fake adapter rejects the 352-point batch's new input shape
    assert "Ascend: the last 352 training points (a partial batch) are left out" in out


@pytest.mark.parametrize("kind", ["perf", "acc"])
def test_wrappers_report_the_ascend_summary(tmp_path, kind):
    name = "train_performance_1p.sh" if kind == "perf" else "train_full_1p.sh"
    proc = run(["bash", os.path.join(REPO, "swa", "test", name)] + SMALL, OUTPUT_ROOT=str(tmp_path), timeout=300)
    out_dir = tmp_path / "0"
    case = (out_dir / ("SWA_ID0252_for_TensorFlow_bs512_1p_%s.log" % kind)).read_text()
    fields = dict(line.split(" = ", 1) for line in case.splitlines())
    log = (out_dir / "train_0.log").read_text()
    mean_dt = float(log.split("step_time_summary: mean_dt=")[1].split()[0])
    assert float(fields["ActualFPS"]) == pytest.approx(512 / mean_dt, rel=0.01)
    assert float(fields["TrainingTime"]) == pytest.approx(mean_dt * 1000, rel=0.01)
    assert "Final Performance samples/sec" in proc.stdout
    losses = (out_dir / ("train_SWA_ID0252_for_TensorFlow_bs512_1p_%s_loss.txt" % kind)).read_text().split()
    assert len(losses) == 6 and fields["ActualLoss"] == losses[-1]
    if kind == "acc":
        final = log.split("final test accuracy: swa=")[1].split()[0]
        assert fields["TrainAccuracy"] == final and float(final) > 0.75
        assert (out_dir / "ckpt" / "swa" / "checkpoint.json").exists()
    else:
        assert fields["TrainAccuracy"] == "None"


# ---------------------------------------------------------------------------------------------------------
# The measuring tools: paired seed comparison and interleaved overhead benchmark.

def test_paired_summary_and_sign_test():
    from swa.compare_seeds import paired_summary, parse_seeds, sign_test
    assert parse_seeds("2-4,7,3") == [2, 3, 4, 7]
    assert sign_test(0, 5) == pytest.approx(2.0 / 32)
    assert sign_test(3, 3) == 1.0
    swa, sgd = [0.80, 0.82, 0.81, 0.83], [0.80, 0.81, 0.82, 0.80]
    s = paired_summary(swa, sgd)
    d = np.array(swa) - np.array(sgd)
    half = 3.182446 * d.std(ddof=1) / 2.0            # t(0.975, 3) * sd / sqrt(4)
    assert s["mean_diff"] == pytest.approx(d.mean())
    assert s["ci95"][0] == pytest.approx(d.mean() - half, rel=1e-5)
    assert s["ci95"][1] == pytest.approx(d.mean() + half, rel=1e-5)
    assert (s["wins"], s["ties"], s["losses"]) == (2, 1, 1)


def test_baton_runs_the_turns_in_order():
    from swa.bench_overhead import Baton, interleaved_turns
    turns = interleaved_turns(("a", "b"), 3)
    assert turns == ["a", "b", "b", "a", "a", "b"]
    baton, seen = Baton(turns), []

    def runner(name):
        for _ in range(3):
            baton.wait(name)
            seen.append(name)
            baton.pass_on()

    threads = [threading.Thread(target=runner, args=(n,)) for n in ("b", "a")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert seen == turns


def test_overhead_benchmark_runs(tmp_path):
    out = run_python([os.path.join(REPO, "swa", "bench_overhead.py"), "--rounds=1", "--train_epochs=7",
                      "--swa_start=3", "--swa_freq=2", "--num_samples=3000", "--batch_size=512"], timeout=300).stdout
    assert "round 1 pre-SWA epochs: 1 epochs" in out
    assert "round 1 SWA phase: 4 epochs" in out
    pooled = [ln for ln in out.splitlines() if ln.startswith("all 1 rounds, SWA phase: median of 4 paired")]
    share = float(pooled[0].split("callback's own time ")[1].split("%")[0])
    assert 0.0 < share < 100.0


@pytest.mark.parametrize("flag,message", [
    ("--swa_lr=0.5", "error: --swa_lr=0.5 is above --learning_rate=0.1"),
    ("--swa_lr=-1", "error: --swa_lr must be a positive number, got -1"),
    ("--swa_lr2=0.001", "error: --swa_lr=0.01 must not exceed --swa_lr2=0.001"),
    ("--swa_start=9", "error: SWA(start_epoch=9, swa_freq=2) averages first at the end of epoch 10"),
])
def test_seed_script_checks_the_swa_flags_before_the_baseline_trains(flag, message):
    proc = run_python([SCRIPT] + SMALL + [flag], check=False, timeout=300)
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert message in proc.stdout and "Traceback" not in proc.stdout
    assert "sgd epoch 1/" not in proc.stdout


def test_nan_advice_fits_swa_and_names_no_flag_it_rejects():
    from common.errors import NonFiniteLossError, check_finite
    with pytest.raises(NonFiniteLossError, match="--loss_scale"):
        check_finite(float("nan"), 3)
    with pytest.raises(NonFiniteLossError, match=r"loss is inf at step 3: training diverged \(try this\)$"):
        check_finite(float("inf"), 3, advice="try this")
    from swa import train as swa_train
    assert "--loss_scale" not in swa_train.NAN_ADVICE and "--swa_lr" in swa_train.NAN_ADVICE
    proc = run_python([SCRIPT] + SMALL + ["--baseline=False", "--learning_rate=1e30", "--swa_lr=1e29",
                                          "--swa_lr2=1e29"], check=False, timeout=300)
    assert proc.returncode == 2 and "error: swa loss is " in proc.stdout, proc.stdout[-3000:]
    assert swa_train.NAN_ADVICE in proc.stdout and "--loss_scale" not in proc.stdout


def test_results_line_is_strict_json_with_null_for_undefined_numbers():
    # Two epochs with BN: the SWA run has no training epoch after the first (graph warm-up) to time.
    out = run_python([SCRIPT, "--num_samples=3000", "--batch_size=512", "--train_epochs=2", "--swa_start=1",
                      "--swa_freq=1", "--swa_lr=0.01", "--swa_lr2=0.03"], timeout=300).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("results: ")][-1][len("results: "):]

    def reject(constant):
        raise ValueError("not JSON: %s" % constant)

    results = json.loads(line, parse_constant=reject)
    assert results["epoch_time_swa"] is None and results["epoch_time_overhead"] is None
    assert 0.0 <= results["test_accuracy_swa"] <= 1.0
