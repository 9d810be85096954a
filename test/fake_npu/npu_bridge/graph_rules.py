"""What the adapter's graph passes and GE do with the graph of one Session.run (its fetches' pruned graph).

analyse() returns the findings for one run signature (graph, fetches); feed_shape_changes() compares a run's fed
shapes with the signature's first run. session_rules.py enforces the findings that break a run on the device;
with FAKE_NPU_COLLECT naming a file it writes them there (one JSON line per signature) and lets the run go on.
"""
import numpy as np

from common.tf_compat import tf

# Ops the adapter leaves on the host whatever their types: the input pipeline, checkpoint files, summaries.
HOST_OP_PREFIXES = ("Iterator", "MakeIterator", "OneShotIterator", "Save", "Restore", "MergeV2Checkpoints",
                    "ShardedFilename", "StringJoin", "DeleteIterator", "AnonymousIterator")
SUMMARY_OPS = ("ScalarSummary", "HistogramSummary", "ImageSummary", "AudioSummary", "AudioSummaryV2",
               "MergeSummary", "TensorSummary", "TensorSummaryV2")
V2_CONTROL_FLOW = ("While", "StatelessWhile", "If", "StatelessIf", "Case", "StatelessCase")
DEVICE_UNSUPPORTED_TYPES = (tf.float64, tf.complex64, tf.complex128, tf.variant)


class Finding(object):
    """One rule's verdict on a run signature: breaks=True when the run fails or silently misbehaves."""

    def __init__(self, rule, breaks, message, ops=()):
        self.rule, self.breaks, self.message, self.ops = rule, breaks, message, sorted(set(ops))

    def as_dict(self):
        return {"rule": self.rule, "breaks": self.breaks, "message": self.message, "ops": self.ops}

    def __repr__(self):
        return "Finding(%s)" % self.as_dict()


def fetch_names(fetches):
    names = []
    for fetch in tf.nest.flatten(fetches):
        if isinstance(fetch, (tf.Tensor, tf.Operation)):
            names.append(fetch.name)
        elif isinstance(fetch, str):
            names.append(fetch)
        elif hasattr(fetch, "name") and isinstance(getattr(fetch, "name"), str):   # variables
            names.append(fetch.name)
    return names


def pruned_ops(graph, names):
    """The graph's operations a run of these fetch/target names executes (data and control inputs)."""
    graph_def = graph.as_graph_def(add_shapes=False)
    known = {node.name for node in graph_def.node}
    roots = sorted({name.split(":")[0].lstrip("^") for name in names} & known)   # others: TF's own error
    if not roots:
        return []
    sub = tf.compat.v1.graph_util.extract_sub_graph(graph_def, roots)
    return [graph.get_operation_by_name(node.name) for node in sub.node]


def is_host_op(op):
    return op.type.startswith(HOST_OP_PREFIXES) or "Dataset" in op.type or op.type in SUMMARY_OPS


def _param(params, name, default):
    if name not in params:
        return default
    value = params[name]
    return value.i if value.WhichOneof("value") == "i" else value.b


