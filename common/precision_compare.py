"""`python -m common.precision compare|numerics`: op-by-op comparison of two dumps, msaccucmp result reading, and
the first non-finite op of a dumped step. NumPy only: it runs where the dumps were copied, without TensorFlow."""
import csv
import math
import os
import re

import numpy as np

from common.errors import ArgumentParser, UserError, main_guard
from common.precision import MANIFEST, NPU_NPY_NAME, NPY_NAME, op_file_name

# msaccucmp's result columns (hiascend.com Model Accuracy Analyzer, "Parameters in a Complete Model Comparison
# Result"): the reference (GPU/CPU .npy) is GroundTruth, the port is NPUDump.
METRICS = ("CosineSimilarity", "MaxAbsoluteError", "AccumulatedRelativeError", "RelativeEuclideanDistance",
           "KullbackLeiblerDivergence", "StandardDeviation", "MeanAbsoluteError", "RootMeanSquareError",
           "MaxRelativeError", "MeanRelativeError")
COLUMNS = ("Index", "OpType", "NPUDump", "DataType", "Address", "GroundTruth", "DataType", "TensorIndex", "Shape") \
    + METRICS + ("Result",)
FP16_MAX = 65504.0
# Ops whose output is the variable they update (a ref): with two updates of one variable in a step (batch norm
# shared by two towers) its dumped value depends on which ran first, not on precision.
ALIASING_UPDATES = ("Assign", "AssignAdd", "AssignSub")
_TINY = 1e-30


class Entry(object):
    """One dumped tensor: key (op file name, output index, occurrence) and where it sits in execution order."""

    def __init__(self, path, op, slot, order, tensor="", op_type="", inputs=(), role=""):
        self.path, self.op, self.slot, self.order = path, op, int(slot), order
        self.tensor = tensor or "%s:%d" % (op, self.slot)
        self.op_type, self.inputs, self.role = op_type, tuple(inputs), role
        self.key = None
        self.from_manifest = False    # a TensorFlow dump of ours: its op types are TensorFlow's
        self._value = None

    def value(self):
        if self._value is None:
            try:
                self._value = np.load(self.path, allow_pickle=False)
            except (OSError, ValueError, EOFError) as err:   # missing, truncated or not an .npy file
                raise UserError("cannot read %s: %s" % (self.path, err))
        return self._value


def load_dump(directory):
    """The dump's tensors in execution order: manifest.csv's order, else the file names' timestamps."""
    if not os.path.isdir(directory):
        raise UserError("%s is not a dump directory" % directory)
    manifest = os.path.join(directory, MANIFEST)
    entries = _from_manifest(directory, manifest) if os.path.exists(manifest) else _from_names(directory)
    if not entries:
        raise UserError("%s holds no .npy dump files named {op_name}.{output_index}.{timestamp}.npy" % directory)
    seen = {}
    for entry in entries:
        base = (entry.op, entry.slot)
        entry.key = base + (seen.get(base, 0),)   # the n-th output of the same op in one step (loops)
        seen[base] = seen.get(base, 0) + 1
    return entries


def _from_manifest(directory, manifest):
    entries = []
    try:
        with open(manifest, newline="") as f:
            for row in csv.DictReader(f):
                match = NPY_NAME.match(row["file"])
                if not match:
                    raise UserError("%s: %r is not an Ascend .npy dump name" % (manifest, row["file"]))
                entries.append(Entry(os.path.join(directory, row["file"]), match.group("op"), match.group("slot"),
                                     int(row["order"]), row["tensor"], row["op_type"],
                                     [i for i in row["inputs"].split(";") if i], row.get("role", "")))
    except (KeyError, ValueError, csv.Error) as err:
        raise UserError("%s is not a reference dump manifest (%s)" % (manifest, err))
    for entry in entries:
        entry.from_manifest = True
    return sorted(entries, key=lambda e: e.order)


