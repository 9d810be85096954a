"""Training loop of the seed script: the blobs classifier trained with SWA, and plain SGD as the baseline.

`train_and_evaluate(config)` is everything the entry script does after parsing flags; it prints one line
per epoch, the final test accuracies with and without SWA, per-epoch times of both runs (the callback's
overhead) and the `step_time_summary:` line the Ascend wrappers read.
"""
import json
import math
import os
import random
import time

import numpy as np

from common import keras_loop, npu_session, precision, tf_compat
from common.errors import require
from common.scalar_events import ScalarEvents
from common.step_timer import StepTimer
from common.tf_compat import tf
from common.train_loop import Hook, TrainLoop
from swa import data, log_lines
from swa.checkpoint import Checkpoint, restore_checkpoint
from swa.core import first_average_epoch
from swa.model import build_model
from swa.options import OPTIONS
from swa.tfkeras import SWA

# This script has no loss scaling (--loss_scale is rejected): its divergence advice names the rates it has.
NAN_ADVICE = "lower --swa_lr/--swa_lr2 or --learning_rate"


class TrainConfig(object):
    """Plain settings of one seed-script run: the options of swa/options.py (their defaults unless given) and the
    NPU options."""

    def __init__(self, npu=None, **values):
        unknown = set(values) - {opt.name for opt in OPTIONS}
        if unknown:
            raise TypeError("unknown TrainConfig field(s): %s" % ", ".join(sorted(unknown)))
        for opt in OPTIONS:
            setattr(self, opt.name, values.get(opt.name, opt.default))
        self.npu = npu or npu_session.NpuOptions()
        self.shuffle = True                     # Keras shuffles the samples each epoch (off: --deterministic)

    def validate(self):
        require(isinstance(self.population_samples, int) and self.population_samples >= 0,
                "--population_samples must be a non-negative integer, got %r" % (self.population_samples,))
        for name in ("train_epochs", "batch_size", "num_samples"):
            value = getattr(self, name)
            require(isinstance(value, int) and value > 0, "--%s must be a positive integer, got %r" % (name, value))
        require(0.0 < self.test_fraction < 1.0, "--test_fraction must be between 0 and 1, got %r" % self.test_fraction)
        require(self.learning_rate > 0, "--learning_rate must be positive, got %r" % self.learning_rate)
        n_train = self.num_samples - int(round(self.num_samples * self.test_fraction))
        require(n_train > 0 and n_train < self.num_samples,
                "--num_samples=%d leaves no training or no test samples with --test_fraction=%g"
                % (self.num_samples, self.test_fraction))
        # Only full batches are timed (samples/s = batch_size / step time): a larger batch leaves no step to time.
        require(self.batch_size <= n_train, "--batch_size=%d is larger than the training set (%d points: %g%% of "
                "--num_samples=%d); lower --batch_size or raise --num_samples"
                % (self.batch_size, n_train, 100.0 * (1.0 - self.test_fraction), self.num_samples))
        self._validate_swa()
        options = self.npu
        require(options.loss_scale is None, "--loss_scale is not supported by this Keras script (it trains in the "
                                            "precision --precision_mode gives, without loss scaling)")
        # N steps per call is Keras's steps_per_execution: TF 2.x's eager fit has it, graph-mode compile does not
        require(options.iterations_per_loop == 1 or self.eager,
                "--iterations_per_loop must be 1 in graph mode: graph-mode tf.keras runs one step per call (with "
                "TensorFlow 2.x, --eager=True runs N steps per call: Keras's steps_per_execution)")
        if self.eager:
            require(tf_compat.TF2, "--eager needs TensorFlow 2.x (this is %s)" % tf.__version__)
            require(tf_compat.EAGER, "--eager: TensorFlow was loaded in graph mode (set TF_COMPAT_EAGER=1 before "
                                     "common.tf_compat is imported; the seed script does)")
            require(not npu_session.on_npu(), "--eager runs on CPU/GPU: Ascend (npu_bridge) takes graph mode")
            require(options.precision_mode == npu_session.NpuOptions().precision_mode,
                    "--eager fits in TensorFlow's float32: --precision_mode applies to graph mode only")
            # the reference dump reads a session's debugger watches: there is no session in eager fit
            require(not options.reference_dump, "--reference_dump dumps a graph-mode step: drop --eager")
            require(not options.xla, "--xla clusters a session's graph: eager fit has none; drop --eager")

    def _validate_swa(self):
        """The SWA callback checks these when its fit starts, after the SGD baseline has trained: check them now."""
        for name in ("swa_lr", "swa_lr2"):
            rate = getattr(self, name)
            require(rate == "auto" or 0 < rate < math.inf, "--%s must be a positive number, got %g" % (name, rate))
        if self.swa_lr != "auto":
            require(self.swa_lr <= self.learning_rate, "--swa_lr=%g is above --learning_rate=%g: SWA lowers the "
                                                       "rate, it must not raise it" % (self.swa_lr, self.learning_rate))
        if self.lr_schedule == "cyclic" and "auto" not in (self.swa_lr, self.swa_lr2):
            require(self.swa_lr <= self.swa_lr2, "--swa_lr=%g must not exceed --swa_lr2=%g: the cyclic rate falls "
                                                 "from swa_lr2 to swa_lr" % (self.swa_lr, self.swa_lr2))
        for name in ("swa_start", "swa_freq"):
            require(isinstance(getattr(self, name), int) and getattr(self, name) >= 1,
                    "--%s must be a whole number >= 1, got %r" % (name, getattr(self, name)))
        first = first_average_epoch(self.swa_start - 1, self.swa_freq) + 1
        trained = self.train_epochs - 1          # the model has batch norm: SWA's last epoch is its BN pass
        require(first <= trained, "SWA(start_epoch=%d, swa_freq=%d) averages first at the end of epoch %d, but the "
                "SWA run trains %d epoch(s) (the last of the %d is the batch-norm pass): lower --swa_start or raise "
                "--train_epochs" % (self.swa_start, self.swa_freq, first, trained, self.train_epochs))


