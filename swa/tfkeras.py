"""Stochastic weight averaging for tf.keras (TensorFlow 1.15 and 2.x): `from swa.tfkeras import SWA`."""
from common.tf_compat import tf
from swa.core import SWAError, make_flavour

SWA, recompute_bn_statistics = make_flavour(tf.keras.backend, tf.keras.callbacks.Callback, "tfkeras")

__all__ = ["SWA", "SWAError", "recompute_bn_statistics"]
