"""Eager engine of the SWA callback: TF 2.x `model.fit` as TensorFlow runs it by default (tf.function steps,
`steps_per_execution`, tf.data, tf.distribute), for tf.keras 2.x and Keras 3 with the TensorFlow backend.

Graph mode changes the session's training function (swa/graph.py); here no session exists, so
- the cyclic rate of every step comes from the step itself: for the fit, the optimizer's rate is a learning-rate
  schedule that reads the epoch's per-batch rates from a variable by the optimizer's step counter (several steps
  per call with steps_per_execution, every replica of a strategy: each step its own batch's rate);
- the batch-norm epoch replaces `model.train_function`, which fit calls once per execution with the data
  iterator, by a forward pass over the same batches that applies no update and records each BN layer's input
  moments (the layers' `call` is wrapped for the pass, so nested and subclassed models work too).
"""
import threading

import numpy as np

from swa._tf import tf
from swa.core import ExactMoments, SWAError, _batches, batch_norm_layers


def read(variable):
    """A scalar variable's value as a float (tf.Variable, distributed variable or Keras 3 Variable)."""
    value = variable.numpy() if hasattr(variable, "numpy") else variable
    return float(np.asarray(value))


def _numpy_dtype(variable):
    dtype = variable.dtype
    return np.dtype(getattr(dtype, "as_numpy_dtype", dtype))


def assign(stats, model=None):
    """Write ExactMoments' statistics into the layers' moving mean and variance."""
    for layer, mean, var in stats.statistics():
        for target, value in ((layer.moving_mean, mean), (layer.moving_variance, var)):
            target.assign(np.reshape(value, tuple(target.shape)).astype(_numpy_dtype(target)))


# ---------------------------------------------------------------------------------------------------------
# Per-step learning rates.

def _schedule_class(base):
    class EpochRates(base):
        """rates[step - first], clipped to the epoch: the rate of each batch of the current epoch."""

        def __init__(self, rates, first):
            super(EpochRates, self).__init__()
            self.rates, self.first = rates, first

        def __call__(self, step):
            index = tf.cast(step, tf.int64) - self.first
            index = tf.clip_by_value(index, 0, tf.size(self.rates, out_type=tf.int64) - 1)
            return tf.gather(self.rates, index)

        def get_config(self):
            return {}

    return EpochRates


class StepRates(object):
    """For one fit, the optimizer's rate is a schedule over the epoch's per-batch rates (see the module doc)."""

    def __init__(self, keras, model, variable, keras3):
        self.keras, self.model, self.variable, self.keras3 = keras, model, variable, keras3
        self.optimizer = model.optimizer
        self.rates = None

    def _install(self, size):
        # Created in fit's strategy scope: mirrored on every replica; read in the step, assigned between calls.
        self.rates = tf.Variable(tf.zeros([size], tf.float32), trainable=False, name="swa_epoch_rates")
        self.first = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="swa_epoch_first_step")
        schedule = _schedule_class(self.keras.optimizers.schedules.LearningRateSchedule)(self.rates, self.first)
        if not self.keras3 and not hasattr(self.optimizer, "_hyper") and \
                not hasattr(self.optimizer, "_current_learning_rate"):
            # Keras 2 keeps the rate of the last step here; made now, not inside the first traced step.
            self.optimizer._current_learning_rate = tf.Variable(
                read(self.variable), name="current_learning_rate", dtype=tf.float32, trainable=False)
        self.optimizer.learning_rate = schedule
        self.model.make_train_function(force=True)    # a traced step keeps the rate it was traced with

    def set_epoch(self, rates):
        """The rates of the coming epoch's batches, in order (the last one also for any further batch)."""
        if self.rates is None or int(self.rates.shape[0]) != len(rates):
            self._install(len(rates))
        self.rates.assign(np.asarray(rates, np.float32))
        self.first.assign(int(read(self.optimizer.iterations)))
        self.variable.assign(rates[-1])     # not read by the steps: shows the epoch's last rate, as in graph mode

    def restore(self, rate):
        """Give the optimizer back its rate variable, holding `rate` (the last rate used)."""
        if self.rates is None:
            return
        if hasattr(self.optimizer, "_hyper"):    # Keras 2's legacy OptimizerV2 keeps it among its hyperparameters
            self.optimizer._set_hyper("learning_rate", self.variable)
        else:           # Keras's setter refuses a schedule -> number change
            self.optimizer._learning_rate = self.variable
        self.variable.assign(rate)
        self.model.train_function = None                    # the next fit traces a step with the variable again
        self.rates = None


# ---------------------------------------------------------------------------------------------------------
# Exact batch-norm statistics.

def _moments(layer, x):
    """Count, mean and sum of squared deviations of a BN layer's input per channel, in float64 (as the
    combination that follows), so a batch's sums lose nothing to float32 round-off (inputs far from zero)."""
    ndim = len(x.shape)
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    axis = sorted(a % ndim for a in axis)
    reduce_axes = [a for a in range(ndim) if a not in axis]
    xf = tf.cast(x, tf.float64)
    mean, var = tf.nn.moments(xf, reduce_axes)
    count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(xf), reduce_axes)), tf.float64)
    return count, mean, var * count


