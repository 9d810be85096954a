"""Eager engine of the SWA callback: TF 2.x `model.fit` as TensorFlow runs it by default (tf.function steps,
`steps_per_execution`, tf.data, tf.distribute), for tf.keras 2.x and Keras 3 with the TensorFlow backend.

Graph mode changes the session's training function (swa/graph.py); here no session exists, so
- the cyclic rate of every step comes from the step itself: for the fit, the optimizer's rate is a learning-rate
  schedule that reads the epoch's per-batch rates from a variable by the optimizer's step counter (several steps
  per call with steps_per_execution, every replica of a strategy: each step its own batch's rate);
- the batch-norm epoch replaces `model.train_function`, which fit calls once per execution with the data
  iterator, by a forward pass over the same batches that applies no update and records each BN layer's input
  moments (the layers' `call` is wrapped for the pass, so nested and subclassed models work too).
What this shares with swa/portable.py (the schedule's bookkeeping, the layers' wrapping) is in swa/eager_common.py.
"""
import numpy as np

from swa import eager_common
from swa._tf import tf
from swa.core import batch_norm_layers
from swa.eager_common import read


def assign(stats, model=None):
    """Write ExactMoments' statistics into the layers' moving mean and variance."""
    eager_common.assign(stats)


# ---------------------------------------------------------------------------------------------------------
# Per-step learning rates.

def _epoch_rate(rates, first, size, step):
    """rates[step - first], clipped to the epoch."""
    index = tf.cast(step, tf.int64) - first
    index = tf.clip_by_value(index, 0, tf.size(rates, out_type=tf.int64) - 1)
    return tf.gather(rates, index)


class StepRates(eager_common.StepRates):
    """The schedule reads TensorFlow variables; Keras 2 and 3 take and give back the rate their own ways."""

    def _install(self, size):
        # Created in fit's strategy scope: mirrored on every replica; read in the step, assigned between calls.
        self.rates = tf.Variable(tf.zeros([size], tf.float32), trainable=False, name="swa_epoch_rates")
        self.first = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="swa_epoch_first_step")
        base = self.keras.optimizers.schedules.LearningRateSchedule
        schedule = eager_common.schedule_class(base, _epoch_rate)(self.rates, self.first, size)
        if not self.keras3 and not hasattr(self.optimizer, "_hyper") and \
                not hasattr(self.optimizer, "_current_learning_rate"):
            # Keras 2 keeps the rate of the last step here; made now, not inside the first traced step.
            self.optimizer._current_learning_rate = tf.Variable(
                read(self.variable), name="current_learning_rate", dtype=tf.float32, trainable=False)
        self.optimizer.learning_rate = schedule

    def _give_back(self):
        if hasattr(self.optimizer, "_hyper"):    # Keras 2's legacy OptimizerV2 keeps it among its hyperparameters
            self.optimizer._set_hyper("learning_rate", self.variable)
        else:           # Keras's setter refuses a schedule -> number change
            self.optimizer._learning_rate = self.variable


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


class BatchNormPass(eager_common.BatchNormPass):
    """The pass as tf.function steps, per replica under fit's strategy; fit's iterator feeds it."""

    def __init__(self, keras, model, layers, keras3, distributed):
        super(BatchNormPass, self).__init__(keras, model, layers)
        self.keras3 = keras3
        self.strategy = model.distribute_strategy if distributed else None
        run = self._run_on_replicas if distributed else self._step
        self.run = run if getattr(model, "run_eagerly", False) else tf.function(run)

    _moments = staticmethod(_moments)     # TensorFlow ops, inside the traced step

    # -- one batch -------------------------------------------------------------------------------------
    def _step(self, data):
        unpack = getattr(self.keras.utils, "unpack_x_y_sample_weight", None) or tf.keras.utils.unpack_x_y_sample_weight
        x, y, sample_weight = unpack(data)
        y_pred, moments = self._record(lambda: self.model(x, training=True))
        logs = {} if y is None else self._logs(x, y, y_pred, sample_weight)
        return logs, moments

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

    # -- fit's training function for the BN epoch ------------------------------------------------------
    def _train_function(self):
        return self

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
    stats = BatchNormPass(keras, model, layers, keras3, distributed=False).recompute(x, batch_size, steps)
    assign(stats)
    return stats.samples