def _from_names(directory):
    found = []
    for name in os.listdir(directory):
        match = NPY_NAME.match(name) or NPU_NPY_NAME.match(name)
        if match:
            found.append((int(match.group("ts")), name, match))
    found.sort()
    return [Entry(os.path.join(directory, name), m.group("op"), m.group("slot"), i,
                  op_type=m.groupdict().get("type") or "") for i, (_, name, m) in enumerate(found)]


def metrics(candidate, reference):
    """msaccucmp's measures of candidate (NPUDump) against reference (GroundTruth), in float64.

    Cosine of two all-zero tensors is 1 (identical) and of one all-zero tensor 0; relative errors divide by
    |reference| where it is non-zero; KL compares |x| normalised to sum 1 (reference first).
    """
    a = candidate.astype(np.float64).ravel()
    g = reference.astype(np.float64).ravel()
    diff = np.abs(a - g)
    norm_a, norm_g = np.linalg.norm(a), np.linalg.norm(g)
    if norm_a == 0 and norm_g == 0:
        cosine = 1.0
    elif norm_a == 0 or norm_g == 0:
        cosine = 0.0
    else:
        cosine = float(np.dot(a, g) / (norm_a * norm_g))
    nonzero = g != 0
    relative = diff[nonzero] / np.abs(g[nonzero])
    p, q = np.abs(g) + _TINY, np.abs(a) + _TINY
    p, q = p / p.sum(), q / q.sum()
    return {
        "CosineSimilarity": cosine,
        "MaxAbsoluteError": float(diff.max()) if diff.size else 0.0,
        "AccumulatedRelativeError": float(relative.sum()),
        "RelativeEuclideanDistance": float(np.linalg.norm(a - g) / norm_g) if norm_g else float(norm_a > 0),
        "KullbackLeiblerDivergence": float(np.sum(p * np.log(p / q))) if a.size else 0.0,
        "StandardDeviation": "(%.6g;%.6g),(%.6g;%.6g)" % (a.mean(), a.std(), g.mean(), g.std()) if a.size else "",
        "MeanAbsoluteError": float(diff.mean()) if diff.size else 0.0,
        "RootMeanSquareError": float(np.sqrt(np.mean(diff ** 2))) if diff.size else 0.0,
        "MaxRelativeError": float(relative.max()) if relative.size else 0.0,
        "MeanRelativeError": float(relative.mean()) if relative.size else 0.0,
    }


class Comparison(object):
    def __init__(self, reference, candidate, cosine, red, atol=0.0):
        self.reference, self.cosine, self.red, self.atol = reference, cosine, red, atol
        self.candidate = {e.key: e for e in candidate}
        self.results = {}     # reference key -> (metrics or None, failure reason or "")
        self.retyped = []     # same name, another op type, other values: not the same computation
        self.reshaped = []    # same name, another number of elements

    def check(self, ref):
        if ref.key in self.results:
            return self.results[ref.key]
        other = self.candidate.get(ref.key)
        if other is None:
            result = (None, "")
        else:
            a, g = other.value(), ref.value()
            if a.shape != g.shape and a.size == g.size:
                a = a.reshape(g.shape)     # NPU dumps may carry another layout of the same elements
            if a.shape != g.shape:   # another graph around this name (msaccucmp leaves such rows NaN too)
                self.reshaped.append("%s %s vs %s" % (ref.tensor, a.shape, g.shape))
                result = (None, "")
            elif not (np.issubdtype(g.dtype, np.number) or g.dtype == bool):
                result = (None, "")
            else:
                result = self._judge(a, g)
                if result[1] and _other_computation(ref, other):
                    self.retyped.append(ref.tensor)
                    result = (None, "")
        self.results[ref.key] = result
        return result

    def _judge(self, a, g):
        finite_a, finite_g = np.isfinite(a.astype(np.float64)), np.isfinite(g.astype(np.float64))
        if not np.array_equal(finite_a, finite_g):
            return metrics(np.where(finite_a, a, 0), np.where(finite_g, g, 0)), "non-finite values differ"
        m = metrics(np.where(finite_a, a, 0), np.where(finite_g, g, 0))
        if m["MaxAbsoluteError"] <= self.atol:
            return m, ""    # round-off around zero (a gradient zero in exact arithmetic): no direction to compare
        if m["CosineSimilarity"] < self.cosine:
            return m, "cosine %.6f < %g" % (m["CosineSimilarity"], self.cosine)
        if m["RelativeEuclideanDistance"] > self.red:
            return m, "relative Euclidean distance %.4g > %g" % (m["RelativeEuclideanDistance"], self.red)
        return m, ""

    def by_tensor(self, tensor, before):
        """The reference entry of tensor name 'node:slot' last produced before execution position `before`."""
        node, _, slot = tensor.rpartition(":")
        key = (op_file_name(node), int(slot or 0))
        found = [e for e in self.reference if (e.op, e.slot) == key and e.order < before]
        return found[-1] if found else None