class _EpochReport(Hook):
    """One log line per epoch, NaN/Inf check, epoch wall times (end to next end: every callback's work)."""

    def __init__(self, name, lr_of):
        self.name = name
        self.lr_of = lr_of
        self.epoch_times = []
        self._t0 = None

    def before_train(self, loop):
        self._t0 = time.perf_counter()

    def after_run(self, loop):
        now = time.perf_counter()
        self.epoch_times.append(now - self._t0)
        self._t0 = now
        logs = loop.values
        loss = npu_session.check_loss(logs.get("loss", float("nan")), loop.step, "%s loss" % self.name, NAN_ADVICE)
        print(log_lines.EPOCH.format(run=self.name, epoch=loop.step, epochs=loop.total, loss=loss,
                                     acc=logs.get("acc", float("nan")), lr=self.lr_of()), flush=True)


class _Events(Hook):
    """TensorBoard scalars of one run in `directory` (none without one), at the step = batches trained: loss and
    accuracy per epoch, the learning rate of every batch (SWA's cyclic schedule changes it each batch), SWA's
    phase (0 SGD, 1 averaging, 2 batch-norm pass) and models averaged; final() adds the test accuracy."""

    def __init__(self, directory, batches_per_epoch, model, swa=None):
        self.events = ScalarEvents(directory)
        self.batches = batches_per_epoch
        self.model = model
        self.swa = swa
        self._rates_seen = 0

    def before_train(self, loop):
        self._rates_seen = len(self.swa.lr_history) if self.swa is not None else 0   # a resumed run's history

    def after_run(self, loop):
        """After the epoch's Keras callbacks: reads the rates SWA set and the models it averaged."""
        if not self.events.enabled:
            return
        epoch, logs = loop.last, loop.values
        self._write_rates(epoch * self.batches)
        scalars = {"loss": logs.get("loss"), "accuracy": logs.get("acc")}
        if self.swa is not None:
            bn_pass = epoch == getattr(self.swa, "bn_epoch", None)
            scalars["swa/phase"] = 2 if bn_pass else int(epoch >= self.swa.start)
            scalars["swa/models_averaged"] = self.swa.n_averaged
        self.events.add((epoch + 1) * self.batches, scalars)
        self.events.flush()

    def _write_rates(self, start):
        """The rates SWA used this epoch (one per batch, or one per epoch), else the optimizer's."""
        if self.swa is None:
            rates = [float(tf.keras.backend.get_value(self.model.optimizer.lr))]
        else:
            rates, self._rates_seen = self.swa.lr_history[self._rates_seen:], len(self.swa.lr_history)
        for i, rate in enumerate(rates):
            self.events.add(start + 1 + i * self.batches // max(len(rates), 1), {"learning_rate": rate})

    def final(self, epochs, scalars):
        """Scalars of the trained model at its last step, then close the file."""
        self.events.add(epochs * self.batches, scalars)
        self.events.close()


def _accuracy(model, x, y, batch_size):
    """Share of points whose most probable class is their label. The points are padded to whole batches and
    the padding's predictions dropped: on Ascend every call of a compiled graph must see the same input shape
    (a partial last batch would compile another graph, or fail)."""
    pad = -len(x) % batch_size
    padded = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
    predicted = model.predict(padded, batch_size=batch_size)[:len(x)].argmax(axis=-1)
    return float(np.mean(predicted == np.reshape(y, [-1])))


def _whole_batches(train, batch_size):
    """On Ascend, train on whole batches only (one input shape per compiled graph); elsewhere as given."""
    keep = len(train[0]) // batch_size * batch_size
    if not npu_session.on_npu() or keep == len(train[0]):
        return train
    print("Ascend: the last %d training points (a partial batch) are left out: each compiled graph takes one input "
          "shape" % (len(train[0]) - keep), flush=True)
    return train[0][:keep], train[1][:keep]


def _fit(name, model, config, train, timer, events, swa=None, model_dir=""):
    """Fit one run through the common loop (an epoch is its call); returns (epoch times, weights of the last
    SGD iterate). The epoch line, SWA's epoch end, the events and the checkpoint run in that order as the loop's
    hooks and save policy after each epoch; SWA's other Keras hooks run in fit."""
    lr_var = model.optimizer.lr
    report = _EpochReport(name, lambda: float(tf.keras.backend.get_value(lr_var)))
    hooks, callbacks = [report], []
    if swa is not None:
        hooks.append(keras_loop.EpochEnd(swa))
        # --reference_dump: every op output of one step of the SWA run (the baseline's first steps are the same)
        dump = precision.StepDump.from_options(config.npu)
        if dump.enabled:
            callbacks.append(dump.keras_callback(tf.keras.backend))
    checkpoint = Checkpoint(model, model_dir, swa)
    start, checkpoint.last_iterate = restore_checkpoint(model_dir, model, swa) if model_dir else (0, None)
    loop = TrainLoop(None, start, config.train_epochs, unit="epoch", checkpoint=checkpoint, timer=timer,
                     hooks=hooks + [events], where="the end of %s epoch %%d" % name, summary=False,
                     nothing_to_train="%s: all %d epochs already done in %s" % (name, config.train_epochs, model_dir))
    keras_loop.fit(loop, model, train[0], train[1], callbacks, batch_size=config.batch_size, verbose=0,
                   shuffle=config.shuffle)
    return report.epoch_times, checkpoint.last_iterate


def _bn_statistics_error(model, x):
    """Largest gap between the BN layer's moving mean/variance and the true statistics of its input."""
    bn = model.layers[1]
    if not hasattr(bn, "moving_mean"):
        return 0.0
    if tf.executing_eagerly():
        h = np.asarray(model.layers[0](x), np.float64)
    else:
        h = tf.keras.backend.function(model.inputs, [model.layers[0].output])([x])[0].astype(np.float64)
    mean, var = tf.keras.backend.batch_get_value([bn.moving_mean, bn.moving_variance])
    return float(max(np.abs(mean - h.mean(axis=0)).max(), np.abs(var - h.var(axis=0)).max()))


def _median(values):
    return float(np.median(values)) if len(values) else float("nan")


def _same_batch_order(config):
    """Seed the shuffle before each run, so both runs see the same batch order: graph-mode Keras shuffles with
    np.random; eager fit with a TensorFlow op seeded from the global seed and an op counter that this resets."""
    np.random.seed(config.seed)
    if config.eager:
        tf.compat.v1.set_random_seed(config.seed)


def train_and_evaluate(config):
    """Train the SWA run (and the SGD baseline), print and return the test accuracies and epoch times."""
    config.validate()
    precision.derandomise(config, (("shuffle", False, "Keras's per-epoch shuffling"),), config.npu)
    train, test = _data(config)
    results, sets = _bayes_accuracies(config, test)
    batches = _batch_count(len(train[0]), config.batch_size)
    _fresh_session(config)
    swa_model = _compiled(config)
    initial = swa_model.get_weights()
    if config.baseline:
        results.update(_sgd_run(config, _compiled(config, initial), train, sets, batches))
    swa_results, timer = _swa_run(config, swa_model, train, sets, batches)
    results.update(swa_results)
    if config.baseline:
        results["epoch_time_overhead"] = results["epoch_time_swa"] / results["epoch_time_sgd"] - 1.0
    _print_results(config, results)
    timer.summary()
    print("results: %s" % results_json(results), flush=True)
    return results


def _batch_count(points, batch_size):
    return -(-points // batch_size)


def _data(config):
    """The blobs as (training, test) points, printing their sizes; on Ascend whole training batches only."""
    (x, y) = data.make_blobs(config.num_samples, seed=config.data_seed)
    train, test = data.split(x, y, config.test_fraction)
    print("data: %d training and %d test points, %d batches of up to %d per epoch"
          % (len(train[0]), len(test[0]), _batch_count(len(train[0]), config.batch_size), config.batch_size),
          flush=True)
    return _whole_batches(train, config.batch_size), test


def _bayes_accuracies(config, test):
    """The nearest true centre's accuracies, and the sets every model is evaluated on: the test points and, with
    --population_samples, fresh points of the same blobs. Returns (results, {set name: (x, y)})."""
    centres = data.blob_centers(seed=config.data_seed)
    results = {"test_size": len(test[0]),
               "test_accuracy_bayes": data.nearest_centre_accuracy(test[0], test[1], centres)}
    sets = {"test": test}
    if config.population_samples:
        # Another seed than the data set's, so these points are new draws from the same blobs.
        population = data.sample_blobs(config.population_samples, centres, seed=config.data_seed + 7919)
        results["population_accuracy_bayes"] = data.nearest_centre_accuracy(population[0], population[1], centres)
        sets["population"] = population
    return results, sets


def _fresh_session(config):
    """An empty graph and Keras session, seeded, so a run's initial weights depend on --seed alone."""
    if not config.eager:
        tf.compat.v1.reset_default_graph()
    tf.keras.backend.clear_session()
    tf.compat.v1.set_random_seed(config.seed)
    np.random.seed(config.seed)
    if config.eager:
        random.seed(config.seed)        # eager Keras draws its unseeded initializers' seeds from `random`
    else:
        npu_session.keras_session(config.npu)


def _compiled(config, initial=None):
    """The classifier compiled with plain SGD at --learning_rate, from the weights `initial` if given."""
    model = build_model()
    looped = config.npu.iterations_per_loop
    model.compile(optimizer=tf.keras.optimizers.SGD(config.learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["acc"], **({"steps_per_execution": looped} if looped > 1 else {}))
    if initial is not None:
        model.set_weights(initial)
    return model


def _run_dir(config, name):
    """The run's checkpoint and events folder under --model_dir ("": none)."""
    return os.path.join(config.model_dir, name) if config.model_dir else ""


def _accuracies(model, sets, run, batch_size):
    """`<set>_accuracy_<run>` of the model on each evaluation set."""
    return {"%s_accuracy_%s" % (name, run): _accuracy(model, x, y, batch_size) for name, (x, y) in sets.items()}


def _sgd_run(config, model, train, sets, batches):
    """Train the SGD baseline; returns its accuracies and median epoch time."""
    timer = StepTimer(config.batch_size, unit="samples", log_every=0)
    _same_batch_order(config)
    events = _Events(_run_dir(config, "sgd"), batches, model)
    times, _ = _fit("sgd", model, config, train, timer, model_dir=_run_dir(config, "sgd"), events=events)
    results = _accuracies(model, sets, "sgd", config.batch_size)
    events.final(config.train_epochs, {"test_accuracy": results["test_accuracy_sgd"]})
    results["epoch_time_sgd"] = _median(times[1:])
    return results


def _swa_run(config, model, train, sets, batches):
    """Train the SWA run; returns its results (the averaged model's and its last SGD iterate's accuracies, BN
    statistics gap, median epoch time, the callback's share of the time) and its step timer."""
    swa = SWA(start_epoch=config.swa_start, lr_schedule=config.lr_schedule, swa_lr=config.swa_lr,
              swa_lr2=config.swa_lr2, swa_freq=config.swa_freq, verbose=1)
    timer = StepTimer(config.batch_size, unit="samples", log_every=0)
    t0 = time.perf_counter()
    _same_batch_order(config)
    events = _Events(_run_dir(config, "swa"), batches, model, swa)
    times, last_iterate = _fit("swa", model, config, train, timer, swa=swa, model_dir=_run_dir(config, "swa"),
                               events=events)
    results = {"swa_callback_share": swa.hook_seconds / max(time.perf_counter() - t0, 1e-9)}
    results.update(_accuracies(model, sets, "swa", config.batch_size))
    events.final(config.train_epochs, {"test_accuracy": results["test_accuracy_swa"]})      # the averaged model's
    results["bn_statistics_error"] = _bn_statistics_error(model, train[0])
    # Epoch times of training epochs only: not the first (graph warm-up), not SWA's BN pass.
    results["epoch_time_swa"] = _median(times[1:-1] if getattr(swa, "has_bn", False) else times[1:])
    if last_iterate is not None:
        final = model.get_weights()
        model.set_weights(last_iterate)
        results.update(_accuracies(model, sets, "swa_last_iterate", config.batch_size))
        model.set_weights(final)
    return results, timer


def _print_results(config, results):
    """The final accuracy lines, the BN statistics gap and the epoch times' overhead."""
    print(log_lines.FINAL.format(swa=results["test_accuracy_swa"], sgd=results.get("test_accuracy_sgd"),
                                 swa_run_last_iterate=results.get("test_accuracy_swa_last_iterate")), flush=True)
    if config.population_samples:
        print("accuracy on %d fresh points of the same blobs: swa=%.5f%s%s bayes=%.5f" % (
            config.population_samples, results["population_accuracy_swa"],
            " sgd=%.5f" % results["population_accuracy_sgd"] if "population_accuracy_sgd" in results else "",
            " swa_run_last_iterate=%.5f" % results["population_accuracy_swa_last_iterate"]
            if "population_accuracy_swa_last_iterate" in results else "", results["population_accuracy_bayes"]),
            flush=True)
    print("SWA model's BN statistics vs the training data under its weights: max abs gap %.2e"
          % results["bn_statistics_error"], flush=True)
    if config.baseline:
        print("median epoch time: sgd=%.4fs swa=%.4fs (%+.1f%%)"
              % (results["epoch_time_sgd"], results["epoch_time_swa"], 100.0 * results["epoch_time_overhead"]),
              flush=True)
    print("time in the SWA callback: %.2f%% of the SWA run" % (100.0 * results["swa_callback_share"]), flush=True)


def results_json(results):
    """Strict JSON of the results: an undefined number (NaN, e.g. no epoch left to time) is null, not NaN."""
    def finite_or_none(value):
        return value if not isinstance(value, float) or math.isfinite(value) else None
    return json.dumps({k: finite_or_none(v) for k, v in results.items()}, sort_keys=True, allow_nan=False)
