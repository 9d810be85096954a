"""Stochastic weight averaging for standalone Keras 2 (TensorFlow backend): `from swa.keras import SWA`.

Keras 2.3 on TensorFlow 1.15; on TF 2.x up to 2.15 the Keras 2 package TensorFlow brings, through its v1 API
(graph mode, sessions). Keras 3 (TF 2.16 on) has no TensorFlow session backend: there, use swa.tfkeras.
"""
import importlib

import keras as _keras

from common.tf_compat import TF2
from swa.core import SWAError, make_flavour

if int(_keras.__version__.split(".")[0]) >= 3:
    raise ImportError("swa.keras needs a Keras 2 package, and Keras %s is installed (Keras 3 has no TensorFlow "
                      "session backend): use swa.tfkeras" % _keras.__version__)
# The Keras that TF 2.x brings offers its session-based API (get_session, set_session) as keras.api._v1.keras.
KERAS = importlib.import_module("keras.api._v1.keras") if TF2 else _keras

SWA, recompute_bn_statistics = make_flavour(KERAS.backend, KERAS.callbacks.Callback, "keras")

__all__ = ["SWA", "SWAError", "recompute_bn_statistics"]
