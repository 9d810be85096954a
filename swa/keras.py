"""Stochastic weight averaging for standalone Keras 2.3 (TensorFlow backend): `from swa.keras import SWA`."""
from keras import backend as _backend
from keras.callbacks import Callback as _Callback

from swa.core import SWAError, make_flavour

SWA, recompute_bn_statistics = make_flavour(_backend, _Callback, "keras")

__all__ = ["SWA", "SWAError", "recompute_bn_statistics"]
