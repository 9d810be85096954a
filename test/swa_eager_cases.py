"""SWA in eager `model.fit` (TF 2.x, Keras 3 on TensorFlow, JAX or PyTorch), checked in a process of its own: a
process that imported common.tf_compat runs TF 2.x in graph mode for good, so test_swa.py runs this file with an
interpreter. KERAS_BACKEND picks Keras 3's backend (tensorflow by default); on JAX and PyTorch TensorFlow is not
imported (it need not be installed), and the cases that need it (tf.data, tf.distribute) are left out.

    python test/swa_eager_cases.py FLAVOUR [CASE ...]      FLAVOUR: tfkeras or keras

Prints `ok CASE` or `FAIL CASE: reason` per case, then `keras VERSION backend BACKEND`. Nothing here imports the
project's common package: swa is used as the library a Keras user installs.
"""
import os
import sys
import traceback

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import importlib  # noqa: E402

import numpy as np  # noqa: E402

TF_BACKEND = os.environ["KERAS_BACKEND"] == "tensorflow" or sys.argv[1:2] == ["tfkeras"]
if TF_BACKEND:
    from swa._tf import tf  # noqa: E402
    # Two CPU devices, for the MirroredStrategy case (set before TensorFlow initialises its devices).
    tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                               [tf.config.LogicalDeviceConfiguration()] * 2)

N, BATCH, BATCHES = 200, 64, 4      # the last batch is partial (8 samples)


class Case(object):
    def __init__(self, flavour):
        self.swa = importlib.import_module("swa." + flavour)
        self.keras = tf.keras if flavour == "tfkeras" else self.swa.KERAS
        self.backend = self.keras.backend.backend() if hasattr(self.keras.backend, "backend") else "tensorflow"

    def model(self, batch_norm=False, lr=0.1, seed=0, steps_per_execution=1, legacy=False):
        keras = self.keras
        (getattr(keras.utils, "set_random_seed", None) or tf.keras.utils.set_random_seed)(seed)
        stack = [keras.Input((2,)), keras.layers.Dense(8, activation="relu")]
        if batch_norm:
            stack.append(keras.layers.BatchNormalization())
        stack.append(keras.layers.Dense(3, activation="softmax"))
        model = keras.Sequential(stack)
        sgd = keras.optimizers.legacy.SGD if legacy else keras.optimizers.SGD     # legacy: Keras 2's OptimizerV2
        model.compile(sgd(learning_rate=lr), "sparse_categorical_crossentropy",
                      steps_per_execution=steps_per_execution)
        return model

    def snapshots(self, seen):
        """A callback keeping the weights at the end of every epoch (1-indexed) in `seen`."""
        probe = self.keras.callbacks.Callback()
        probe.on_epoch_end = lambda epoch, logs=None: seen.__setitem__(epoch + 1, probe.model.get_weights())
        return probe

    def set_rates(self, rates):
        """A callback setting the optimizer's rate before every batch from `rates` (one per batch, in order):
        the reference a run with SWA's in-step rates must reproduce."""
        probe, epochs = self.keras.callbacks.Callback(), [0]
        probe.on_epoch_begin = lambda epoch, logs=None: epochs.__setitem__(0, epoch)

        def set_rate(batch, logs=None):
            if batch < BATCHES:     # with data of unknown length, fit asks once more at the end of an epoch
                probe.model.optimizer.learning_rate.assign(rates[epochs[0] * BATCHES + batch])

        probe.on_train_batch_begin = set_rate
        return probe


def value(array):
    """A variable's or a tensor's value as numpy, on every backend."""
    ops = getattr(sys.modules.get("keras"), "ops", None)
    return np.asarray(ops.convert_to_numpy(array) if ops is not None else array)


def optimizer_variables(model):
    variables = model.optimizer.variables
    return variables() if callable(variables) else variables      # a method in Keras 2's legacy optimizer


def still_eager():
    """After fit the program is as it was: TensorFlow still eager (nothing to check on JAX and PyTorch)."""
    assert not TF_BACKEND or tf.executing_eagerly(), "fit left the program in graph mode"


def data(n=N, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, 2).astype("float32") * 2.0
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 1).astype("int64")
    return x, y


def inputs(kind):
    """fit's x/y arguments: numpy arrays, a tf.data dataset, or one whose length Keras cannot know."""
    x, y = data()
    if kind == "numpy":
        return dict(x=x, y=y, batch_size=BATCH, shuffle=False)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    if kind == "unknown_length":
        dataset = dataset.filter(lambda a, b: True)
    return dict(x=dataset)


