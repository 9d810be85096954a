"""Stochastic weight averaging for tf.keras: `from swa.tfkeras import SWA`.

TensorFlow 1.15, and TF 2.x in the mode the program runs: eager `fit` (the TF 2.x default) or graph mode. Where
tf.keras is Keras 3 (TF 2.16 on, unless TF_USE_LEGACY_KERAS=1 selects tf_keras), this is swa.keras's callback.
Importing it changes nothing in TensorFlow's state.
"""
from swa._tf import tf
from swa.core import Flavour, SWACallback, SWAError

KERAS3 = hasattr(tf.keras, "ops")
FLAVOUR = Flavour(tf.keras, None if KERAS3 else tf.keras.backend, "tfkeras", keras3=KERAS3)


class SWA(SWACallback, tf.keras.callbacks.Callback):
    __doc__ = SWACallback.__doc__
    _flavour = FLAVOUR


def recompute_bn_statistics(model, x, batch_size=32, steps=None):
    return FLAVOUR.recompute_bn_statistics(model, x, batch_size=batch_size, steps=steps)


recompute_bn_statistics.__doc__ = Flavour.recompute_bn_statistics.__doc__

__all__ = ["SWA", "SWAError", "recompute_bn_statistics"]
