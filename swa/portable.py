"""Engine of the SWA callback for Keras 3 on the JAX and PyTorch backends, written with keras.ops and numpy only
(no TensorFlow: a JAX or PyTorch program need not have it). Same semantics as swa/eager.py:

- per-batch cyclic rates: for the fit the optimizer's rate is a keras.optimizers.schedules.LearningRateSchedule
  that picks the epoch's per-batch rate by the optimizer's step counter from a Keras variable. On JAX a jitted step
  sees only the variables it is handed as state, so the two variables are put among the optimizer's variables for
  the fit (and taken out again after it); the callback writes them between epochs, when fit reads its state anew.
- the batch-norm epoch replaces `model.train_function`, which both backends' fit loops look up for every step, by
  an unjitted forward pass in training mode that applies no update and hands the state back unchanged. Each BN
  layer's `call` is wrapped for the pass to record its input; its count, mean and sum of squared deviations are
  computed in numpy float64 on every backend (also JAX without x64, whose own float64 is float32), then combined
  exactly by swa.core.ExactMoments.
What this shares with swa/eager.py (the schedule's bookkeeping, the layers' wrapping) is in swa/eager_common.py.
"""
import numpy as np

from swa import eager_common
from swa.core import batch_norm_layers
from swa.eager_common import read  # noqa: F401  (the engine's read, called by swa.core)


def _sync(model):
    """On JAX, fit keeps the variables' values in a state of its own during an epoch: write it back first."""
    if getattr(model, "_jax_state", None) is not None and hasattr(model, "jax_state_sync"):
        model.jax_state_sync()


def assign(stats, model=None):
    """Write ExactMoments' statistics into the layers' moving mean and variance."""
    if model is not None:
        _sync(model)
    eager_common.assign(stats)


# ---------------------------------------------------------------------------------------------------------
# Per-step learning rates.

def _epoch_rate(rates, first, size, step):
    """rates[step - first], clipped to the epoch."""
    from keras import ops
    index = ops.cast(step, "int32") - ops.cast(first, "int32")
    return ops.take(rates, ops.clip(index, 0, size - 1))


class StepRates(eager_common.StepRates):
    """Keras variables, put among the optimizer's variables for the fit (a jitted JAX step gets them as state)."""

    def _install(self, size):
        self._untrack()
        self.rates = self.keras.Variable(np.zeros([size], "float32"), trainable=False, name="swa_epoch_rates")
        self.first = self.keras.Variable(0, dtype="int32", trainable=False, name="swa_epoch_first_step")
        self.optimizer._variables.extend([self.rates, self.first])      # a jitted JAX step gets them as state
        base = self.keras.optimizers.schedules.LearningRateSchedule
        self.optimizer._learning_rate = eager_common.schedule_class(base, _epoch_rate)(self.rates, self.first, size)

    def _untrack(self):
        if self.rates is not None:
            self.optimizer._variables[:] = [v for v in self.optimizer._variables
                                            if v is not self.rates and v is not self.first]

    def _give_back(self):
        """The optimizer's own rate variable and variables again."""
        _sync(self.model)
        self._untrack()
        self.optimizer._learning_rate = self.variable


# ---------------------------------------------------------------------------------------------------------
# Exact batch-norm statistics.

def _moments(layer, x):
    """Count, mean and sum of squared deviations of a BN layer's input per channel, in numpy float64."""
    from keras import ops
    xf = np.asarray(ops.convert_to_numpy(x), np.float64)
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    axis = sorted(a % xf.ndim for a in axis)
    reduce_axes = tuple(a for a in range(xf.ndim) if a not in axis)
    mean = xf.mean(axis=reduce_axes)
    count = float(np.prod([xf.shape[a] for a in reduce_axes]))
    return count, mean, ((xf - xf.mean(axis=reduce_axes, keepdims=True)) ** 2).sum(axis=reduce_axes)


class BatchNormPass(eager_common.BatchNormPass):
    """The pass unjitted, in numpy float64; on JAX on fit's state, on PyTorch without gradients."""

    def __init__(self, keras, model, layers):
        super(BatchNormPass, self).__init__(keras, model, layers)
        self.backend = keras.backend.backend()

    _moments = staticmethod(_moments)     # numpy, on the layer's concrete input

    def add(self, data, state=None):
        """One batch's forward pass in training mode, recording the BN layers' input moments; with targets, the loss
        and metrics the training step would report. JAX: stateless, on fit's state, of which only the metrics'
        variables change. Returns (logs, state)."""
        x, y, sample_weight = self.keras.utils.unpack_x_y_sample_weight(data)
        if state is not None:
            (logs, state), moments = self._record(lambda: self._jax_forward(state, x, y, sample_weight))
        else:
            logs, moments = self._record(lambda: self._forward(x, y, sample_weight))
        self.stats.add([v for layer_moments in moments for v in layer_moments])
        return logs, state

    def _forward(self, x, y, sample_weight):
        """PyTorch (and eager use outside fit): the model's call without gradients, as in its train_step."""
        if self.backend == "torch":
            import torch
            with torch.no_grad():
                return self._forward_logs(x, y, sample_weight)
        return self._forward_logs(x, y, sample_weight)

    def _forward_logs(self, x, y, sample_weight):
        y_pred = self.model(x, training=True)
        if y is None:
            return {}
        loss = self.model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        first = next(t for t in self.keras.tree.flatten(x) if t is not None)
        self.model._loss_tracker.update_state(loss, sample_weight=int(first.shape[0]))
        return self.model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _jax_forward(self, state, x, y, sample_weight):
        """JAX's train_step without its gradient and optimizer step: the state's weights and BN statistics stay."""
        trainable, non_trainable, optimizer_variables, metrics = state
        if y is None:
            self.model.stateless_call(trainable, non_trainable, x, training=True)
            return {}, state
        _, (loss, y_pred, _, metrics) = self.model.compute_loss_and_updates(
            trainable, non_trainable, metrics, x, y, sample_weight, training=True,
            optimizer_variables=optimizer_variables)
        logs, metrics = self.model._update_metrics_variables(metrics, loss, x, y, y_pred, sample_weight)
        return logs, (trainable, non_trainable, optimizer_variables, metrics)

    # -- fit's training function for the BN epoch ------------------------------------------------------
    def _train_function(self):
        return self._jax_step if self.backend == "jax" else self._torch_step

    def _jax_step(self, state, iterator):
        """JAX fit's `train_function(state, iterator)`: steps_per_execution batches; the weights, BN statistics
        and optimizer in the state come back as they were."""
        logs = None
        for _ in range(max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))):
            try:
                data = next(iterator)
            except StopIteration:
                break
            logs, state = self.add(data, state)
        if logs is None:
            raise StopIteration      # the end of the data: fit's loop stops the epoch here
        return logs, state

    def _torch_step(self, data):
        """PyTorch fit's `train_function(data)`: a list holding one batch (steps_per_execution is 1 there)."""
        return self.add(data[0])[0]


def start_bn_pass(keras, model, layers, keras3=True):
    """Replace fit's training function by the forward pass; returns `finish()` -> ExactMoments."""
    bn_pass = BatchNormPass(keras, model, layers)
    bn_pass.start()
    return bn_pass.finish


def recompute_bn_statistics(keras, model, x, keras3=True, batch_size=32, steps=None):
    """swa.graph.recompute_bn_statistics for Keras 3 on JAX or PyTorch (same arguments and result)."""
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    stats = BatchNormPass(keras, model, layers).recompute(x, batch_size, steps)
    assign(stats)
    return stats.samples