def cyclic_rates(epochs, start, init_lr, swa_lr, swa_lr2, freq):
    """The cyclic schedule written out independently of swa.core: per (epoch, batch), 0-indexed."""
    rates = []
    for epoch in range(epochs):
        for batch in range(BATCHES):
            if epoch < start:
                t = epoch / float(start)
                rates.append(init_lr if t <= 0.5 else (
                    init_lr - (init_lr - swa_lr) * (t - 0.5) / 0.4 if t <= 0.9 else swa_lr))
            else:
                t = (((epoch - start) % freq) * BATCHES + batch + 1) / float(freq * BATCHES)
                rates.append(swa_lr2 - (swa_lr2 - swa_lr) * t)
    return rates


def close(got, want, what, rtol=1e-5, atol=1e-6):
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg="%s, array %d" % (what, i))


def check_average(case, schedule="cyclic", freq=3, averaged=(4, 7), kind="numpy", steps_per_execution=1,
                  legacy=False):
    """The averaged weights are the mean of the cycle-end weights; the per-batch cyclic rates are those each
    step used: the run's trajectory equals a reference run that sets every batch's rate itself."""
    model = case.model(steps_per_execution=steps_per_execution, legacy=legacy)
    initial = model.get_weights()
    seen, ref = {}, {}
    swa = case.swa.SWA(start_epoch=2, lr_schedule=schedule, swa_lr=0.01, swa_lr2=0.05, swa_freq=freq)
    history = model.fit(epochs=8, callbacks=[case.snapshots(seen), swa], verbose=0, **inputs(kind))
    still_eager()
    expected = [np.mean([seen[e][i] for e in averaged], axis=0) for i in range(len(initial))]
    close(model.get_weights(), expected, "average of epochs %s" % (averaged,))
    assert not np.allclose(model.get_weights()[0], seen[8][0]), "the last iterate, not the average"
    assert swa.n_averaged == len(averaged), swa.n_averaged
    if schedule != "cyclic":
        return
    rates = cyclic_rates(8, 1, 0.1, 0.01, 0.05, freq)
    np.testing.assert_allclose(history.history["lr"], rates, rtol=1e-6, err_msg="History lr")
    reference = case.model(legacy=legacy)       # steps_per_execution 1: a rate set before each batch reaches its step
    reference.set_weights(initial)
    reference.fit(epochs=8, callbacks=[case.set_rates(rates), case.snapshots(ref)], verbose=0, **inputs(kind))
    for epoch in range(1, 9):
        close(seen[epoch], ref[epoch], "epoch %d weights against the per-batch reference" % epoch)
    # After fit the optimizer is as a plain fit leaves it: its own variables only, its rate a variable again.
    variables = [optimizer_variables(m) for m in (model, reference)]
    assert len(variables[0]) == len(variables[1]), [v.name for v in variables[0]]
    assert abs(float(value(model.optimizer.learning_rate)) - rates[-1]) < 1e-7, value(model.optimizer.learning_rate)


def check_batch_norm(case, kind="numpy", steps_per_execution=1, strategy=None):
    """With BN the last epoch is the pass: averaged weights (gamma/beta too), and moving statistics equal to the
    exact mean and variance of the BN layer's input over the training set (divisor N)."""
    x, _ = data()
    with strategy.scope() if strategy else _nothing():
        model = case.model(batch_norm=True, steps_per_execution=steps_per_execution)
    seen = {}
    swa = case.swa.SWA(start_epoch=3, lr_schedule="cyclic", swa_lr=0.01, swa_lr2=0.05, swa_freq=2)
    history = model.fit(epochs=8, callbacks=[case.snapshots(seen), swa], verbose=0, **inputs(kind))
    still_eager()
    assert len(history.history["loss"]) == 8, history.history      # the pass reports its epoch's loss too
    dense, bn = model.layers[0], model.layers[1]
    averaged = [np.mean([seen[e][i] for e in (4, 6)], axis=0) for i in range(4)]    # cycles 3-4, 5-6
    close(dense.get_weights(), averaged[:2], "dense weights")
    close(bn.get_weights()[:2], averaged[2:], "gamma/beta (the pass applies no update)")
    kernel, bias = dense.get_weights()
    h = np.maximum(x.astype(np.float64) @ kernel + bias, 0.0)
    close([value(bn.moving_mean), value(bn.moving_variance)], [h.mean(axis=0), h.var(axis=0)],
          "BN statistics", rtol=1e-4, atol=1e-5)
    assert swa.n_averaged == 2, swa.n_averaged