def analyse(graph, names, params):
    """The findings for one run of the fetches `names` in `graph` under the NpuOptimizer `params`."""
    ops = pruned_ops(graph, names)
    found = []
    sink = bool(_param(params, "enable_data_pre_proc", False))
    loops = int(_param(params, "iterations_per_loop", 1))
    getnexts = [op for op in ops if op.type == "IteratorGetNext"]
    sunk = [op for op in getnexts if op.inputs[0].op.type in ("Iterator", "IteratorV2")]
    looped = loops > 1 and any(op.name.split("/")[-1] == "IterationOp" for op in ops)
    if sink:
        # mirrors tf_adapter/optimizers/om_partition_subgraphs_pass.cc: only a GetNext reading Iterator(V2) sinks
        host = [op.name for op in getnexts if op not in sunk]
        if host:
            found.append(Finding(1, True, "IteratorGetNext not reading its Iterator directly (through %s) stays on "
                                 "the host and reads the DPGroupDataset, which is always at its end: OutOfRange"
                                 % ", ".join(sorted({op.inputs[0].op.type for op in getnexts if op not in sunk})),
                                 host))
    unknown = [op.name for op in (sunk if sink else getnexts)
               if not all(t.shape.is_fully_defined() for t in op.outputs)]
    if unknown and looped:
        # mirrors graphengine ge/graph/passes/pass_utils.cc IsNeedTrainIteFlowCtrl: no loop for unknown shapes
        found.append(Finding(3, True, "unknown dimensions in the input of a looped run (iterations_per_loop=%d): GE "
                             "skips the loop, one step per run while the host counts %d" % (loops, loops), unknown))
    elif unknown and sink:
        # mirrors tf_adapter/kernels/geop_npu.cc ComputeAsync: input shapes changed -> rebuild (or fail) the graph
        found.append(Finding(4, True, "unknown dimensions in a sunk input (a batch without drop_remainder or a "
                             "partial last batch): a new graph is compiled per shape, or the run fails", unknown))
    device = [op for op in ops if not is_host_op(op)]
    decoded = [op.name for op in device if any(t.dtype == tf.string for t in op.inputs)
               and any(t.dtype != tf.string and not t.shape.is_fully_defined() for t in op.outputs)]
    if decoded:
        # mirrors tf_adapter/kernels/geop_npu.cc ComputeAsync: string ops stay on the host, their outputs are
        # GeOp inputs, and an input of a new shape (e.g. each image's own size) rebuilds the graph
        found.append(Finding(4, True, "host ops with string inputs feed the device tensors of unknown shape (e.g. "
                             "decoded images of their own sizes): a new graph is compiled per shape", decoded))
    # mirrors CANN "system constraints" (TF 1.15 migration): no float64, complex or variant tensors on the device
    typed = [op.name for op in device if any(t.dtype.base_dtype in DEVICE_UNSUPPORTED_TYPES for t in op.outputs)]
    if typed:
        found.append(Finding(6, True, "float64/complex/variant tensors on the device", typed))
    fetched = [op.outputs[int(n.split(":")[1])] for op in ops for n in names
               if ":" in n and n.split(":")[0] == op.name]
    summaries = [t.op.name for t in fetched if isinstance(t, tf.Tensor) and t.op.type in SUMMARY_OPS]
    if summaries:
        # mirrors CANN TF 1.15 migration docs (summaries in sess.run mode): sunk, their values not returned
        found.append(Finding(8, True, "summary fetched in sess.run mode: its value is not returned to the host "
                             "(write scalars from fetched Python values instead)", summaries))
    prints = [op.name for op in ops if op.type in ("Assert", "Print", "PrintV2")]
    if prints:
        # mirrors tf_adapter/optimizers/om_partition_subgraphs_pass.cc: Assert/Print go to an unread outfeed
        found.append(Finding(8, False, "Assert/Print ops run on the device: nothing reaches the host", prints))
    v2 = [op.name for op in ops if op.type in V2_CONTROL_FLOW]
    if v2:
        # mirrors CANN TF 1.15 migration docs: v1 control flow only (tf.compat.v1.disable_control_flow_v2)
        found.append(Finding(9, True, "v2 control flow ops (While/If/Case) are not supported", v2))
    return found


def feed_shapes(feed_dict):
    """{fed tensor name: shape} of a run's feed_dict."""
    shapes = {}
    for key, value in (feed_dict or {}).items():
        name = key.name if hasattr(key, "name") else str(key)
        try:
            shapes[name] = tuple(np.shape(value))
        except ValueError:      # a ragged list: the feed fails anyway
            shapes[name] = None
    return shapes


def feed_shape_changes(first, now):
    """The fed tensors whose shape differs from the signature's first run."""
    return sorted(name for name, shape in now.items() if name in first and first[name] != shape)