def _other_computation(ref, other):
    """Between two TensorFlow dumps, one name can be another computation: grappler names the nodes it makes
    after the graph's, and TF 1.15 and 2.x build some gradients otherwise. Another op type or other inputs say
    so; an assignment's output is the variable at dump time. (Not for NPU dumps: their op types are the NPU's
    own, e.g. BNTrainingUpdate.)"""
    if not (ref.from_manifest and other.from_manifest):
        return False
    if _kind(ref.op_type) in ALIASING_UPDATES:
        return True     # the variable itself, read when dumped: after the step's other updates of it, or before
    if _kind(ref.op_type) and _kind(other.op_type) and _kind(ref.op_type) != _kind(other.op_type):
        return True
    return ref.inputs != other.inputs


def _kind(op_type):
    """An op type without oneDNN's prefixes (_MklMatMul and _MklNativeFusedMatMul run MatMul, _FusedMatMul)."""
    return re.sub(r"^_(MklNative|Mkl)?", "", op_type)


def compare_dirs(reference_dir, candidate_dir, cosine, red, output, atol=0.0):
    reference, candidate = load_dump(reference_dir), load_dump(candidate_dir)
    comparison = Comparison(reference, candidate, cosine, red, atol)
    rows, first = [], None
    for ref in reference:
        m, why = comparison.check(ref)
        if m is None and not why:
            continue
        if why and first is None:
            first = ref
        rows.append(_row(len(rows), ref, comparison.candidate.get(ref.key), m, why))
    _write_rows(output, rows)
    compared = sum(1 for r in rows if r["Result"] != "unmatched")
    print("compared %d tensors present in both dumps (%d in the reference, %d in the candidate); result: %s"
          % (compared, len(reference), len(candidate), output), flush=True)
    if comparison.retyped:
        print("not compared: %d tensors named alike but made by other op types or from other inputs (graph "
              "rewrites), or variables assigned twice in the step, e.g. %s"
              % (len(comparison.retyped), comparison.retyped[0]))
    if comparison.reshaped:
        print("not compared: %d tensors named alike but of other sizes, e.g. %s"
              % (len(comparison.reshaped), comparison.reshaped[0]))
    if not compared:
        raise UserError("no tensor of %s matches one of %s by name and output index" % (candidate_dir, reference_dir))
    if first is None:
        print("PASS: every compared tensor has cosine >= %g and relative Euclidean distance <= %g, or differs by "
              "at most %g" % (cosine, red, atol))
        return 0
    _verdict(comparison, first)
    return 1


def _row(index, ref, other, m, why):
    values = [index, ref.op_type, other.tensor if other else "*", str(other.value().dtype) if other else "NaN",
              "NaN", ref.tensor, str(ref.value().dtype), "%s:output:%d" % (ref.tensor.rpartition(":")[0], ref.slot),
              "[%s]" % ",".join(str(d) for d in ref.value().shape)]
    values += [("%.6g" % m[k] if isinstance(m[k], float) else m[k]) if m else "NaN" for k in METRICS]
    values.append("FAIL: " + why if why else ("pass" if m else "unmatched"))
    return dict(zip(range(len(values)), values), Result=values[-1])


