"""Porting precision: a reference dump of one training step, and the command line that compares two dumps.

Ascend's accuracy workflow for TF 1.15 ports: derandomise both sides, dump every op output of one step on the
CPU/GPU reference and on the NPU, compare op by op, read down to the first op that disagrees.

    dump = StepDump.from_options(npu_options)          # --reference_dump=DIR --reference_dump_step=N
    out = dump.run(sess, fetches, step, loss=loss)     # the training loop's sess.run at every step
    callbacks.append(dump.keras_callback())            # Keras loops

    python -m common.precision compare REFERENCE CANDIDATE [--cosine 0.99 --red 0.05] [--output result.csv]
    python -m common.precision compare RESULT.csv      # msaccucmp's result: its first failing row
    python -m common.precision numerics DUMP           # first non-finite op; fp32 values beyond fp16's range

Off Ascend the step's outputs come from TensorFlow's own debugger (tfdbg's DebugIdentity watches, a file://
debug URL): the values the kernels really produced, in the order they ran. On the NPU route the same flags set
the adapter's data dump of that step (common.npu_session), which msaccucmp compares with this directory.
"""
import csv
import os
import re
import shutil
import sys

import numpy as np

from common.errors import UserError

# MindStudio "Dump File Naming Conventions" (hiascend.com, Model Accuracy Analyzer): the .npy files of a
# TensorFlow reference are {op_name}.{output_index}.{timestamp}.npy, op_name within [A-Za-z0-9_-], a 16-digit
# timestamp, all in one flat directory (msaccucmp compare -g DIR).
NPY_NAME = re.compile(r"^(?P<op>[A-Za-z0-9_-]+)\.(?P<slot>[0-9]+)\.(?P<ts>[0-9]{16})\.npy$")
# The same guide's NPU dump converted to numpy (msaccucmp convert): {op_type}.{op_name}.{task_id}.{stream_id}
# .{timestamp}.output.{index}.npy; only outputs are compared here.
NPU_NPY_NAME = re.compile(r"^(?P<type>[A-Za-z0-9_-]+)\.(?P<op>[A-Za-z0-9_-]+)\.(?:[0-9]+\.)*(?P<ts>[0-9]{16})"
                          r"\.output\.(?P<slot>[0-9]+)\.npy$")
MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("order", "file", "tensor", "op_type", "dtype", "shape", "inputs", "role", "step",
                    "tf_version", "route", "precision")
# FusedBatchNormV3's reserve_space_3 (and oneDNN's fused FusedBatchNormEx's): a scratch buffer whose contents no
# kernel defines (uninitialised memory, oneDNN's workspace, another size on each stack).
UNDEFINED_OUTPUTS = (re.compile(r"FusedBatchNorm(V3|Ex)$"), 5)
_RAW = ".tfdbg_raw"    # tfdbg's own dump tree, inside DIR while the step runs, removed once converted


