"""Stochastic weight averaging (Izmailov et al., arXiv 1803.05407) as a Keras callback: one implementation.

`swa.keras.SWA` and `swa.tfkeras.SWA` are `SWACallback` plus their Keras's Callback and a `Flavour` (which
Keras), so every flavour's callback shares every line of behaviour. The learning-rate schedules are plain functions
(testable without a model); what depends on how fit runs lives in three engines, picked when fit starts:
swa/graph.py (session-based graph mode: TF 1.15, and TF 2.x with v2 behaviour off, as the project's scripts run),
swa/eager.py (TF 2.x eager fit, Keras 3 on TensorFlow) and swa/portable.py (Keras 3 on JAX or PyTorch).
This module imports neither TensorFlow nor the project's `common`: swa installs as a library of its own.
"""
import functools
import json
import math
import os
import time
import warnings
import zipfile

import numpy as np

try:    # inside the project, SWA's errors are also its scripts' one-line user errors (common/errors.py)
    from common.errors import UserError
    _ERROR_BASES = (UserError, ValueError)
except ImportError:     # swa installed as a library of its own
    _ERROR_BASES = (ValueError,)

SCHEDULES = ("manual", "constant", "cyclic")


class SWAError(*_ERROR_BASES):
    """Bad SWA arguments or a model/fit configuration SWA cannot work with (raised before training)."""


# ---------------------------------------------------------------------------------------------------------
# Learning-rate schedules. Epochs and batches are 0-indexed here; `start` is the 0-indexed first SWA epoch.

def constant_lr(epoch, start, init_lr, swa_lr):
    """The paper's schedule: init_lr for the first half of the pre-SWA epochs, then a linear decay to swa_lr
    that ends at 90% of them, then swa_lr (also for every SWA epoch)."""
    if epoch >= start:
        return swa_lr
    t = epoch / float(start)
    if t <= 0.5:
        return init_lr
    if t <= 0.9:
        return init_lr + (swa_lr - init_lr) * (t - 0.5) / 0.4
    return swa_lr


def cyclic_lr(epoch, batch, start, freq, steps, init_lr, swa_lr, swa_lr2):
    """Before `start` as constant_lr; then cycles of `freq` epochs (freq * steps batches) in which the rate
    falls linearly per batch from swa_lr2 to swa_lr, reaching swa_lr exactly on the cycle's last batch."""
    if epoch < start:
        return constant_lr(epoch, start, init_lr, swa_lr)
    cycle_len = freq * steps
    i = ((epoch - start) % freq) * steps + min(batch, steps - 1) + 1    # 1 .. cycle_len within the cycle
    t = i / float(cycle_len)
    return (1.0 - t) * swa_lr2 + t * swa_lr


def is_cycle_end(epoch, start, freq):
    """True for the epochs whose end weights are folded into the average: the last epoch of each cycle."""
    return epoch >= start and (epoch - start + 1) % freq == 0


def first_average_epoch(start, freq):
    """0-indexed epoch at whose end the first model is averaged."""
    return start + freq - 1


# ---------------------------------------------------------------------------------------------------------
# Batch normalisation statistics.

def batch_norm_layers(model):
    """The model's batch-normalisation layers (also inside nested models), found by their moving statistics."""
    found = []
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "moving_mean") and hasattr(layer, "moving_variance") and hasattr(layer, "axis"):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found.extend(batch_norm_layers(layer))
    return found


