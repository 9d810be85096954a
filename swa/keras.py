"""Stochastic weight averaging for standalone Keras: `from swa.keras import SWA`.

Keras 3 on the TensorFlow (TF 2.16 on), JAX or PyTorch backend (swa/eager.py, swa/portable.py). Keras 2:
Keras 2.3 on TensorFlow 1.15; on TF 2.x up to 2.15 the Keras 2 package TensorFlow brings, through its v1 API
(fit in the mode the program runs: eager by default, graph mode where v2 behaviour is off). Importing it changes
nothing in TensorFlow's state.
"""
import importlib

import keras as _keras

from swa.core import Flavour, SWACallback, SWAError

KERAS3 = int(_keras.__version__.split(".")[0]) >= 3


def session_keras(keras):
    """The Keras 2 API of a standalone Keras 2 package with TensorFlow 1.x sessions: its v1 API (the Keras 2 that
    TF 2.x up to 2.15 brings), or the package itself (Keras 2.3, made for TF 1.x, has no v1 API)."""
    try:
        return importlib.import_module(keras.__name__ + ".api._v1.keras")
    except ImportError:
        return keras


KERAS = _keras if KERAS3 else session_keras(_keras)
FLAVOUR = Flavour(KERAS, None if KERAS3 else KERAS.backend, "keras", keras3=KERAS3)


class SWA(SWACallback, KERAS.callbacks.Callback):
    __doc__ = SWACallback.__doc__
    _flavour = FLAVOUR


def recompute_bn_statistics(model, x, batch_size=32, steps=None):
    return FLAVOUR.recompute_bn_statistics(model, x, batch_size=batch_size, steps=steps)


recompute_bn_statistics.__doc__ = Flavour.recompute_bn_statistics.__doc__

__all__ = ["SWA", "SWAError", "recompute_bn_statistics"]
