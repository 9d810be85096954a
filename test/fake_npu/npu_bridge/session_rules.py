"""What the adapter's C++ graph passes check on every Session.run of a session configured with NpuOptimizer.

The real checks run inside `_tf_adapter.so` (tf_adapter/util/npu_attrs.cc SetNpuOptimizerAttr,
tf_adapter/optimizers/om_partition_subgraphs_pass.cc ProcessGraph). Here they wrap BaseSession.run.
"""
import atexit
import json
import os
import sys

import numpy as np

from common.tf_compat import tf
from npu_bridge import graph_rules


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


class GraphRuleError(tf.errors.FailedPreconditionError):
    """A run the device would fail, or silently get wrong, by a rule of graph_rules.py."""

    def __init__(self, finding):
        super(GraphRuleError, self).__init__(None, None, "fake_npu rule %d: %s: %s" % (
            finding.rule, finding.message, ", ".join(finding.ops[:5])))
        self.finding = finding


_COLLECTED = {"graphs": [], "runs": {}}


def _collect(entry):
    """FAKE_NPU_COLLECT=<file>: findings are written there (JSON lines), not raised (common.npu_check)."""
    path = os.environ.get("FAKE_NPU_COLLECT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")
    return bool(path)


def _collect_graph(sess, names):
    """Collect mode: note the run and the graph; after FAKE_NPU_REPEATS runs of one signature, the GetNexts and
    control flow of the whole graph (validation built beside training, not run yet) are written and the process
    ends (a check needs a step or two, not the training)."""
    if not os.environ.get("FAKE_NPU_COLLECT"):
        return
    if sess.graph not in _COLLECTED["graphs"]:
        _COLLECTED["graphs"].append(sess.graph)
    key = (id(sess.graph), tuple(names))
    _COLLECTED["runs"][key] = _COLLECTED["runs"].get(key, 0) + 1
    limit = int(os.environ.get("FAKE_NPU_REPEATS", "0") or 0)
    if limit and _COLLECTED["runs"][key] >= limit:
        scan_graphs()
        _collect({"stopped": True, "runs": sum(_COLLECTED["runs"].values())})
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def scan_graphs():
    for graph in _COLLECTED["graphs"]:
        names = [op.name for op in graph.get_operations() if op.type == "IteratorGetNext" or
                 op.type in graph_rules.V2_CONTROL_FLOW]
        findings = graph_rules.analyse(graph, names, {"enable_data_pre_proc": _Value(b=True),
                                                      "iterations_per_loop": _Value(i=1)})
        _collect({"graph_scan": True, "fetches": names, "feeds": [], "findings": [f.as_dict() for f in findings],
                  "summaries": sorted(op.name for op in graph.get_operations()
                                      if op.type in graph_rules.SUMMARY_OPS)})


class _Value(object):
    """An AttrValue stand-in for graph_rules._param."""

    def __init__(self, b=None, i=None):
        self.b, self.i = b, i

    def WhichOneof(self, _):
        return "i" if self.i is not None else "b"


def _enforce(findings):
    for finding in findings:
        if finding.breaks and finding.rule == 1:
            # the host GetNext reads kernels/dpgroup_dataset_op.cc's dataset: end_of_sequence at once
            raise tf.errors.OutOfRangeError(None, None, "End of sequence (fake_npu rule 1: %s: %s)"
                                            % (finding.message, ", ".join(finding.ops[:5])))
        if finding.breaks:
            raise GraphRuleError(finding)


def check_run(sess, params, names, feeds):
    """Each run's pruned graph (om_partition_subgraphs_pass.cc ProcessGraph, only with use_off_line)."""
    if "use_off_line" in params and not params["use_off_line"].b:
        return
    loops = params["iterations_per_loop"].i if "iterations_per_loop" in params else 1
    _collect_graph(sess, names)
    seen = sess.__dict__.setdefault("_fake_npu_signatures", {})
    key = (sess.graph.version, tuple(names), tuple(sorted(feeds)))
    if key not in seen:
        ops = graph_rules.pruned_ops(sess.graph, names)
        # om_partition_subgraphs_pass.cc: LOG(FATAL) "iterator_per_loop only support 1 when using OneShotIterator"
        if loops > 1 and any(op.type == "OneShotIterator" for op in ops):
            _abort("iterator_per_loop only support 1 when using OneShotIterator")
        findings = graph_rules.analyse(sess.graph, names, params)
        seen[key] = (findings, feeds)
        if _collect({"fetches": list(names), "feeds": sorted(feeds), "findings": [f.as_dict() for f in findings],
                     "device_ops": sorted({op.type for op in ops if not graph_rules.is_host_op(op)})}):
            return
        _enforce(findings)
        return
    first = seen[key][1]
    changed = graph_rules.feed_shape_changes(first, feeds)
    if changed:
        # mirrors tf_adapter/kernels/geop_npu.cc ComputeAsync: "if input shapes changed" -> a new graph per shape
        finding = graph_rules.Finding(4, True, "a host-fed input changed shape (%s now %s): the device compiles a "
                                      "new graph per shape, or fails on older adapters"
                                      % (changed[0], feeds[changed[0]]), changed)
        if not _collect({"fetches": list(names), "feeds": sorted(feeds), "findings": [finding.as_dict()]}):
            raise GraphRuleError(finding)
        seen[key] = (seen[key][0], feeds)


def _checked_callable(sess, params, callable_options, run):
    """Keras runs its steps through callables, not Session.run: the same rules per call."""
    names = list(callable_options.fetch) + list(callable_options.target)
    feeds = list(callable_options.feed)

    def call(*args, **kwargs):
        check_run(sess, params, names, {name: tuple(np.shape(value)) for name, value in zip(feeds, args)})
        return saturate(run(*args, **kwargs))
    return call


BaseSession = tf.compat.v1.Session.__mro__[1]   # tensorflow.python.client.session.BaseSession
_original_run = BaseSession.run
_original_make_callable = BaseSession._make_callable_from_options


def _checked_run(self, fetches, feed_dict=None, options=None, run_metadata=None):
    params = npu_parameters(getattr(self, "_config", None))
    if params is not None:
        if not self.__dict__.get("_fake_npu_options_checked"):
            check_options(params)
            self._fake_npu_options_checked = True
        check_run(self, params, graph_rules.fetch_names(fetches), graph_rules.feed_shapes(feed_dict))
        return saturate(_original_run(self, fetches, feed_dict, options, run_metadata))
    return _original_run(self, fetches, feed_dict, options, run_metadata)


def _saturated(value):
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        limit = np.finfo(value.dtype).max
        return np.where(np.isnan(value), limit, np.clip(value, -limit, limit)).astype(value.dtype)
    if isinstance(value, (float, np.floating)):
        return type(value)(_saturated(np.asarray(value))[()])
    return value


def saturate(result):
    """What the host fetches from the device: no Inf or NaN."""
    # mirrors CANN's TF 1.15 migration guide, system constraints: Ascend 910 saturates on overflow (±max, no Inf/NaN)
    return tf.nest.map_structure(_saturated, result)


def _checked_make_callable(self, callable_options):
    run = _original_make_callable(self, callable_options)
    params = npu_parameters(getattr(self, "_config", None))
    if params is None:
        return run
    return _checked_callable(self, params, callable_options, run)


def install():
    if os.environ.get("FAKE_NPU_COLLECT"):
        atexit.register(scan_graphs)     # a run that ends before FAKE_NPU_REPEATS: its graphs still scanned
    BaseSession.run = _checked_run
    BaseSession._make_callable_from_options = _checked_make_callable
