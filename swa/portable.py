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
"""
import numpy as np

from swa.core import ExactMoments, SWAError, _batches, batch_norm_layers


def read(variable):
    """A scalar Keras variable's value as a float."""
    return float(np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable))


def _sync(model):
    """On JAX, fit keeps the variables' values in a state of its own during an epoch: write it back first."""
    if getattr(model, "_jax_state", None) is not None and hasattr(model, "jax_state_sync"):
        model.jax_state_sync()


def assign(stats, model=None):
    """Write ExactMoments' statistics into the layers' moving mean and variance."""
    if model is not None:
        _sync(model)
    for layer, mean, var in stats.statistics():
        for target, value in ((layer.moving_mean, mean), (layer.moving_variance, var)):
            target.assign(np.reshape(value, tuple(target.shape)).astype(target.dtype))


# ---------------------------------------------------------------------------------------------------------
# Per-step learning rates.

def _schedule_class(keras):
    ops = keras.ops

    class EpochRates(keras.optimizers.schedules.LearningRateSchedule):
        """rates[step - first], clipped to the epoch: the rate of each batch of the current epoch."""

        def __init__(self, rates, first, size):
            super(EpochRates, self).__init__()
            self.rates, self.first, self.size = rates, first, size

        def __call__(self, step):
            index = ops.cast(step, "int32") - ops.cast(self.first, "int32")
            return ops.take(self.rates, ops.clip(index, 0, self.size - 1))

        def get_config(self):
            return {}

    return EpochRates


class StepRates(object):
    """For one fit, the optimizer's rate is a schedule over the epoch's per-batch rates (see the module doc)."""

    def __init__(self, keras, model, variable, keras3=True):
        self.keras, self.model, self.variable = keras, model, variable
        self.optimizer = model.optimizer
        self.rates = None

    def _install(self, size):
        self._untrack()
        self.rates = self.keras.Variable(np.zeros([size], "float32"), trainable=False, name="swa_epoch_rates")
        self.first = self.keras.Variable(0, dtype="int32", trainable=False, name="swa_epoch_first_step")
        self.optimizer._variables.extend([self.rates, self.first])      # a jitted JAX step gets them as state
        self.optimizer._learning_rate = _schedule_class(self.keras)(self.rates, self.first, size)
        self.model.make_train_function(force=True)    # a traced step keeps the rate it was traced with

    def _untrack(self):
        if self.rates is not None:
            self.optimizer._variables[:] = [v for v in self.optimizer._variables
                                            if v is not self.rates and v is not self.first]

    def set_epoch(self, rates):
        """The rates of the coming epoch's batches, in order (the last one also for any further batch)."""
        if self.rates is None or int(self.rates.shape[0]) != len(rates):
            self._install(len(rates))
        self.rates.assign(np.asarray(rates, np.float32))
        self.first.assign(int(read(self.optimizer.iterations)))
        self.variable.assign(rates[-1])     # not read by the steps: shows the epoch's last rate

    def restore(self, rate):
        """Give the optimizer back its rate variable, holding `rate` (the last rate used), and its variables."""
        if self.rates is None:
            return
        _sync(self.model)
        self._untrack()
        self.optimizer._learning_rate = self.variable
        self.variable.assign(rate)
        self.model.train_function = None                    # the next fit traces a step with the variable again
        self.rates = None


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


class BatchNormPass(object):
    """Forward passes in training mode that record every BN layer's input moments, combined by ExactMoments."""

    def __init__(self, keras, model, layers):
        self.keras, self.model = keras, model
        self.layers = list(layers)
        self.stats = ExactMoments(self.layers)
        self.moments = None
        self.backend = keras.backend.backend()
        self._original_train_function = None

    def add(self, data, state=None):
        """One batch's forward pass in training mode, recording the BN layers' input moments; with targets, the loss
        and metrics the training step would report. JAX: stateless, on fit's state, of which only the metrics'
        variables change. Returns (logs, state)."""
        x, y, sample_weight = self.keras.utils.unpack_x_y_sample_weight(data)
        self.moments = {}
        try:
            if state is not None:
                logs, state = self._jax_forward(state, x, y, sample_weight)
            else:
                logs = self._forward(x, y, sample_weight)
            moments = self.moments
        finally:
            self.moments = None
        missing = [layer.name for i, layer in enumerate(self.layers) if i not in moments]
        if missing:
            raise SWAError("batch normalization layer(s) %s were not called by the model's forward pass"
                           % ", ".join(missing))
        self.stats.add([v for i in range(len(self.layers)) for v in moments[i]])
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

    # -- recording -------------------------------------------------------------------------------------
    def wrap_layers(self):
        for i, layer in enumerate(self.layers):
            layer.call = self._recording(i, layer.call)

    def unwrap_layers(self):
        for layer in self.layers:
            if "call" in vars(layer):
                del layer.call

    def _recording(self, index, call):
        layer, bn_pass = self.layers[index], self

        def recording_call(inputs, *args, **kwargs):
            if bn_pass.moments is not None:
                bn_pass.moments[index] = _moments(layer, inputs)
            return call(inputs, *args, **kwargs)

        return recording_call

    # -- fit's training function for the BN epoch ------------------------------------------------------
    def start(self):
        self.wrap_layers()
        self._original_train_function = self.model.train_function
        self.model.train_function = self._jax_step if self.backend == "jax" else self._torch_step

    def finish(self):
        self.unwrap_layers()
        self.model.train_function = self._original_train_function
        return self.stats

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
    bn_pass = BatchNormPass(keras, model, layers)
    bn_pass.wrap_layers()
    try:
        for batch in _batches(x, batch_size, steps):
            bn_pass.add((batch[0] if len(batch) == 1 else list(batch),))     # (x,): inputs, no targets
    finally:
        bn_pass.unwrap_layers()
    assign(bn_pass.stats)
    return bn_pass.stats.samples
