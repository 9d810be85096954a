"""The one place that imports TensorFlow, so the stack is chosen here and nowhere else.

    from common.tf_compat import tf

`tf` is TensorFlow's 1.x graph API on both stacks: the `tensorflow` module on TF 1.15, and
`tensorflow.compat.v1` with v2 behaviour off (graph mode, v1 control flow and variables) on TF 2.x, where TF
1.15's rule for op-level random seeds is restored so a seeded run draws the same numbers on both. Model code
uses `tf` alone; what differs between the stacks lives in this module.
"""
import importlib.util
import os
import sys

# TF 2.x (Python 3.8+ here: TF 1.15 has no wheel for it) logs C++ start-up lines at import, among them, without CUDA,
# three 'E ... Unable to register cuDNN/cuFFT/cuBLAS factory' that newcomers read as failures. Level 3 keeps
# TensorFlow's C++ log lines below FATAL out (read once, at import): a failing op still raises its exception, whose
# message the scripts' one-line errors print. TF_CPP_MIN_LOG_LEVEL=0 shows them all again; TF 1.15 logs as before.
if sys.version_info >= (3, 8):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# TF 2.16+ ships Keras 3, which has neither tf.compat.v1.layers nor the Keras 2 API: tf_keras (installed with
# those versions) keeps them, once this is set before TensorFlow loads.
if importlib.util.find_spec("tf_keras") is not None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as _tf  # noqa: E402  (after the Keras switch)

VERSION = tuple(int(part) for part in _tf.__version__.split(".")[:2])
TF2 = VERSION[0] >= 2


def _restore_v1_op_seeds():
    """TF 2.x numbers the random ops of a seeded graph 0, 1, 2...; TF 1.15 gave each the graph's last op id.
    Same seeds, same draws: a seeded run gives the same numbers on both stacks."""
    from tensorflow.python.eager import context
    from tensorflow.python.framework import ops, random_seed
    original = random_seed.get_seed

    def get_seed(op_seed):
        graph = ops.get_default_graph()
        if op_seed is None and graph.seed is not None and not context.executing_eagerly():
            op_seed = graph.version    # what TF 1.15 calls the graph's last op id
        return original(op_seed)

    random_seed.get_seed = get_seed


# TF_COMPAT_EAGER=1 (TF 2.x; set before this module loads) keeps TF 2.x's eager default instead: for SWA's seed
# script with --eager, which runs the SWA callback the way a TF 2.x Keras program does. `tf` is then the v1 API
# running eagerly; everything else in the project needs graph mode.
EAGER = TF2 and os.environ.get("TF_COMPAT_EAGER") == "1"

if TF2:
    tf = _tf.compat.v1
    if not EAGER:
        tf.disable_v2_behavior()
        _restore_v1_op_seeds()
else:
    tf = _tf


def onednn_build():
    """True where TensorFlow's CPU kernels are oneDNN's: intel-tensorflow 1.15 (`setup.sh --intel`), and TF 2.x
    on x86 Linux unless TF_ENABLE_ONEDNN_OPTS=0."""
    try:
        if TF2:
            from tensorflow.python.util import _pywrap_util_port
            return bool(_pywrap_util_port.IsMklEnabled())
        from tensorflow.python import pywrap_tensorflow
        return bool(pywrap_tensorflow.IsMklEnabled())
    except (ImportError, AttributeError):
        return False


def has_xla():
    """True where this TensorFlow has XLA's JIT (its XlaLaunch op is registered)."""
    from tensorflow.python.framework import op_def_registry
    if hasattr(op_def_registry, "get"):
        return op_def_registry.get("XlaLaunch") is not None
    return "XlaLaunch" in op_def_registry.get_registered_ops()


def run_on_replicas(strategy, fn, args=()):
    """strategy.run (TF 2.x) or its TF 1.15 name, experimental_run_v2."""
    run = getattr(strategy, "run", None) or strategy.experimental_run_v2
    return run(fn, args=args)


def plain_fn(fn):
    """fn for tf.data's map as written, not converted by AutoGraph: our map functions use tf.cond where a tensor
    decides, so the conversion adds nothing to their graphs, and its first use costs a process about 3 s on TF 1.15
    (1 s on TF 2.15) of start-up."""
    return _tf.autograph.experimental.do_not_convert(fn)


def without_auto_shard(dataset):
    """A dataset that tf.distribute must not shard again (it was sharded by rank already)."""
    options = tf.data.Options()
    if TF2:
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    else:
        options.experimental_distribute.auto_shard = False
    return dataset.with_options(options)


def has_estimator():
    """tf.estimator is gone from TF 2.16 on."""
    try:
        return tf.estimator.Estimator is not None
    except (AttributeError, ImportError):
        return False


def debugger():
    """tfdbg's graph-watch helper and dump reader (tensorflow.python.debug, v1 API, kept in TF 2.x): the real
    executed outputs of one Session.run, each op's in execution order."""
    from tensorflow.python.debug.lib import debug_data, debug_utils
    return debug_utils, debug_data