class _Records(threading.local):
    """The moments recorded by the wrapped BN layers; per thread, since a strategy runs each replica in one."""
    moments = None


class BatchNormPass(object):
    """Forward passes in training mode that record every BN layer's input moments, combined by ExactMoments."""

    def __init__(self, keras, model, layers, keras3, distributed):
        self.keras, self.model, self.keras3 = keras, model, keras3
        self.layers = list(layers)
        self.stats = ExactMoments(self.layers)
        self.records = _Records()
        self.strategy = model.distribute_strategy if distributed else None
        run = self._run_on_replicas if distributed else self._step
        self.run = run if getattr(model, "run_eagerly", False) else tf.function(run)
        self._original_train_function = None

    # -- one batch -------------------------------------------------------------------------------------
    def _step(self, data):
        unpack = getattr(self.keras.utils, "unpack_x_y_sample_weight", None) or tf.keras.utils.unpack_x_y_sample_weight
        x, y, sample_weight = unpack(data)
        self.records.moments = {}
        try:
            y_pred = self.model(x, training=True)
            moments = self.records.moments
        finally:
            self.records.moments = None
        missing = [layer.name for i, layer in enumerate(self.layers) if i not in moments]
        if missing:
            raise SWAError("batch normalization layer(s) %s were not called by the model's forward pass"
                           % ", ".join(missing))
        logs = {} if y is None else self._logs(x, y, y_pred, sample_weight)
        return logs, [moments[i] for i in range(len(self.layers))]

    def _logs(self, x, y, y_pred, sample_weight):
        """The loss and metrics the training step would report, without its gradient step."""
        if not self.keras3:
            self.model.compute_loss(x, y, y_pred, sample_weight)
            return self.model.compute_metrics(x, y, y_pred, sample_weight)
        loss = self.model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        first = next(t for t in tf.nest.flatten(x) if t is not None)
        self.model._loss_tracker.update_state(loss, sample_weight=tf.shape(first)[0])
        return self.model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _run_on_replicas(self, data):
        return self.strategy.run(self._step, args=(data,))

    def add(self, data):
        """Run one batch (per replica under a strategy); accumulate every replica's moments; return the logs."""
        logs, moments = self.run(data)
        local = (lambda v: self.strategy.experimental_local_results(v)) if self.strategy else (lambda v: (v,))
        per_leaf = [local(v) for v in tf.nest.flatten(moments)]
        for replica in range(len(per_leaf[0]) if per_leaf else 0):
            self.stats.add([np.asarray(leaf[replica]) for leaf in per_leaf])
        return tf.nest.map_structure(lambda v: local(v)[0], logs)

    # -- recording -------------------------------------------------------------------------------------
    def wrap_layers(self):
        for i, layer in enumerate(self.layers):
            layer.call = self._recording(i, layer.call)

    def unwrap_layers(self):
        for layer in self.layers:
            if "call" in vars(layer):
                del layer.call

    def _recording(self, index, call):
        layer, records = self.layers[index], self.records

        def recording_call(inputs, *args, **kwargs):
            if records.moments is not None:
                records.moments[index] = _moments(layer, inputs)
            return call(inputs, *args, **kwargs)

        return recording_call

    # -- fit's training function for the BN epoch ------------------------------------------------------
    def start(self):
        self.wrap_layers()
        self._original_train_function = self.model.train_function
        self.model.train_function = self

    def finish(self):
        self.unwrap_layers()
        self.model.train_function = self._original_train_function
        return self.stats

    def __call__(self, iterator):
        """fit's `train_function(iterator)`: the batches of one execution (steps_per_execution of them)."""
        logs = None
        for _ in range(self._steps_per_execution()):
            if hasattr(iterator, "get_next_as_optional"):
                optional = iterator.get_next_as_optional()
                if not bool(optional.has_value()):
                    break
                data = optional.get_value()
            else:
                try:
                    data = next(iterator)
                except StopIteration:
                    break
            logs = self.add(data)
        if logs is None:
            raise StopIteration      # the end of the data: both Keras' fit loops stop the epoch here
        return logs

    def _steps_per_execution(self):
        steps = getattr(self.model, "_steps_per_execution", None)     # Keras 2: a variable, lowered for a last part
        if steps is None or self.keras3:
            steps = getattr(self.model, "steps_per_execution", 1)
        return max(1, int(read(steps)) if hasattr(steps, "numpy") else int(steps or 1))


def start_bn_pass(keras, model, layers, keras3):
    """Replace fit's training function by the forward pass; returns `finish()` -> ExactMoments."""
    bn_pass = BatchNormPass(keras, model, layers, keras3, distributed=True)
    bn_pass.start()
    return bn_pass.finish


def recompute_bn_statistics(keras, model, x, keras3, batch_size=32, steps=None):
    """Eager version of swa.graph.recompute_bn_statistics (same arguments and result)."""
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    bn_pass = BatchNormPass(keras, model, layers, keras3, distributed=False)
    bn_pass.wrap_layers()
    try:
        for batch in _batches(x, batch_size, steps):
            bn_pass.add((batch[0] if len(batch) == 1 else list(batch),))     # (x,): inputs, no targets
    finally:
        bn_pass.unwrap_layers()
    assign(bn_pass.stats)
    return bn_pass.stats.samples