class ExactMoments(object):
    """Exact per-channel mean and variance of every BN layer's input over a pass, for new moving statistics.

    Each batch contributes its count, mean and sum of squared deviations, combined in float64 (Chan et al.'s
    pairwise update), so the result is the mean and variance (divisor N) over all samples of the pass, a
    partial last batch weighted by its size. As in the paper's BN update, the pass runs in training mode:
    a BN layer's input is computed with the layers before it normalising by their batch statistics.
    """

    def __init__(self, layers):
        self.layers = list(layers)
        self.reset()

    def reset(self):
        self.count = [0.0] * len(self.layers)
        self.mean = [0.0] * len(self.layers)
        self.m2 = [0.0] * len(self.layers)

    def add(self, values):
        """Accumulate one batch: per layer its count, mean and sum of squared deviations, in layer order."""
        for i in range(len(self.layers)):
            n_b, mean_b, m2_b = values[3 * i:3 * i + 3]
            n_b = float(n_b)
            if n_b == 0:
                continue
            mean_b = np.asarray(mean_b, np.float64)
            m2_b = np.asarray(m2_b, np.float64)
            n_a = self.count[i]
            n = n_a + n_b
            delta = mean_b - self.mean[i]
            self.mean[i] = self.mean[i] + delta * (n_b / n)
            self.m2[i] = self.m2[i] + m2_b + delta * delta * (n_a * n_b / n)
            self.count[i] = n

    @property
    def samples(self):
        return int(self.count[0]) if self.count else 0

    def statistics(self):
        """[(layer, mean, variance)] in float64."""
        for layer, n in zip(self.layers, self.count):
            if n == 0:
                raise SWAError("no data reached batch normalization layer %r during the statistics pass"
                               % layer.name)
        return [(layer, mean, m2 / n) for layer, n, mean, m2 in zip(self.layers, self.count, self.mean, self.m2)]


def _batches(x, batch_size, steps):
    """Yield lists of input arrays from numpy input(s) or from an iterable of batches."""
    if isinstance(x, np.ndarray) or (isinstance(x, (list, tuple)) and x and isinstance(x[0], np.ndarray)):
        arrays = [x] if isinstance(x, np.ndarray) else list(x)
        total = len(arrays[0])
        if batch_size is None or batch_size < 1:
            raise SWAError("batch_size must be a positive integer, got %r" % (batch_size,))
        for begin in range(0, total, batch_size):
            yield [a[begin:begin + batch_size] for a in arrays]
        return
    if hasattr(x, "__getitem__") and hasattr(x, "__len__"):     # keras.utils.Sequence
        source = (x[i] for i in range(len(x)))
    else:
        source = iter(x)
    for i, item in enumerate(source):
        if steps is not None and i >= steps:
            return
        inputs = item[0] if isinstance(item, tuple) else item
        yield [inputs] if isinstance(inputs, np.ndarray) else list(inputs)


# ---------------------------------------------------------------------------------------------------------
# The Keras API a callback runs on, and the engine that drives its fit.

def _check_rate(name, value):
    if value in ("auto", None):
        return "auto"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0 \
            or math.isinf(value):
        raise SWAError("%s must be 'auto' or a positive number, got %r" % (name, value))
    return float(value)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SWAError("%s must be an integer >= %d, got %r" % (name, minimum, value))
    return int(value)


