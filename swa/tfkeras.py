"""Stochastic weight averaging for tf.keras: `from swa.tfkeras import SWA`.

TensorFlow 1.15, and TF 2.x in the mode the program runs: eager `fit` (the TF 2.x default) or graph mode. Where
tf.keras is Keras 3 (TF 2.16 on, unless TF_USE_LEGACY_KERAS=1 selects tf_keras), this is swa.keras's callback.
Importing it changes nothing in TensorFlow's state.
"""
from swa._tf import tf
from swa.core import SWAError, make_flavour

KERAS3 = hasattr(tf.keras, "ops")
SWA, recompute_bn_statistics = make_flavour(tf.keras, None if KERAS3 else tf.keras.backend,
                                            tf.keras.callbacks.Callback, "tfkeras", keras3=KERAS3)

__all__ = ["SWA", "SWAError", "recompute_bn_statistics"]
