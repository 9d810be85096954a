"""What the adapter's C++ graph passes check on every Session.run of a session configured with NpuOptimizer.

The real checks run inside `_tf_adapter.so` (tf_adapter/util/npu_attrs.cc SetNpuOptimizerAttr,
tf_adapter/optimizers/om_partition_subgraphs_pass.cc ProcessGraph). Here they wrap BaseSession.run.
"""
import json
import os
import sys

from common.tf_compat import tf


class AdapterAbort(BaseException):
    """The adapter's LOG(FATAL): the real process aborts; nothing in Python can catch and carry on."""


def npu_parameters(config):
    """The NpuOptimizer parameter_map of a ConfigProto, or None (then the adapter's passes do nothing)."""
    if config is None:
        return None
    for custom in config.graph_options.rewrite_options.custom_optimizers:
        if custom.name == "NpuOptimizer":
            return custom.parameter_map
    return None


def _abort(message):
    print("F tf_adapter: " + message, file=sys.stderr, flush=True)
    raise AdapterAbort(message)


def check_options(params):
    """The session options, once per session (npu_attrs.cc SetNpuOptimizerAttr)."""
    enable_dump = "enable_dump" in params and params["enable_dump"].b
    enable_debug = "enable_dump_debug" in params and params["enable_dump_debug"].b
    if enable_dump or enable_debug:
        # npu_attrs.cc: "if use dump function, dump_path must be set."; CheckPath: existing, readable, writable dir.
        path = params["dump_path"].s.decode() if "dump_path" in params else ""
        if not path:
            raise tf.errors.InternalError(None, None, "if use dump function, dump_path must be set.")
        if not os.path.isdir(path):
            raise tf.errors.InternalError(None, None, "the path %s is not directory." % path)
        if not os.access(path, os.R_OK | os.W_OK):
            raise tf.errors.InternalError(None, None, "the path %s does't have read, write permissions." % path)
    # CANN DumpConfig docs (6.0.1, TF adapter 8.0): enable_dump and enable_dump_debug cannot both be True.
    if enable_dump and enable_debug:
        raise tf.errors.InternalError(None, None, "enable_dump and enable_dump_debug cannot be enabled together")
    # npu_attrs.cc: LOG(FATAL) on a dump_mode / dump_debug_mode outside these lists.
    if enable_dump and params["dump_mode"].s.decode() not in ("input", "output", "all"):
        _abort("dump mode should be one of the list:[input, output, all]")
    if enable_debug and "dump_debug_mode" in params and \
            params["dump_debug_mode"].s.decode() not in ("aicore_overflow", "atomic_overflow", "all"):
        _abort("dump debug mode should be one of the list:[aicore_overflow, atomic_overflow, all]")
    # CANN 5/6 profiling docs: the "output" directory of profiling_options must exist beforehand.
    if "profiling_mode" in params and params["profiling_mode"].b and "profiling_options" in params:
        output = json.loads(params["profiling_options"].s.decode() or "{}").get("output")
        if output and not os.path.isdir(output):
            raise tf.errors.InternalError(None, None, "profiling output path %s is not directory." % output)


def _pruned_op_types(graph, fetches):
    names = set()
    for fetch in tf.nest.flatten(fetches):
        if isinstance(fetch, (tf.Tensor, tf.Operation)):
            names.add(fetch.op.name if isinstance(fetch, tf.Tensor) else fetch.name)
        elif isinstance(fetch, str):
            names.add(fetch.split(":")[0])
    if not names:
        return set()
    sub = tf.compat.v1.graph_util.extract_sub_graph(graph.as_graph_def(add_shapes=False), sorted(names))
    return {node.op for node in sub.node}


def check_run(sess, params, fetches):
    """Each run's pruned graph (om_partition_subgraphs_pass.cc ProcessGraph, only with use_off_line)."""
    if "use_off_line" in params and not params["use_off_line"].b:
        return
    loops = params["iterations_per_loop"].i if "iterations_per_loop" in params else 1
    if loops == 1:
        return
    cache = sess.__dict__.setdefault("_fake_npu_checked", set())
    key = (sess.graph.version, repr(fetches))
    if key in cache:
        return
    # om_partition_subgraphs_pass.cc: LOG(FATAL) "iterator_per_loop only support 1 when using OneShotIterator"
    if "OneShotIterator" in _pruned_op_types(sess.graph, fetches):
        _abort("iterator_per_loop only support 1 when using OneShotIterator")
    cache.add(key)


BaseSession = tf.compat.v1.Session.__mro__[1]   # tensorflow.python.client.session.BaseSession
_original_run = BaseSession.run


def _checked_run(self, fetches, feed_dict=None, options=None, run_metadata=None):
    params = npu_parameters(getattr(self, "_config", None))
    if params is not None:
        if not self.__dict__.get("_fake_npu_options_checked"):
            check_options(params)
            self._fake_npu_options_checked = True
        check_run(self, params, fetches)
    return _original_run(self, fetches, feed_dict, options, run_metadata)


def install():
    BaseSession.run = _checked_run