def _timed(hook):
    """Add the hook's wall time to self.hook_seconds (the callback's own overhead, reported by the seed script)."""
    @functools.wraps(hook)
    def wrapped(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return hook(self, *args, **kwargs)
        finally:
            self.hook_seconds += time.perf_counter() - t0
    return wrapped


class Flavour(object):
    """One Keras API: the `keras` module, its Keras 2 `backend` (None for Keras 3), and the name of the module
    offering the callback on it (swa.<name>)."""

    def __init__(self, keras, backend, name, keras3=False):
        self.keras, self.backend, self.name, self.keras3 = keras, backend, name, keras3

    def engine(self):
        """The engine for how fit runs now: eager (TF 2.x default, Keras 3 on TensorFlow), portable (Keras 3 on
        JAX or PyTorch, no TensorFlow needed) or graph (sessions)."""
        if self.keras3:
            name = self.keras.backend.backend()
            if name in ("jax", "torch"):
                from swa import portable
                return EagerEngine(portable, self)
            if name != "tensorflow":
                raise SWAError("SWA supports Keras 3 with the TensorFlow, JAX or PyTorch backend; this one runs on "
                               "%r" % name)
        from swa._tf import tf
        if self.keras3 and not tf.executing_eagerly():
            raise SWAError("Keras 3 fits eagerly, but this program turned TensorFlow's v2 behaviour off "
                           "(tf.compat.v1.disable_v2_behavior): use tf_keras (TF_USE_LEGACY_KERAS=1) for graph mode")
        if self.keras3 or tf.executing_eagerly():
            from swa import eager
            return EagerEngine(eager, self)
        from swa import graph
        return GraphEngine(graph, self)

    def recompute_bn_statistics(self, model, x, batch_size=32, steps=None):
        """Set every BN layer's moving mean/variance to the exact statistics of its input over `x`.

        x: numpy array (or list of arrays for several inputs), or a generator / keras Sequence yielding inputs
        or (inputs, targets[, weights]) tuples; `steps` limits how many batches are taken from a generator.
        Returns the number of samples seen. Use after setting averaged weights outside of `fit`.
        """
        return self.engine().recompute_bn_statistics(model, x, batch_size, steps)


class EagerEngine(object):
    """No session (swa/eager.py, swa/portable.py): the rates are set from Python and read by each step."""
    eager = True

    def __init__(self, module, flavour):
        self.module, self.flavour = module, flavour

    def read(self, variable):
        return self.module.read(variable)

    def rate_setter(self, variable):
        return variable.assign

    def step_rates(self, model, variable):
        """The cyclic schedule's per-step rates for one fit."""
        return self.module.StepRates(self.flavour.keras, model, variable, self.flavour.keras3)

    def attach_rate_feed(self, fn, variable, rate, cache):
        return None     # the steps take their rates themselves

    def start_bn_pass(self, model, layers):
        return self.module.start_bn_pass(self.flavour.keras, model, layers, self.flavour.keras3)

    def assign(self, stats, model):
        self.module.assign(stats, model)

    def recompute_bn_statistics(self, model, x, batch_size, steps):
        return self.module.recompute_bn_statistics(self.flavour.keras, model, x, self.flavour.keras3,
                                                   batch_size=batch_size, steps=steps)


class GraphEngine(object):
    """Keras 2's session-based fit (swa/graph.py): rates and statistics go through the flavour's backend."""
    eager = False

    def __init__(self, module, flavour):
        self.module, self.flavour = module, flavour
        self.backend = flavour.backend

    def read(self, variable):
        return float(self.backend.get_value(variable))

    def rate_setter(self, variable):
        return self.module._rate_setter(self.backend, variable)

    def step_rates(self, model, variable):
        return None     # the batch hooks set each batch's rate

    def attach_rate_feed(self, fn, variable, rate, cache):
        return self.module._RateFeed.attach(fn, variable, rate, cache)

    def start_bn_pass(self, model, layers):
        return self.module.start_forward_only(model, self.backend, layers, self.flavour.name)

    def assign(self, stats, model):
        stats.assign(self.backend)

    def recompute_bn_statistics(self, model, x, batch_size, steps):
        return self.module.recompute_bn_statistics(model, x, self.backend, batch_size=batch_size, steps=steps)


# ---------------------------------------------------------------------------------------------------------
# The callback.

def _models(n):
    return "%d model%s" % (n, "" if n == 1 else "s")


class SWACallback(object):
    """Stochastic weight averaging callback.

    start_epoch: first SWA epoch, counted from 1 (SWA(start_epoch=75) starts in the 75th epoch).
    lr_schedule: 'manual' (leave the rate alone), 'constant' (decay to swa_lr, then hold) or 'cyclic'
        (per batch, from swa_lr2 down to swa_lr in cycles of swa_freq epochs).
    swa_lr: rate during SWA; 'auto' = 0.1 x the optimizer's initial rate.
    swa_lr2: top of the cyclic rate; 'auto' = swa_lr + 0.25 x (initial rate - swa_lr).
    swa_freq: the weights are averaged at the end of every swa_freq-th epoch from start_epoch on
        (for 'cyclic': the end of each cycle, where the rate has come down to swa_lr).
    batch_size: batch size of fit, used only when Keras does not report the batches per epoch.
    verbose: 0 or 1.
    With batch normalisation the last epoch trains nothing: it sets the averaged weights and passes once
    over the training data to set each BN layer's moving statistics to the exact statistics of its input.

    The behaviour of every Keras flavour: swa.keras.SWA and swa.tfkeras.SWA add their Keras's Callback as a
    second base and their Flavour as `_flavour`.
    """
    _flavour = None

    def __init__(self, start_epoch, lr_schedule="manual", swa_lr="auto", swa_lr2="auto", swa_freq=1,
                 batch_size=None, verbose=0):
        super(SWACallback, self).__init__()
        self.start_epoch = _check_int("start_epoch", start_epoch, 1)
        if lr_schedule not in SCHEDULES:
            raise SWAError("lr_schedule must be one of %s, got %r" % (", ".join(map(repr, SCHEDULES)), lr_schedule))
        self.lr_schedule = lr_schedule
        self.swa_lr = self._swa_lr_arg = _check_rate("swa_lr", swa_lr)       # resolved per fit
        self.swa_lr2 = self._swa_lr2_arg = _check_rate("swa_lr2", swa_lr2)
        self.swa_freq = _check_int("swa_freq", swa_freq, 1)
        self.batch_size = None if batch_size is None else _check_int("batch_size", batch_size, 1)
        self.verbose = verbose
        self._check_rate_pair()
        self.start = self.start_epoch - 1          # 0-indexed first SWA epoch
        self._resumed = False
        self._feed = self._feed_cache = None
        self._feed_tried = False
        self._step_rates = self._epoch_rates = self._bn_pass = None
        self.hook_seconds = 0.0
        self._reset_state()

    def _check_rate_pair(self):
        if self.swa_lr == "auto" and self.swa_lr2 != "auto":
            raise SWAError("swa_lr2 cannot be set while swa_lr is 'auto': set swa_lr too")
        if self.lr_schedule == "cyclic" and "auto" not in (self.swa_lr, self.swa_lr2) and self.swa_lr > self.swa_lr2:
            raise SWAError("swa_lr (%g) must not exceed swa_lr2 (%g): the cyclic rate falls from swa_lr2 to "
                           "swa_lr" % (self.swa_lr, self.swa_lr2))

    # -- state (checkpoint / resume) -------------------------------------------------------------------
    def _reset_state(self):
        self.swa_weights = None       # running average (float64 arrays), None before the first cycle end
        self.n_averaged = 0
        self.init_lr = None
        self.lr_history = []

    def get_state(self):
        """Everything needed to resume: the running average, its count, the resolved rates, lr history."""
        return {"swa_weights": None if self.swa_weights is None else [w.copy() for w in self.swa_weights],
                "n_averaged": self.n_averaged, "init_lr": self.init_lr, "lr_history": list(self.lr_history)}

    def set_state(self, state):
        """Restore get_state()'s result; the next fit (with initial_epoch) continues the average."""
        weights = state["swa_weights"]
        self.swa_weights = None if weights is None else [np.asarray(w, np.float64) for w in weights]
        self.n_averaged = int(state["n_averaged"])
        self.init_lr = None if state["init_lr"] is None else float(state["init_lr"])
        self.lr_history = list(state.get("lr_history", []))
        self._resumed = True

    def save_state(self, path):
        """Write get_state() to `path` (.npz), atomically."""
        state = self.get_state()
        weights = state.pop("swa_weights") or []
        arrays = {"w%05d" % i: w for i, w in enumerate(weights)}
        state["n_weights"] = len(weights) if self.swa_weights is not None else -1
        tmp = path + ".tmp.npz"
        np.savez(tmp, meta=np.array(json.dumps(state)), **arrays)
        os.replace(tmp, path)

    def load_state(self, path):
        try:
            if not zipfile.is_zipfile(path):   # np.load on a truncated zip also prints NpzFile noise
                raise ValueError("missing, or not a complete .npz archive")
            with np.load(path) as data:
                state = json.loads(str(data["meta"]))
                n = state.pop("n_weights")
                state["swa_weights"] = None if n < 0 else [data["w%05d" % i] for i in range(n)]
        except (IOError, OSError, KeyError, ValueError) as err:
            raise SWAError("cannot read SWA state %s: %s" % (path, err))
        self.set_state(state)

    # -- fit hooks -------------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        if not self._resumed:
            self._reset_state()
        self._resumed = False
        self.hook_seconds = 0.0
        self._engine = self._flavour.engine()
        self._eager = self._engine.eager
        self._check_fit()
        self._resolve_rates()
        self.steps = self._batches_per_epoch()
        self._bn_pass = None
        self._bn_done = False
        self._feed = None
        self._feed_tried = False
        if self.verbose > 0 and self.has_bn:
            print("SWA: the model has %d batch normalization layer(s); epoch %d is a forward pass that "
                  "recomputes their statistics for the averaged weights" % (len(self.bn_layers), self.epochs))

    def _check_fit(self):
        """Fit's epochs against the schedule, and a loaded state against the model: errors before training."""
        self.epochs = self.params.get("epochs")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise SWAError("fit(epochs=%r): epochs must be a positive integer" % (self.epochs,))
        self.bn_layers = batch_norm_layers(self.model)
        self.has_bn = bool(self.bn_layers)
        self.bn_epoch = self.epochs - 1 if self.has_bn else None
        last_train_epoch = self.epochs - 1 - (1 if self.has_bn else 0)
        first = first_average_epoch(self.start, self.swa_freq)
        if first > last_train_epoch:
            raise SWAError(
                "SWA(start_epoch=%d, swa_freq=%d) averages first at the end of epoch %d, but fit trains %d "
                "epoch(s)%s: lower start_epoch or raise epochs"
                % (self.start_epoch, self.swa_freq, first + 1, last_train_epoch + 1,
                   " (the last of the %d is the batch-norm pass)" % self.epochs if self.has_bn else ""))
        if self.swa_weights is not None:
            shapes = [np.shape(w) for w in self.model.get_weights()]
            if shapes != [np.shape(w) for w in self.swa_weights]:
                raise SWAError("the loaded SWA state does not match the model's weights (another model?)")

    def _lr_variable(self):
        optimizer = getattr(self.model, "optimizer", None)
        if self._eager and isinstance(getattr(optimizer, "_learning_rate", None),
                                      self._flavour.keras.optimizers.schedules.LearningRateSchedule):
            return None     # Keras computes the rate from a schedule: there is no rate to set
        for name in ("lr", "learning_rate"):
            try:
                var = getattr(optimizer, name, None)
            except (AttributeError, ValueError, TypeError):
                var = None
            if var is None:
                continue
            try:
                self._read(var)
            except Exception:  # a schedule object or something else Keras cannot read as a number
                continue
            return var
        return None

    def _resolve_rates(self):
        self.swa_lr, self.swa_lr2 = self._swa_lr_arg, self._swa_lr2_arg
        self._lr_var = self._lr_variable()
        if self._lr_var is None:
            if self.lr_schedule != "manual":      # 'manual' never touches the rate
                raise SWAError("SWA(lr_schedule=%r) needs an optimizer with a numeric learning-rate variable "
                               "(model.optimizer.lr), and %s has none"
                               % (self.lr_schedule, type(getattr(self.model, "optimizer", None)).__name__))
            return
        self._set_rate = self._engine.rate_setter(self._lr_var)
        self._step_rates = None
        if self.lr_schedule == "cyclic":
            self._step_rates = self._engine.step_rates(self.model, self._lr_var)
        self._last_rate = None
        if self.init_lr is None:
            self.init_lr = self._read(self._lr_var)
        self._resolve_auto_rates()

    def _resolve_auto_rates(self):
        if self.swa_lr == "auto":
            self.swa_lr = 0.1 * self.init_lr
        if self.swa_lr > self.init_lr:
            raise SWAError("swa_lr (%g) is above the optimizer's learning rate (%g): SWA lowers the rate, it "
                           "must not raise it" % (self.swa_lr, self.init_lr))
        if self.lr_schedule == "cyclic" and self.swa_lr2 == "auto":
            self.swa_lr2 = self.swa_lr + 0.25 * (self.init_lr - self.swa_lr)

    def _batches_per_epoch(self):
        steps = self.params.get("steps")
        if steps:
            return int(steps)
        samples = self.params.get("samples")
        batch_size = self.params.get("batch_size") or self.batch_size
        if samples and batch_size:
            return int(math.ceil(samples / float(batch_size)))     # counts the partial last batch
        return None         # learnt from the first epoch

    @_timed
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self._batches_seen = 0
        if self._eager:
            self._first_step = self._optimizer_steps()
        if epoch == self.bn_epoch:
            self._start_bn_pass(epoch)
            if self.lr_schedule != "cyclic":
                self.lr_history.append(0.0)
            return
        if self.lr_schedule == "cyclic" and epoch >= self.start and self.steps is None:
            raise SWAError("the cyclic schedule needs the number of batches per epoch: pass steps_per_epoch "
                           "to fit, or batch_size to SWA")
        self._set_epoch_rate(epoch)
        if epoch == self.start and self.verbose > 0:
            print("\nEpoch %05d: starting stochastic weight averaging" % (epoch + 1))

    def _set_epoch_rate(self, epoch):
        if self._step_rates is not None:
            self._set_epoch_rates(epoch)
        elif self.lr_schedule == "constant":
            self._set_lr(constant_lr(epoch, self.start, self.init_lr, self.swa_lr))
        elif self.lr_schedule == "manual" and self._lr_var is not None:
            self.lr_history.append(self._read(self._lr_var))

    def _cyclic_lr(self, batch, steps):
        return cyclic_lr(self.epoch, batch, self.start, self.swa_freq, steps, self.init_lr, self.swa_lr,
                         self.swa_lr2)

    @_timed
    def on_batch_begin(self, batch, logs=None):
        if self.lr_schedule != "cyclic" or self._eager:     # eager: the step takes its rate itself
            return
        if self.epoch == self.bn_epoch:
            self.lr_history.append(0.0)
            return
        steps = self.steps or 1
        rate = self._cyclic_lr(batch, steps)
        self._set_lr(rate)
        if self.epoch < self.start:         # one rate per epoch before SWA: nothing to do per step
            return
        if self._feed is None and not self._feed_tried:
            self._attach_rate_feed()
        if self._feed is not None:
            # The step sets the rate of the epoch's next batch once its updates are done; after the last
            # batch the rate stays, so between epochs the optimizer shows the rate last used.
            self._feed.arm(rate if batch + 1 >= steps else self._cyclic_lr(batch + 1, steps))

    @_timed
    def on_batch_end(self, batch, logs=None):
        # `batch` is the last batch of the call: several with steps_per_execution (Keras 3 counts a last,
        # shorter call as a full one)
        self._batches_seen = batch + 1 if not self.steps else min(batch + 1, self.steps)
        if self._feed is not None and self._feed.armed:
            if self._feed.took_effect():
                self._last_rate = self._feed.value
            else:       # fit ran another function than model.train_function: set the rate per batch
                self._detach_rate_feed()
                self._last_rate = None
        if self._bn_pass is not None and self.steps is not None and self._batches_seen == self.steps:
            self._finish_bn_pass(self.epoch)      # before validation, so it sees the final model

    @_timed
    def on_epoch_end(self, epoch, logs=None):
        if self._eager:
            self._count_eager_epoch(epoch)
        if epoch == self.bn_epoch:
            self._finish_bn_pass(epoch)
            return
        if self._batches_seen and self.steps != self._batches_seen:
            if self.steps is not None and self.lr_schedule == "cyclic":
                warnings.warn("SWA: epoch %d had %d batches, not the %d expected; the cyclic schedule uses "
                              "%d from now on" % (epoch + 1, self._batches_seen, self.steps, self._batches_seen))
            self.steps = self._batches_seen
        if is_cycle_end(epoch, self.start, self.swa_freq):
            self._fold(self.model.get_weights())
            if self.verbose > 0:
                print("\nEpoch %05d: weights averaged (%s)" % (epoch + 1, _models(self.n_averaged)))

    @_timed
    def on_train_end(self, logs=None):
        self._detach_rate_feed()
        if self._step_rates is not None:
            self._step_rates.restore(self._last_rate if self._last_rate is not None else self.init_lr)
        if self._bn_pass is not None:       # fit stopped inside the BN epoch
            self._finish_bn_pass(self.epoch)
        if self.swa_weights is not None and not self._bn_done:
            self._apply_average()
            if self.verbose > 0:
                print("\nFinal model weights set to the stochastic weight average of %s" % _models(self.n_averaged))
            if self.has_bn:
                warnings.warn("SWA: training ended before the batch-norm pass; the averaged model's BN "
                              "statistics are stale: call recompute_bn_statistics(model, x)")
        history = getattr(self.model, "history", None)
        if history is not None and isinstance(getattr(history, "history", None), dict):
            history.history.setdefault("lr", []).extend(self.lr_history)

    # -- helpers ---------------------------------------------------------------------------------------
    def _set_lr(self, value):
        if value != self._last_rate:      # one session call saved per batch where the rate holds
            self._set_rate(value)
            self._last_rate = value
        self.lr_history.append(float(value))

    def _set_epoch_rates(self, epoch):
        """Eager cyclic schedule: the rates of the epoch's batches, taken by the steps themselves."""
        steps = self.steps or 1       # before SWA one rate per epoch: the count does not matter yet
        self._epoch_rates = [self._cyclic_lr(b, steps) for b in range(steps)]
        self._step_rates.set_epoch(self._epoch_rates)
        self._last_rate = self._epoch_rates[-1]

    def _optimizer_steps(self):
        steps = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        return None if steps is None else int(self._engine.read(steps))

    def _count_eager_epoch(self, epoch):
        """The epoch's batches, and, for the cyclic schedule, the rate of each in the history. The batch hooks
        run once per execution (Keras 3 counts a last, shorter one as full); the optimizer's step count is
        one too high where Keras 3 meets the end of data of unknown length: the smaller of the two."""
        steps = self._optimizer_steps()
        if epoch != self.bn_epoch and steps is not None and self._first_step is not None:
            self._batches_seen = min(self._batches_seen, steps - self._first_step)
        if self.lr_schedule == "cyclic":
            rates = [0.0] if epoch == self.bn_epoch else self._epoch_rates
            self.lr_history.extend(rates[min(b, len(rates) - 1)] for b in range(self._batches_seen))

    def _read(self, variable):
        return self._engine.read(variable)

    def _attach_rate_feed(self):
        self._feed_tried = True
        self._feed = self._engine.attach_rate_feed(getattr(self.model, "train_function", None), self._lr_var,
                                                   self._last_rate, self._feed_cache)
        if self._feed is not None:
            self._feed_cache = self._feed

    def _detach_rate_feed(self):
        if self._feed is not None:
            self._feed.detach()
            self._feed = None

    def _fold(self, weights):
        """swa <- (swa * n + w) / (n + 1), in float64."""
        n = self.n_averaged
        if self.swa_weights is None:
            self.swa_weights = [np.asarray(w, np.float64).copy() for w in weights]
        else:
            self.swa_weights = [(s * n + np.asarray(w, np.float64)) / (n + 1)
                                for s, w in zip(self.swa_weights, weights)]
        self.n_averaged = n + 1

    def _apply_average(self):
        current = self.model.get_weights()
        self.model.set_weights([s.astype(w.dtype) for s, w in zip(self.swa_weights, current)])

    def _start_bn_pass(self, epoch):
        self._detach_rate_feed()
        if self.swa_weights is None:
            return
        self._apply_average()
        if self.verbose > 0:
            print("\nEpoch %05d: final model weights set to stochastic weight average (%s); recomputing batch "
                  "normalization statistics" % (epoch + 1, _models(self.n_averaged)))
        self._bn_pass = self._engine.start_bn_pass(self.model, self.bn_layers)

    def _finish_bn_pass(self, epoch):
        if self._bn_pass is None:
            return
        stats = self._bn_pass()
        self._bn_pass = None
        if stats.samples == 0:
            warnings.warn("SWA: the batch-norm pass saw no data; BN statistics are stale")
            return
        self._engine.assign(stats, self.model)
        self._bn_done = True
        if self.verbose > 0:
            print("\nEpoch %05d: batch normalization statistics recomputed over %d samples"
                  % (epoch + 1, stats.samples))