def op_file_name(node_name):
    """A graph node's name as Ascend's tools read it: '/' and every other character outside [A-Za-z0-9_-]
    becomes '_'."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", node_name)


def npy_name(node_name, slot, timestamp_us):
    return "%s.%d.%016d.npy" % (op_file_name(node_name), slot, timestamp_us % 10 ** 16)


class StepDump(object):
    """Dump every op output of one training step into a flat directory, Ascend's reference layout.

    step counts as the adapter's dump_step does: the training step that starts at global step N (0 = the first).
    """

    def __init__(self, directory, step, route="", precision=""):
        self.directory = os.path.abspath(directory) if directory else ""
        self.step = int(step)
        self.route = route
        self.precision = precision
        self.done = False
        if self.step < 0:
            raise UserError("--reference_dump_step must be a step number >= 0, got %d" % self.step)

    @classmethod
    def from_options(cls, options, chief=True):
        """The dump the run's NpuOptions ask for; off when --reference_dump is empty, on the NPU route, where
        the adapter writes it (npu_session sets dump_step), and on the ranks but the chief of a data-parallel run."""
        from common import fallback, npu_session
        directory = getattr(options, "reference_dump", "") or ""
        if not directory or not chief or npu_session.on_npu():
            return cls("", 0)
        precision = fallback.fallback_precision(options)[0]
        route = "GPU" if fallback.gpus() else "CPU"
        dump = cls(directory, getattr(options, "reference_dump_step", 0), route=route, precision=precision)
        print("reference dump: every op output of step %d will go to %s (when the run reaches it)"
              % (dump.step, dump.directory), flush=True)
        return dump

    @property
    def enabled(self):
        return bool(self.directory)

    def due(self, step, per_run=1):
        """True when the run starting at global step `step` (and covering per_run steps) is the dumped one."""
        return self.enabled and not self.done and step <= self.step < step + per_run

    def run(self, sess, fetches, step, feed_dict=None, loss=None, per_run=1):
        """sess.run(fetches): the dumped step's run also writes every op output."""
        if not self.due(step, per_run):
            return sess.run(fetches, feed_dict=feed_dict)
        from common.tf_compat import tf
        options, raw = self._watch(sess.graph)
        metadata = tf.compat.v1.RunMetadata()
        result = sess.run(fetches, feed_dict=feed_dict, options=options, run_metadata=metadata)
        self._convert(raw, metadata, sess.graph, loss)
        return result

    def _prepare(self):
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as err:
            raise UserError("cannot create --reference_dump=%s: %s" % (self.directory, err.strerror))
        stale = [name for name in os.listdir(self.directory) if NPY_NAME.match(name) or name == MANIFEST]
        if stale:   # two steps' files in one directory would match by name and mislead the comparison
            raise UserError("--reference_dump=%s already holds a dump (%d files): give an empty or new directory"
                            % (self.directory, len(stale)))
        raw = os.path.join(self.directory, _RAW)
        shutil.rmtree(raw, ignore_errors=True)
        return raw

    def _watch(self, graph):
        from common.tf_compat import debugger, tf
        raw = self._prepare()
        options = tf.compat.v1.RunOptions(output_partition_graphs=True)
        debugger()[0].watch_graph(options, graph, debug_urls=["file://" + raw])
        return options, raw

    def _convert(self, raw, metadata, graph, loss=None):
        from common.tf_compat import debugger
        dump = debugger()[1].DebugDumpDir(raw, partition_graphs=metadata.partition_graphs or None, validate=False)
        nodes = _node_table(metadata.partition_graphs, graph)
        loss_name = loss.name if loss is not None and hasattr(loss, "name") else ""
        rows = []
        data = sorted((d for d in dump.dumped_tensor_data if d.debug_op == "DebugIdentity"),
                      key=lambda d: (d.timestamp, d.node_name, d.output_slot))
        used = set()
        for datum in data:
            value = datum.get_tensor()
            if not isinstance(value, np.ndarray) or value.dtype == object:
                continue    # uninitialised, string or resource tensors: nothing to compare
            op_type, inputs = nodes.get(datum.node_name, ("", ()))
            if UNDEFINED_OUTPUTS[0].search(op_type) and datum.output_slot == UNDEFINED_OUTPUTS[1]:
                continue
            stamp = datum.timestamp
            while npy_name(datum.node_name, datum.output_slot, stamp) in used:
                stamp += 1   # two outputs in the same microsecond: keep names unique and the order
            name = npy_name(datum.node_name, datum.output_slot, stamp)
            used.add(name)
            np.save(os.path.join(self.directory, name), value)
            tensor = "%s:%d" % (datum.node_name, datum.output_slot)
            rows.append({"order": len(rows), "file": name, "tensor": tensor, "op_type": op_type,
                         "dtype": str(value.dtype), "shape": "x".join(str(d) for d in value.shape),
                         "inputs": ";".join(inputs), "role": "loss" if tensor == loss_name else "",
                         "step": self.step, "tf_version": _tf_version(), "route": self.route,
                         "precision": self.precision})
        shutil.rmtree(raw, ignore_errors=True)
        write_manifest(self.directory, rows)
        self.done = True
        print("reference dump: step %d, %d op outputs in %s (%s)"
              % (self.step, len(rows), self.directory, MANIFEST), flush=True)

    def keras_callback(self, backend):
        """A Keras callback dumping the training batch at global step `self.step` (counted over epochs)."""
        return _keras_dump_callback(self, backend)