def _write_rows(output, rows):
    try:
        with open(output, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            for row in rows:
                writer.writerow([row[i] for i in range(len(COLUMNS))])
    except OSError as err:
        raise UserError("cannot write %s: %s" % (output, err.strerror))


def _verdict(comparison, first):
    m, why = comparison.results[first.key]
    print("FAIL: first op past the thresholds, in the reference's execution order: %s (%s, #%d): %s"
          % (first.tensor, first.op_type or "op type unknown", first.order, why))
    differing, agreeing = [], []
    for tensor in first.inputs:
        ref = comparison.by_tensor(tensor, first.order)
        m_in, why_in = comparison.check(ref) if ref is not None else (None, "")
        if m_in is None:
            continue    # not dumped, or not in the candidate
        note = "%s: cosine %.6f, max abs error %.3g" % (tensor, m_in["CosineSimilarity"], m_in["MaxAbsoluteError"])
        # An input within --atol can still point elsewhere: round-off around zero, which Adam or RMSProp scale up.
        (differing if why_in or m_in["CosineSimilarity"] < comparison.cosine else agreeing).append(note)
    if differing:
        print("input mismatch: its inputs already differ (%s): look further up, or, if they differ by round-off "
              "only (within --atol), at what magnifies it" % "; ".join(differing))
    elif agreeing:
        print("its inputs agree (%s): this op itself computes differently" % "; ".join(agreeing))
    elif first.inputs:
        print("its inputs (%s) were not compared" % ", ".join(first.inputs))
    losses = [e for e in comparison.reference if e.role == "loss"]
    if not losses:
        print("the reference marks no loss tensor: whether it reaches the loss is unknown")
        return
    loss = losses[-1]
    loss_m, loss_why = comparison.check(loss)
    if loss_m is None:
        print("the loss %s is not in the candidate dump" % loss.tensor)
    else:
        print("the difference %s the loss %s (cosine %.6f, relative Euclidean distance %.4g)"
              % ("spreads to" if loss_why else "stays local: it does not reach", loss.tensor,
                 loss_m["CosineSimilarity"], loss_m["RelativeEuclideanDistance"]))


def read_msaccucmp(path, cosine, red):
    """Print the first row of an msaccucmp result CSV past the thresholds (its rows are in execution order)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError("cannot read %s: %s" % (path, err))
    if not rows or "CosineSimilarity" not in rows[0]:
        raise UserError("%s is not an msaccucmp result (no CosineSimilarity column)" % path)
    for row in rows:
        cos, dist = _number(row.get("CosineSimilarity")), _number(row.get("RelativeEuclideanDistance"))
        if (cos is not None and cos < cosine) or (dist is not None and dist > red):
            print("FAIL: first failing row: Index %s, OpType %s, NPUDump %s, GroundTruth %s, TensorIndex %s: "
                  "CosineSimilarity %s, RelativeEuclideanDistance %s"
                  % tuple(row.get(k, "") for k in ("Index", "OpType", "NPUDump", "GroundTruth", "TensorIndex",
                                                   "CosineSimilarity", "RelativeEuclideanDistance")))
            return 1
    print("PASS: %d rows, every cosine >= %g and relative Euclidean distance <= %g" % (len(rows), cosine, red))
    return 0


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None     # msaccucmp writes NaN or '*' where nothing was compared
    return None if math.isnan(value) else value


def numerics(directory, limit=20):
    """The first dumped op (execution order) whose output is not finite while its inputs are, with their ranges
    (graph constants holding NaN, and what passes theirs on, listed apart); fp32 tensors
    beyond fp16's range (ops that saturate to +-65504 on an Ascend 910)."""
    entries = load_dump(directory)
    first = None
    beyond, constants, non_finite = [], [], set()
    for entry in entries:
        value = entry.value()
        if not np.issubdtype(value.dtype, np.floating) or not value.size:
            continue
        finite = np.isfinite(value)
        if not finite.all():
            passed_on = [t for t in entry.inputs if t in non_finite]
            non_finite.add(entry.tensor)
            # A graph constant's NaN is made by no op of the step: TF 2.x's sparse softmax cross-entropy keeps one
            # for labels out of range (a BroadcastTo of it, or grappler's folded Const), selected away later.
            if entry.op_type == "Const" or passed_on and all(t in constants for t in passed_on):
                constants.append(entry.tensor)
            elif first is None and not passed_on:
                first = entry
        if value.dtype == np.float32 and finite.any() and np.abs(value[finite]).max() > FP16_MAX:
            beyond.append((entry, float(np.abs(value[finite]).max())))
    if constants:
        print("left out %d output%s holding NaN/Inf from graph constants (made by no op of the step): %s"
              % (len(constants), "" if len(constants) == 1 else "s", ", ".join(constants[:limit])))
    if first is None:
        print("every floating-point output of the step in %s is finite (%d tensors%s)"
              % (directory, len(entries), ", but the constants above" if constants else ""))
    else:
        bad = first.value()
        print("first non-finite output: %s (%s, #%d): %d NaN, %d Inf of %d values"
              % (first.tensor, first.op_type or "op type unknown", first.order, int(np.isnan(bad).sum()),
                 int(np.isinf(bad).sum()), bad.size))
        table = {e.tensor: e for e in entries if e.order < first.order}
        for tensor in first.inputs:
            entry = table.get(tensor)
            print("  input %s: %s" % (tensor, _range(entry.value()) if entry else "not dumped"))
    if beyond:
        print("%d fp32 tensors exceed fp16's range (|x| > %g), they would saturate on an Ascend 910:"
              % (len(beyond), FP16_MAX))
        for entry, peak in beyond[:limit]:
            print("  %s (%s): max |x| = %.6g" % (entry.tensor, entry.op_type, peak))
    else:
        print("no fp32 tensor exceeds fp16's range (|x| > %g)" % FP16_MAX)
    return 1 if first is not None else 0


def _range(value):
    value = np.asarray(value)
    if not np.issubdtype(value.dtype, np.number) or not value.size:
        return "%s %s" % (value.dtype, value.shape)
    finite = value[np.isfinite(value)] if np.issubdtype(value.dtype, np.floating) else value
    text = "[%.6g, %.6g]" % (finite.min(), finite.max()) if finite.size else "no finite value"
    return "%s %s, %s, %d non-finite" % (value.dtype, list(value.shape), text, value.size - finite.size)


def _parser():
    parser = ArgumentParser(prog="python -m common.precision", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    cmp_ = sub.add_parser("compare", help="compare two dumps op by op, or read an msaccucmp result CSV")
    cmp_.add_argument("reference", help="reference dump directory (GPU/CPU), or an msaccucmp result .csv")
    cmp_.add_argument("candidate", nargs="?", help="candidate dump directory (NPU, or another stack)")
    cmp_.add_argument("--cosine", type=float, default=0.99, help="lowest acceptable cosine similarity")
    cmp_.add_argument("--red", type=float, default=0.05, help="highest acceptable relative Euclidean distance")
    cmp_.add_argument("--atol", type=float, default=1e-6,
                      help="a tensor differing by at most this much passes whatever its cosine (round-off around "
                           "zero); 0 judges every tensor by cosine and distance alone")
    cmp_.add_argument("--output", default="compare_result.csv", help="result CSV (default: ./compare_result.csv)")
    num = sub.add_parser("numerics", help="first non-finite op of a dumped step; fp32 values beyond fp16")
    num.add_argument("dump", help="a --reference_dump directory of the step that went NaN/Inf")
    for p in (cmp_, num):
        p.error = parser.error
    return parser


@main_guard
def main(argv):
    args = _parser().parse_args(argv)
    if args.command == "numerics":
        return numerics(args.dump)
    if args.command != "compare":
        raise UserError("python -m common.precision: give a command, compare or numerics (see --help)")
    if not 0 < args.cosine <= 1 or args.red < 0 or args.atol < 0:
        raise UserError("--cosine must be in (0, 1], --red and --atol >= 0")
    if args.candidate is None:
        if not os.path.isfile(args.reference):
            raise UserError("compare: give REFERENCE and CANDIDATE dump directories, or one msaccucmp result .csv")
        return read_msaccucmp(args.reference, args.cosine, args.red)
    return compare_dirs(args.reference, args.candidate, args.cosine, args.red, args.output, args.atol)
