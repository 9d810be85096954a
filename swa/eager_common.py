"""What the two engines without a session share (swa/eager.py on TensorFlow, swa/portable.py on Keras 3's JAX or
PyTorch): the per-step learning rates and the batch-norm pass's recording, without their backend's ops. Like
swa/core.py it imports no TensorFlow: each engine supplies its variables, index arithmetic and moments.
"""
import threading

import numpy as np

from swa.core import ExactMoments, SWAError, _batches


def read(variable):
    """A scalar variable's value as a float (tf.Variable, distributed variable or Keras 3 Variable)."""
    value = variable.numpy() if hasattr(variable, "numpy") else variable
    return float(np.asarray(value))


def _numpy_dtype(variable):
    dtype = variable.dtype       # a tf.DType, or Keras 3's dtype name
    return np.dtype(getattr(dtype, "as_numpy_dtype", dtype))


def assign(stats):
    """Write ExactMoments' statistics into the layers' moving mean and variance."""
    for layer, mean, var in stats.statistics():
        for target, value in ((layer.moving_mean, mean), (layer.moving_variance, var)):
            target.assign(np.reshape(value, tuple(target.shape)).astype(_numpy_dtype(target)))


# ---------------------------------------------------------------------------------------------------------
# Per-step learning rates.

def schedule_class(base, pick):
    """A LearningRateSchedule (`base`) whose rate at `step` is pick(rates, first, size, step): the rate of each
    batch of the current epoch, rates[step - first] clipped to the epoch, in the backend's ops."""
    class EpochRates(base):
        def __init__(self, rates, first, size):
            super(EpochRates, self).__init__()
            self.rates, self.first, self.size = rates, first, size

        def __call__(self, step):
            return pick(self.rates, self.first, self.size, step)

        def get_config(self):
            return {}

    return EpochRates


class StepRates(object):
    """For one fit, the optimizer's rate is a schedule over the epoch's per-batch rates (see the engines' docs).
    An engine's subclass installs the schedule (`_install(size)`) and gives the rate variable back (`_give_back`)."""

    def __init__(self, keras, model, variable, keras3):
        self.keras, self.model, self.variable, self.keras3 = keras, model, variable, keras3
        self.optimizer = model.optimizer
        self.rates = None

    def set_epoch(self, rates):
        """The rates of the coming epoch's batches, in order (the last one also for any further batch)."""
        if self.rates is None or int(self.rates.shape[0]) != len(rates):
            self._install(len(rates))
            self.model.make_train_function(force=True)    # a traced step keeps the rate it was traced with
        self.rates.assign(np.asarray(rates, np.float32))
        self.first.assign(int(read(self.optimizer.iterations)))
        self.variable.assign(rates[-1])     # not read by the steps: shows the epoch's last rate, as in graph mode

    def restore(self, rate):
        """Give the optimizer back its rate variable, holding `rate` (the last rate used)."""
        if self.rates is None:
            return
        self._give_back()
        self.variable.assign(rate)
        self.model.train_function = None                    # the next fit traces a step with the variable again
        self.rates = None


# ---------------------------------------------------------------------------------------------------------
# Exact batch-norm statistics.

class _Records(threading.local):
    """The moments recorded by the wrapped BN layers; per thread, since a strategy runs each replica in one."""
    moments = None


class BatchNormPass(object):
    """Forward passes in training mode that record every BN layer's input moments, combined by ExactMoments.
    An engine's subclass computes a layer's input moments (`_moments`), runs a batch (`add`) through `_record`,
    and gives the function replacing fit's training function for the epoch (`_train_function`)."""

    def __init__(self, keras, model, layers):
        self.keras, self.model = keras, model
        self.layers = list(layers)
        self.stats = ExactMoments(self.layers)
        self.records = _Records()
        self._original_train_function = None

    def _record(self, forward):
        """forward()'s result, and the moments of every BN layer's input it recorded, in layer order."""
        self.records.moments = {}
        try:
            result = forward()
            moments = self.records.moments
        finally:
            self.records.moments = None
        missing = [layer.name for i, layer in enumerate(self.layers) if i not in moments]
        if missing:
            raise SWAError("batch normalization layer(s) %s were not called by the model's forward pass"
                           % ", ".join(missing))
        return result, [moments[i] for i in range(len(self.layers))]

    # -- recording -------------------------------------------------------------------------------------
    def wrap_layers(self):
        for i, layer in enumerate(self.layers):
            layer.call = self._recording(i, layer.call)

    def unwrap_layers(self):
        for layer in self.layers:
            if "call" in vars(layer):
                del layer.call

    def _recording(self, index, call):
        layer, records, moments = self.layers[index], self.records, self._moments

        def recording_call(inputs, *args, **kwargs):
            if records.moments is not None:
                records.moments[index] = moments(layer, inputs)
            return call(inputs, *args, **kwargs)

        return recording_call

    # -- fit's training function for the BN epoch ------------------------------------------------------
    def start(self):
        self.wrap_layers()
        self._original_train_function = self.model.train_function
        self.model.train_function = self._train_function()

    def finish(self):
        self.unwrap_layers()
        self.model.train_function = self._original_train_function
        return self.stats

    def recompute(self, x, batch_size, steps):
        """recompute_bn_statistics outside fit: one pass over the inputs `x`; returns the statistics."""
        self.wrap_layers()
        try:
            for batch in _batches(x, batch_size, steps):
                self.add((batch[0] if len(batch) == 1 else list(batch),))     # (x,): inputs, no targets
        finally:
            self.unwrap_layers()
        return self.stats
