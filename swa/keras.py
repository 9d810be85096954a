"""Stochastic weight averaging for standalone Keras 2 (TensorFlow backend): `from swa.keras import SWA`.

Keras 2.3 on TensorFlow 1.15; on TF 2.x up to 2.15 the Keras 2 package TensorFlow brings, through its v1 API
(graph mode, sessions). Keras 3 (TF 2.16 on) has no TensorFlow session backend: there, use swa.tfkeras.
"""
import keras as _keras

from common.tf_compat import session_keras
from swa.core import SWAError, make_flavour

try:
    KERAS = session_keras(_keras)
except ImportError as err:
    raise ImportError("swa.keras needs a Keras 2 package (%s): use swa.tfkeras" % err)

SWA, recompute_bn_statistics = make_flavour(KERAS.backend, KERAS.callbacks.Callback, "keras")

__all__ = ["SWA", "SWAError", "recompute_bn_statistics"]