def derandomise(config, switches, options, default_seed=0):
    """--deterministic, the derandomised run Ascend's accuracy workflow starts from: set each (attribute, value,
    what it is) of `switches` on config, fix config.seed when it is unset, and say in one line what was switched
    off. Returns True when the run is deterministic."""
    if not getattr(options, "deterministic", False):
        return False
    switched, already = [], []
    for attribute, value, what in switches:
        if getattr(config, attribute) != value:
            switched.append("%s (was %s=%s)" % (what, attribute, getattr(config, attribute)))
            setattr(config, attribute, value)
        else:
            already.append(what)
    if getattr(config, "seed", 0) is None:
        config.seed = default_seed
        switched.append("the random seed (now %d)" % default_seed)
    print("deterministic run: seed %s; switched off: %s%s; starting weights: the run directory's checkpoint "
          "when it has one, else the seeded initialiser" % (getattr(config, "seed", "fixed"),
                                                            ", ".join(switched) or "nothing (all off already)",
                                                            "; already off: " + ", ".join(already) if already
                                                            else ""), flush=True)
    return True


def _tf_version():
    from common.tf_compat import tf
    return tf.__version__


def _node_table(partition_graphs, graph):
    """{node name: (op type, input tensor names)}: the partition graphs (what ran), then the Python graph."""
    table = {}
    for op in graph.get_operations():
        table[op.name] = (op.type, tuple(t.name for t in op.inputs))
    for partition in partition_graphs or ():
        for node in partition.node:
            inputs = tuple(_watched_input(i) for i in node.input if not i.startswith("^"))
            table[node.name] = (node.op, inputs)
    return table


def _watched_input(name):
    """A partition graph's input as the tensor it reads: tfdbg's watch puts a __copy_<node>_<slot> between."""
    copied = re.match(r"^__copy_(.+)_([0-9]+)(?::0)?$", name)
    if copied:
        return "%s:%s" % copied.groups()
    return name if ":" in name else name + ":0"


def write_manifest(directory, rows):
    with open(os.path.join(directory, MANIFEST), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _keras_dump_callback(dump, backend):
    """Keras 2's session functions take RunOptions at build time: at the dumped batch the train function is
    rebuilt with tfdbg's watches, then restored."""
    from common.tf_compat import tf

    class ReferenceDumpCallback(tf.keras.callbacks.Callback):
        def __init__(self):
            super(ReferenceDumpCallback, self).__init__()
            self._saved = None
            self._step = 0

        def on_train_begin(self, logs=None):   # read once: a read per batch would add a session call to each
            self._step = int(backend.get_value(self.model.optimizer.iterations))

        def on_train_batch_begin(self, batch, logs=None):
            self._step += 1
            if not dump.due(self._step - 1):
                return
            function = self.model.train_function
            options, raw = dump._watch(backend.get_session().graph)
            self._saved = (function, function.run_options, function.run_metadata, raw)
            function.run_options, function.run_metadata = options, tf.compat.v1.RunMetadata()
            function._callable_fn = None   # rebuilt with the new options on this call

        def on_train_batch_end(self, batch, logs=None):
            if self._saved is None:
                return
            function, options, metadata, raw = self._saved
            self._saved = None
            run_metadata = function.run_metadata
            function.run_options, function.run_metadata = options, metadata
            function._callable_fn = None
            loss = getattr(self.model, "total_loss", None)
            dump._convert(raw, run_metadata, backend.get_session().graph, loss)

    return ReferenceDumpCallback()


def main(argv=None):
    from common import precision_compare
    return precision_compare.main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
