"""Stochastic weight averaging for tf.keras (TensorFlow 1.15): `from swa.tfkeras import SWA`."""
from tensorflow.keras import backend as _backend
from tensorflow.keras.callbacks import Callback as _Callback

from swa.core import SWAError, make_flavour

SWA, recompute_bn_statistics = make_flavour(_backend, _Callback, "tfkeras")

__all__ = ["SWA", "SWAError", "recompute_bn_statistics"]