def check_mirrored(case):
    """A MirroredStrategy over two CPU devices: each replica sees half of every batch."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    check_batch_norm(case, strategy=strategy)


def check_recompute(case):
    x, y = data()
    model = case.model(batch_norm=True)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    bn = model.layers[1]
    assert case.swa.recompute_bn_statistics(model, x, batch_size=48) == N
    kernel, bias = model.layers[0].get_weights()
    h = np.maximum(x.astype(np.float64) @ kernel + bias, 0.0)
    close([value(bn.moving_mean), value(bn.moving_variance)], [h.mean(axis=0), h.var(axis=0)],
          "BN statistics", rtol=1e-4, atol=1e-5)
    still_eager()


def check_recompute_nested(case):
    """BN over the channels of a 4-d input, inside a model used as a layer of another model."""
    keras, layers = case.keras, case.keras.layers
    inner_in = keras.Input((5, 5, 2))
    conv = layers.Conv2D(3, 3, padding="same")
    bn = layers.BatchNormalization()
    inner = keras.Model(inner_in, bn(conv(inner_in)))
    outer_in = keras.Input((5, 5, 2))
    model = keras.Model(outer_in, layers.Dense(2)(layers.Flatten()(inner(outer_in))))
    x = np.random.RandomState(1).randn(40, 5, 5, 2).astype("float32")
    assert case.swa.recompute_bn_statistics(model, x, batch_size=16) == 40 * 25
    h = value(conv(x)).astype(np.float64).reshape(-1, 3)
    close([value(bn.moving_mean), value(bn.moving_variance)], [h.mean(axis=0), h.var(axis=0)],
          "BN statistics", rtol=1e-4, atol=1e-5)


def check_recompute_float64(case):
    """The BN layer's input is the data itself, far from zero: its statistics are exact to float32's last bit
    (computed in float64 per batch and combined), where float32 batch moments would be off by ~1e-5 relative."""
    keras = case.keras
    x = (1000.0 + np.random.RandomState(2).randn(N, 2)).astype("float32")
    bn = keras.layers.BatchNormalization()
    model = keras.Sequential([keras.Input((2,)), bn, keras.layers.Dense(1)])
    assert case.swa.recompute_bn_statistics(model, x, batch_size=BATCH) == N
    exact = x.astype(np.float64)
    close([value(bn.moving_mean), value(bn.moving_variance)],
          [exact.mean(axis=0).astype("float32"), exact.var(axis=0).astype("float32")], "BN statistics",
          rtol=2e-7, atol=0)


class _nothing(object):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


KERAS2_ONLY = ("average_cyclic_legacy_optimizer",)     # Keras 3 has no OptimizerV2
TF_ONLY = ("average_cyclic_tf_data", "average_cyclic_unknown_length", "batch_norm_tf_data_steps_per_execution",
           "batch_norm_mirrored")                       # tf.data, tf.distribute
NOT_TORCH = ("average_cyclic_steps_per_execution",)     # Keras 3 on PyTorch refuses steps_per_execution > 1
CASES = {
    "average_manual": lambda c: check_average(c, schedule="manual", freq=1, averaged=range(2, 9)),
    "average_cyclic": check_average,
    "average_cyclic_steps_per_execution": lambda c: check_average(c, steps_per_execution=3),
    "average_cyclic_tf_data": lambda c: check_average(c, kind="dataset", steps_per_execution=2),
    "average_cyclic_unknown_length": lambda c: check_average(c, kind="unknown_length"),
    "average_cyclic_legacy_optimizer": lambda c: check_average(c, legacy=True),
    "batch_norm": check_batch_norm,
    "batch_norm_tf_data_steps_per_execution": lambda c: check_batch_norm(c, kind="dataset", steps_per_execution=3),
    "batch_norm_mirrored": check_mirrored,
    "recompute": check_recompute,
    "recompute_nested": check_recompute_nested,
    "recompute_float64": check_recompute_float64,
}


def main(argv):
    flavour, names = argv[0], argv[1:] or sorted(CASES)
    still_eager()
    case = Case(flavour)
    if case.swa.KERAS3:
        names = [n for n in names if n not in KERAS2_ONLY]
    if not TF_BACKEND:
        names = [n for n in names if n not in TF_ONLY and not (case.backend == "torch" and n in NOT_TORCH)]
    assert not TF_BACKEND or tf.executing_eagerly(), "importing swa.%s switched TensorFlow to graph mode" % flavour
    for name in names:
        try:
            CASES[name](case)
            print("ok %s" % name, flush=True)
        except Exception as err:   # every case reports, the others still run
            traceback.print_exc()
            print("FAIL %s: %s" % (name, str(err).replace("\n", " ")[:2000]), flush=True)
    print("keras %s backend %s tensorflow %s" % (getattr(case.keras, "__version__", "?"), case.backend,
                                                 tf.__version__ if TF_BACKEND else "-"))


if __name__ == "__main__":
    main(sys.argv[1:])
