"""See a run, and compare two: report.html with PNGs beside a wrapper run's logs, and the porting loss check.

    python -m common.report RUN_DIR                      report.html + PNGs written into RUN_DIR
    python -m common.report RUN_DIR RUN_DIR ... [--out DIR]          several runs overlaid on one page
    python -m common.report --compare REFERENCE CANDIDATE [--tolerance 0.01] [--window FIRST:LAST] [--out DIR]

A run directory is a wrapper's output/<device id>/ (rank 0's for data-parallel runs): the log train_<id>.log
with the model's own loss, evaluation and `step_time` lines and the first-line statement of the device route
and the precision that ran; the wrapper's flags (wrapper_flags.txt) and case log (<CaseName>.log); and the
TensorBoard event files under it. Everything is read from those files: numbers on the page are the log's.
The page is plain HTML beside its PNGs (matplotlib, Agg): no script, nothing fetched, it opens from the disk.
Event files are read with TensorBoard's protobuf, installed with TensorFlow, so TensorFlow itself is not loaded.
"""
import html
import json
import math
import os
import re
import struct
import sys
import time
from collections import OrderedDict

from am3 import log_lines as am3_lines
from common import log_lines
from common.errors import ArgumentParser, UserError, main_guard
from mobilenetv3 import log_lines as mobilenet_lines
from mtnet import log_lines as mtnet_lines
from swa import log_lines as swa_lines

REPORT_FILE = "report.html"
DATA_FILE = "report.json"
FLAGS_FILE = "wrapper_flags.txt"     # written by common/ascend_wrapper.sh (wrapper_report)
# Ascend ModelZoo accepts a port whose accuracy is within 1% of its GPU/CPU reference; no published Ascend threshold
# for loss curves was found, so the same 1% bounds the mean relative loss difference (see --tolerance).
DEFAULT_TOLERANCE = 0.01
LOG_NAME = re.compile(r"^train_(\d+)\.log$")
CASE_LOG = re.compile(r"_bs\d+_\d+p_(acc|perf)\.log$")


# ---- the models' log lines (their definitions: <model>/log_lines.py, common/log_lines.py) ----------------------
class Curve(object):
    """The points (x, y) of two fields of one log line, of the lines `keep` (fields -> bool) accepts."""

    def __init__(self, line, x, y, keep=None):
        self.line, self.x, self.y, self.keep = line, x, y, keep

    def search(self, text):
        """The line's fields when `text` is one of this curve's lines, else None."""
        fields = self.line.parse(text)
        return fields if fields is not None and (self.keep is None or self.keep(fields)) else None

    def points(self, lines):
        found = (self.search(text) for text in lines)
        return [(fields[self.x], fields[self.y]) for fields in found if fields is not None]


class ModelLog(object):
    """How one model logs: its loss curve (the wrapper's loss file holds the same losses), evaluation lines and the
    x axes they use. `evals` are functions line -> [(series, x, value, ci95 or None)]."""

    def __init__(self, name, loss, loss_x, evals=(), eval_x="step", eval_y="accuracy", extra_losses=(),
                 lr=None):
        self.name = name
        self.loss = loss
        self.loss_x = loss_x
        self.evals = evals
        self.eval_x = eval_x
        self.eval_y = eval_y
        self.extra_losses = list(extra_losses)
        self.lr = lr


def _evaluation(line, points):
    """An eval extractor: `points(fields)` -> [(series, x, value, ci)] of each line of the kind `line`."""
    def extract(text):
        fields = line.parse(text)
        return points(fields) if fields is not None else []
    return extract


def _swa_run(run):
    return lambda fields: fields["run"] == run


# AM3: validation during training (one series per split), then the test mode's mean with its 95% CI.
_AM3_VALIDATION = _evaluation(am3_lines.VALIDATION, lambda f: [(split, f["step"], value, None)
                                                               for split, value in f["accuracies"].items()])
_AM3_TEST = _evaluation(am3_lines.TEST, lambda f: [("test", f["step"], f["accuracy"], f["ci95"])])
_MTNET_TEST = _evaluation(mtnet_lines.TEST, lambda f: [("test", f["update"], f["mean"], f["ci95"])])
_MOBILENET_VALIDATION = _evaluation(mobilenet_lines.EPOCH, lambda f: [("validation", f["epoch"], f["val_acc"], None)])
# SWA: the averaged model's and the baselines' test accuracies, placed at the last epoch (x None: the caller's
# x of the last loss).
_SWA_FINAL = _evaluation(swa_lines.FINAL, lambda f: [("test " + name, None, value, None) for name, value in f.items()])

MODELS = (
    ModelLog("AM3", loss=Curve(am3_lines.LOSS, "step", "loss"), loss_x="training step",
             evals=(_AM3_VALIDATION, _AM3_TEST), eval_x="training step", eval_y="accuracy (test: mean, 95% CI)"),
    ModelLog("MT-net", loss=Curve(mtnet_lines.LOSS, "iteration", "postloss"), loss_x="meta-training iteration",
             evals=(_MTNET_TEST,), eval_x="inner updates at test time",
             eval_y="test MSE (regression) / accuracy"),
    ModelLog("MobileNetV3", loss=Curve(mobilenet_lines.LOSS, "step", "loss"), loss_x="training step",
             evals=(_MOBILENET_VALIDATION,), eval_x="epoch", eval_y="validation accuracy"),
    ModelLog("SWA", loss=Curve(swa_lines.EPOCH, "epoch", "loss", _swa_run("swa")), loss_x="epoch",
             evals=(_SWA_FINAL,), eval_x="epoch", eval_y="test accuracy",
             extra_losses=(("sgd baseline", Curve(swa_lines.EPOCH, "epoch", "loss", _swa_run("sgd"))),),
             lr=Curve(swa_lines.EPOCH, "epoch", "lr", _swa_run("swa"))),
)


# ---- one run ---------------------------------------------------------------------------------------------------
class Run(object):
    """What a run directory holds, as numbers: series are lists of (x, value) or (x, value, ci95)."""

    def __init__(self, directory):
        self.directory = directory
        self.label = os.path.basename(directory)
        self.log_path = find_log(directory)
        self.model = None
        self.losses = OrderedDict()        # series label -> [(step, loss)]
        self.evals = OrderedDict()         # series label -> [(x, value, ci95)]
        self.lr = OrderedDict()            # series label -> [(step, rate)]
        self.lr_x = None
        self.step_times = []               # [(step, seconds)] of the `step_time:` windows
        self.mean_step_time = None         # seconds, the `step_time_summary:` line (warm-up excluded)
        self.settings = OrderedDict()
        self.events = {}                   # (subdirectory, tag) -> [(step, value)] of the event files
        self.reproduction = None           # the paper table of a reproduce.sh run (reproduction.json)

    @property
    def loss(self):
        """The run's main loss series (the one the wrapper's loss file and --compare use)."""
        return next(iter(self.losses.values()))


def find_log(directory):
    """The wrapper log train_<id>.log of a run directory; one clear error if the directory has none."""
    if not os.path.isdir(directory):
        raise UserError("run directory %s does not exist" % directory)
    logs = sorted(name for name in os.listdir(directory) if LOG_NAME.match(name))
    if not logs:
        raise UserError("%s has no training log train_<device id>.log: not a wrapper's output directory, or the "
                        "run has not started" % directory)
    return os.path.join(directory, logs[0])


def load_run(directory):
    run = Run(os.path.abspath(directory))
    with open(run.log_path, errors="replace") as handle:
        lines = handle.read().splitlines()
    run.reproduction = read_reproduction(run.directory)
    run.model = _detect_model(lines, run.log_path, run.reproduction)
    lines = newest_run_lines(lines, run.model.loss)
    _read_losses(run, lines)
    _read_evals(run, lines)
    _read_step_times(run, lines)
    _read_events(run)
    _read_lr(run, lines)
    run.settings = read_settings(run, lines)
    return run


WRAPPER_HEADER = re.compile(r"^===== (\S+) ")          # common/ascend_wrapper.sh starts each run's part so
RESUMED = re.compile(r"^(resumed from |Restoring model weights from )")


def newest_run_lines(lines, loss):
    """Wrapper runs append to one log: the newest run's part, after the earlier parts of the same wrapper that it
    continued (resumed from their checkpoints, or runs that trained nothing), back to one that started fresh."""
    parts = []
    for line in lines:
        header = WRAPPER_HEADER.match(line)
        if header or not parts:
            parts.append((header.group(1) if header else None, []))
        parts[-1][1].append(line)
    wrapper = parts[-1][0]
    chosen = []
    for name, part in reversed(parts):
        if name == wrapper:
            chosen.insert(0, part)
            if _starts_fresh(part, loss):
                break
    return [line for part in chosen for line in part]


def _starts_fresh(part, loss):
    for line in part:
        if RESUMED.match(line):
            return False
        if loss.search(line):
            return True
    return False


def _detect_model(lines, log_path, reproduction=None):
    for model in MODELS:
        if any(model.loss.search(line) for line in lines):
            return model
    if reproduction:                      # an evaluation-only reproduction (MobileNetV3 on ImageNet weights)
        return next(model for model in MODELS if model.name == REPRODUCED_MODELS[reproduction["model"]])
    raise UserError("no loss lines in %s: none of AM3's, MT-net's, MobileNetV3's or SWA's loss lines (a run that "
                    "trained nothing, or another program's log)" % log_path)


def _read_losses(run, lines):
    run.losses["loss"] = run.model.loss.points(lines)
    for label, curve in run.model.extra_losses:
        points = curve.points(lines)
        if points:
            run.losses["loss (%s)" % label] = points


def _read_evals(run, lines):
    last_x = run.loss[-1][0] if run.loss else None
    for line in lines:
        for extract in run.model.evals:
            for series, x, value, ci in extract(line):
                run.evals.setdefault(series, []).append((last_x if x is None else x, value, ci))


def _read_step_times(run, lines):
    run.step_times = log_lines.STEP_TIME.series(lines, "step", "mean_dt")
    summaries = [fields["mean_dt"] for fields in log_lines.STEP_TIME_SUMMARY.all(lines)]
    if summaries and not math.isnan(summaries[-1]):
        run.mean_step_time = summaries[-1]


def _read_lr(run, lines):
    """The learning rate from the event files (tag learning_rate or lr), else from the log where it has one."""
    for (subdir, tag), points in sorted(run.events.items()):
        if tag.split("/")[-1] in ("learning_rate", "lr"):
            run.lr[subdir or tag] = points
            run.lr_x = "training step (event files)"
    if not run.lr and run.model.lr is not None:
        points = run.model.lr.points(lines)
        if points:
            run.lr["learning rate"] = points
            run.lr_x = run.model.loss_x + " (log)"


# ---- the paper table of a reproduction run (common/reproduce.py) --------------------------------------------------
REPRODUCTION_FILE = "reproduction.json"
REPRODUCED_MODELS = {"am3": "AM3", "mtnet": "MT-net", "mobilenetv3": "MobileNetV3"}


def read_reproduction(directory):
    """The table common/reproduce.py wrote into the run directory, or None; a damaged file is one clear error."""
    path = os.path.join(directory, REPRODUCTION_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            table = json.load(handle, object_pairs_hook=OrderedDict)
        if table["model"] not in REPRODUCED_MODELS or not isinstance(table["rows"], list):
            raise ValueError("unknown model or no rows")
        return table
    except (ValueError, KeyError, TypeError) as err:
        raise UserError("%s is not a reproduction table (%s): rerun reproduce.sh, or remove it" % (path, err))


# ---- TensorBoard event files, without TensorFlow ---------------------------------------------------------------
def _read_events(run):
    """Scalars of every event file under the run directory: {(subdirectory, tag): [(step, value)]}."""
    scalars = {}
    files = [os.path.join(root, name) for root, _, names in os.walk(run.directory)
             for name in names if name.startswith("events.out.tfevents.")]
    event_pb2 = _event_proto() if files else None
    for path in sorted(files) if event_pb2 else []:
        subdir = os.path.relpath(os.path.dirname(path), run.directory)
        for step, tag, value in _scalars(path, event_pb2):
            scalars.setdefault((subdir if subdir != "." else "", tag), []).append((step, value))
    if files and event_pb2 is None:
        run.settings["event files"] = "not read: TensorBoard (installed with TensorFlow) is missing"
    run.events = {key: sorted(points) for key, points in scalars.items()}


def event_tags(run):
    """'directory: tag, tag' for each directory of event files (TensorBoard's runs)."""
    by_dir = OrderedDict()
    for subdir, tag in sorted(run.events):
        by_dir.setdefault(subdir or ".", []).append(tag)
    return ["%s: %s" % (subdir, ", ".join(tags)) for subdir, tags in by_dir.items()]


def _event_proto():
    try:
        from tensorboard.compat.proto import event_pb2
    except ImportError:
        return None
    return event_pb2


def _records(path):
    """The records of a TFRecord file; a record being written (a live run) ends the iteration."""
    with open(path, "rb") as handle:
        while True:
            header = handle.read(12)           # uint64 length, uint32 masked CRC of the length
            if len(header) < 12:
                return
            (length,) = struct.unpack("<Q", header[:8])
            data = handle.read(length)
            if len(data) < length or len(handle.read(4)) < 4:
                return
            yield data


def _scalars(path, event_pb2):
    for record in _records(path):
        event = event_pb2.Event()
        try:
            event.ParseFromString(record)
        except Exception:                      # protobuf's DecodeError: a damaged record, skip it
            continue
        for value in event.summary.value:
            if value.WhichOneof("value") == "simple_value":
                yield event.step, value.tag, value.simple_value


# ---- settings: what ran ----------------------------------------------------------------------------------------
def read_settings(run, lines):
    """The run's settings as the files state them: model, wrapper and flags, commands, device route, precision."""
    settings = OrderedDict([("model", run.model.name)])
    case = _case_log(run.directory)
    for key in ("Network", "CaseName", "RankSize", "BatchSize", "DeviceType"):
        if key in case:
            settings[key] = case[key]
    settings.update(_key_values(os.path.join(run.directory, FLAGS_FILE)))
    devices = _unique(line for line in lines if line.startswith("device: "))
    if devices:
        settings["device route"] = " | ".join(devices)
        settings["precision that ran"] = " | ".join(_precision(line) for line in devices)
    for i, command in enumerate(_unique(line[2:] for line in lines if line.startswith("+ "))):
        settings["command %d" % (i + 1)] = command
    for key, label in (("ActualFPS", "throughput (per second)"), ("TrainingTime", "step time (ms)"),
                       ("E2ETrainingTime", "end to end (s)")):
        if key in case:
            settings[label] = case[key]
    settings.update(run.settings)
    return settings


def _precision(device_line):
    """The compute precision a `device:` line (common/npu_session.describe) says really ran."""
    found = re.search(r"compute precision: (\w+)", device_line)
    if found:
        return found.group(1)
    found = re.search(r"precision_mode=(\w+)", device_line)
    return "Ascend precision_mode=%s" % found.group(1) if found else "not stated"


def _unique(items):
    return list(OrderedDict.fromkeys(items))


def _key_values(path):
    """`key = value` lines (the case log, the wrapper's flags); {} when the file is absent."""
    if not os.path.isfile(path):
        return OrderedDict()
    with open(path, errors="replace") as handle:
        pairs = [line.rstrip("\n").split(" = ", 1) for line in handle if " = " in line]
    return OrderedDict((key.strip(), value) for key, value in pairs)


def _case_log(directory):
    names = sorted(name for name in os.listdir(directory) if CASE_LOG.search(name))
    return _key_values(os.path.join(directory, names[-1])) if names else OrderedDict()


# ---- the porting check -----------------------------------------------------------------------------------------
class Comparison(object):
    """Losses of two runs aligned by step, over a window of steps: mean and max relative difference."""

    def __init__(self, reference, candidate, window, tolerance):
        ref, cand = dict(reference.loss), dict(candidate.loss)
        common = sorted(set(ref) & set(cand))
        if not common:
            raise UserError("%s and %s have no step in common (reference steps %s, candidate steps %s): compare "
                            "runs of the same configuration and logging interval"
                            % (reference.directory, candidate.directory, _span(ref), _span(cand)))
        first, last = window
        self.steps = [s for s in common if (first is None or s >= first) and (last is None or s <= last)]
        if not self.steps:
            raise UserError("no common step in the window %s:%s (common steps %s)"
                            % (_bound(first), _bound(last), _span(common)))
        self.reference, self.candidate = reference, candidate
        self.differences = [_relative(ref[s], cand[s]) for s in self.steps]
        self.mean = sum(self.differences) / len(self.differences)
        self.max = max(self.differences)
        self.max_step = self.steps[self.differences.index(self.max)]
        self.tolerance = tolerance
        self.passed = self.mean <= tolerance

    def lines(self):
        common = set(dict(self.reference.loss)) & set(dict(self.candidate.loss))
        return [
            "compare: %s: reference %s, candidate %s: %d common steps, window %d..%d (%d steps)"
            % (model_of(self.reference), self.reference.directory, self.candidate.directory, len(common),
               self.steps[0], self.steps[-1], len(self.steps)),
            "relative loss difference |candidate - reference| / |reference|: mean %s, max %s at step %d"
            % (_percent(self.mean), _percent(self.max), self.max_step),
            "%s: mean relative loss difference %s %s tolerance %s"
            % ("PASS" if self.passed else "FAIL", _percent(self.mean), "<=" if self.passed else ">",
               _percent(self.tolerance))]


def _relative(reference, candidate):
    if reference == candidate:
        return 0.0
    return abs(candidate - reference) / abs(reference) if reference else float("inf")


def _percent(value):
    return "%.3g%%" % (100.0 * value)


def _span(steps):
    steps = sorted(steps)
    return "%d..%d" % (steps[0], steps[-1]) if steps else "none"


def _bound(value):
    return "" if value is None else str(value)


def parse_window(text):
    """'FIRST:LAST' (either may be empty) -> (first, last) steps, inclusive."""
    parts = (text or ":").split(":")
    try:
        if len(parts) != 2:
            raise ValueError(text)
        return tuple(int(part) if part.strip() else None for part in parts)
    except ValueError:
        raise UserError("--window must be FIRST:LAST in steps (either may be left out, e.g. 100: ), got %r" % text)


# ---- pictures --------------------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib
    matplotlib.use("Agg")            # files only: no display, works on a headless server
    import matplotlib.pyplot as plt
    return plt


def _chart(out_dir, name, title, xlabel, ylabel, curves, log_y=False):
    """Draw curves [(label, xs, ys, errors or None)] into out_dir/name; returns name, or None without data."""
    curves = [c for c in curves if c[1]]
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=100)
    if all(len(xs) == 1 for _, xs, _, _ in curves):
        _bars(ax, curves)
        xlabel = "%s %s" % (xlabel, ", ".join(_unique(str(xs[0]) for _, xs, _, _ in curves)))
    else:
        _lines(ax, curves)
    if log_y and all(y > 0 for _, _, ys, _ in curves for y in ys):
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    try:
        _write_whole(os.path.join(out_dir, name), lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
    return name


LINE_STYLES = ("-", "--", "-.", ":")       # curves that coincide (a faithful port) stay visible
MARKERS = ("o", "x", "s", "+")


def _lines(ax, curves):
    for i, (label, xs, ys, errors) in enumerate(curves):
        style = dict(label=label, linestyle=LINE_STYLES[i % 4], marker=MARKERS[i % 4] if len(xs) <= 30 else None)
        if errors and any(e is not None for e in errors):
            ax.errorbar(xs, ys, yerr=[e or 0.0 for e in errors], capsize=3, **style)
        else:
            ax.plot(xs, ys, markersize=4, **style)


def _bars(ax, curves):
    """Single values (final test accuracies): one labelled bar each, at the x they share."""
    for i, (label, _, ys, errors) in enumerate(curves):
        error = errors[0] if errors else None
        ax.bar([i], ys, yerr=[error] if error is not None else None, capsize=4, label=label, color="C%d" % (i % 10))
        ax.annotate(_number(ys[0]), (i, ys[0]), ha="center", va="bottom", fontsize="small")
    ax.set_xticks(range(len(curves)))
    ax.set_xticklabels([label for label, _, _, _ in curves], fontsize="small")


def _label(run, series, runs):
    return series if len(runs) == 1 else "%s: %s" % (run.label, series)


def _points(points):
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    errors = [p[2] for p in points] if points and len(points[0]) > 2 else None
    return xs, ys, errors


def draw_charts(runs, out_dir, comparison=None):
    """The PNGs of the page: {section: file name or None}."""
    model = runs[0].model

    def curves(attribute):
        return [(_label(run, series, runs),) + _points(points)
                for run in runs for series, points in getattr(run, attribute).items()]
    charts = OrderedDict()
    charts["loss"] = _chart(out_dir, "loss.png", "Training loss", model.loss_x, "loss", curves("losses"))
    charts["evaluation"] = _chart(out_dir, "evaluation.png", "Evaluation", model.eval_x, model.eval_y,
                                  curves("evals"))
    charts["learning rate"] = _chart(out_dir, "learning_rate.png", "Learning rate",
                                     runs[0].lr_x or model.loss_x, "learning rate", curves("lr"))
    # The logged windows where a run is long enough to have them, and always the mean after warm-up.
    step_curves = [(_label(run, "mean of each logged window", runs), [s for s, _ in run.step_times],
                    [1000.0 * dt for _, dt in run.step_times], None) for run in runs]
    step_curves += [(_label(run, "mean after warm-up (step_time_summary)", runs), [run.loss[0][0], run.loss[-1][0]],
                     [1000.0 * run.mean_step_time] * 2, None) for run in runs if run.mean_step_time is not None]
    charts["step time"] = _chart(out_dir, "step_time.png", "Step time", model.loss_x, "ms per step", step_curves)
    if comparison is not None:
        charts["loss difference"] = _chart(
            out_dir, "loss_difference.png", "Relative loss difference, candidate vs reference", model.loss_x,
            "|candidate - reference| / |reference|",
            [("per step", comparison.steps, comparison.differences, None),
             ("tolerance %s" % _percent(comparison.tolerance), [comparison.steps[0], comparison.steps[-1]],
              [comparison.tolerance] * 2, None)])
    return charts


# ---- the page --------------------------------------------------------------------------------------------------
STYLE = """body{font-family:sans-serif;margin:24px;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;
vertical-align:top;font-size:14px}th{background:#f3f3f3}img{display:block;margin:4px 0 20px;border:1px solid #ddd}
.pass{background:#e6f4e6;border:1px solid #6a6;padding:8px}.fail{background:#fbe9e9;border:1px solid #c66;
padding:8px}code{font-size:13px}"""


def _table(header, rows):
    head = "".join("<th>%s</th>" % html.escape(str(cell)) for cell in header)
    body = "".join("<tr>%s</tr>" % "".join("<td>%s</td>" % html.escape(str(cell)) for cell in row) for row in rows)
    return "<table><tr>%s</tr>%s</table>" % (head, body)


def summary_rows(run):
    """Final numbers of a run, as its log states them."""
    rows = []
    if run.loss:
        step, loss = run.loss[-1]
        rows += [("final loss", "%s (%s %d)" % (_number(loss), run.model.loss_x, step))]
    rows.append(("loss points", str(len(run.loss))))
    for series, points in run.evals.items():
        x, value, ci = points[-1]
        rows.append(("evaluation: %s" % series, "%s%s (%s %s)" % (
            _number(value), " +- %s (95%% CI)" % _number(ci) if ci is not None else "", run.model.eval_x, x)))
    if run.mean_step_time is not None:
        rows.append(("mean step time after warm-up", "%.2f ms" % (1000.0 * run.mean_step_time)))
    rows.append(("event file scalars", "; ".join(event_tags(run)) or "none"))
    return rows


def _number(value):
    return "%.6g" % value


def render_page(runs, charts, comparison=None):
    title = runs[0].settings.get("CaseName", runs[0].label) if len(runs) == 1 else \
        " vs ".join(run.label for run in runs)
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Training report: %s</title>"
             "<style>%s</style></head><body>" % (html.escape(title), STYLE),
             "<h1>Training report: %s</h1>" % html.escape(title),
             "<p>%s, made %s by <code>python -m common.report</code> from %s</p>" % (
                 html.escape(runs[0].model.name), time.strftime("%Y-%m-%d %H:%M"),
                 ", ".join("<code>%s</code>" % html.escape(run.log_path) for run in runs))]
    if comparison is not None:
        verdict = "<br>".join(map(html.escape, comparison.lines()))
        parts.append("<div class='%s'>%s</div>" % ("pass" if comparison.passed else "fail", verdict))
    parts.append("<h2>Summary</h2>")
    for run in runs:
        parts.append(_table(["%s" % run.label, ""], summary_rows(run)))
    for run in runs:
        if run.reproduction:
            table = run.reproduction
            parts.append("<h2>Reproduction: %s</h2>" % html.escape(table["title"]))
            parts.append(_table(table["header"], table["rows"]))
    for section, name in charts.items():
        parts.append("<h2>%s</h2>" % html.escape(section.capitalize()))
        parts.append("<img src='%s' alt='%s' width='800' height='360'>" % (name, html.escape(section))
                     if name else "<p>No %s in these runs' logs or event files.</p>" % html.escape(section))
    parts.append("<h2>Settings</h2>")
    keys = _unique(key for run in runs for key in run.settings)
    parts.append(_table(["setting"] + [run.label for run in runs],
                        [[key] + [run.settings.get(key, "") for run in runs] for key in keys]))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def run_data(run):
    """The numbers on the page, for scripts (report.json)."""
    return OrderedDict([("directory", run.directory), ("label", run.label), ("log", run.log_path),
                        ("model", run.model.name), ("loss", run.losses), ("evaluation", run.evals),
                        ("learning_rate", run.lr), ("step_time_windows", run.step_times),
                        ("mean_step_time", run.mean_step_time), ("event_tags", event_tags(run)),
                        ("settings", run.settings), ("reproduction", run.reproduction)])


def write_report(runs, out_dir, comparison=None):
    """report.html, report.json and the PNGs in out_dir; returns the page's path. A file that cannot be written
    (full disk) is one error line, and no file is left half-written: each is written beside and renamed."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError("--out %s is a file, not a directory" % out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
        charts = draw_charts(runs, out_dir, comparison)
        path = os.path.join(out_dir, REPORT_FILE)
        page = render_page(runs, charts, comparison)
        _write_whole(path, lambda tmp: _write_text(tmp, page))
        data = OrderedDict([("runs", [run_data(run) for run in runs])])
        if comparison is not None:
            data["compare"] = OrderedDict([("steps", comparison.steps),
                                           ("relative_differences", comparison.differences),
                                           ("mean", comparison.mean), ("max", comparison.max),
                                           ("tolerance", comparison.tolerance), ("passed", comparison.passed)])
        text = json.dumps(data, indent=1, allow_nan=True)
        _write_whole(os.path.join(out_dir, DATA_FILE), lambda tmp: _write_text(tmp, text))
    except OSError as err:
        raise UserError("cannot write the report in %s: %s" % (out_dir, err.strerror or err))
    return path


def _write_text(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def _write_whole(path, write):
    """write(temporary path) beside `path`, then rename it over `path`: a failed write leaves no partial file."""
    tmp = os.path.join(os.path.dirname(path), ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def label_runs(runs):
    """Short unique labels: the trailing path parts that tell the directories apart (…/tf115/0 vs …/tf2/0)."""
    parts = [run.directory.split(os.sep) for run in runs]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            break
    for run, label in zip(runs, labels):
        run.label = label


# ---- command line ----------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = ArgumentParser(
        description="Report of wrapper runs (report.html + PNGs) and the porting loss check.",
        epilog="--compare passes (exit 0, else 1) when the mean relative loss difference |candidate - reference| / "
               "|reference| over the window is within --tolerance. The default 1% is Ascend ModelZoo's accuracy "
               "alignment bar (a port's accuracy within 1% of its GPU/CPU reference) applied to the loss curve; "
               "no published Ascend threshold for loss curves themselves was found.")
    parser.add_argument("runs", nargs="*", metavar="RUN_DIR", help="wrapper output directories (output/<id>)")
    parser.add_argument("--compare", nargs=2, metavar=("REFERENCE", "CANDIDATE"),
                        help="porting check: the candidate's (e.g. NPU) losses against the reference's (GPU/CPU)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="largest mean relative loss difference that passes (default 0.01 = 1%%)")
    parser.add_argument("--window", default=":", help="FIRST:LAST training steps compared (default: all common)")
    parser.add_argument("--out", default="", help="directory of the page (default: the run directory for one "
                                                  "run, ./report for several; --compare: no page unless given)")
    parser.add_argument("--quiet", action="store_true", help="print only where the page is")
    return parser.parse_args(argv)


def model_of(run):
    """The model a run trained, as its log and the wrapper's flags say: AM3, MT-net, SWA, MobileNetV3 (small)."""
    size = run.settings.get("--model")
    return "%s (%s)" % (run.model.name, size) if size else run.model.name


def compare_main(args):
    if args.runs:
        raise UserError("--compare takes exactly two run directories, REFERENCE and CANDIDATE (got %d)"
                        % (2 + len(args.runs)))
    reference, candidate = (load_run(path) for path in args.compare)
    if model_of(reference) != model_of(candidate):
        raise UserError("%s is a run of %s, %s of %s: compare runs of one model"
                        % (reference.directory, model_of(reference), candidate.directory, model_of(candidate)))
    label_runs([reference, candidate])
    comparison = Comparison(reference, candidate, parse_window(args.window), args.tolerance)
    for line in comparison.lines():
        print(line)
    if args.out:
        print("report: %s" % write_report([reference, candidate], args.out, comparison))
    return 0 if comparison.passed else 1


def report_main(args):
    if not args.runs:
        raise UserError("give a run directory (a wrapper's output/<device id>), or --compare REFERENCE CANDIDATE")
    runs = [load_run(path) for path in args.runs]
    if len(runs) > 1:
        label_runs(runs)
    out = args.out or (runs[0].directory if len(runs) == 1 else "report")
    path = write_report(runs, out)
    if not args.quiet:
        for run in runs:
            for key, value in summary_rows(run):
                print("%s: %s: %s" % (run.label, key, value))
    print("report: %s" % os.path.abspath(path))
    return 0


@main_guard
def main(argv=None):
    args = parse_args(argv)
    if args.tolerance < 0 or math.isnan(args.tolerance):
        raise UserError("--tolerance must be a non-negative fraction (0.01 = 1%%), got %r" % args.tolerance)
    return compare_main(args) if args.compare else report_main(args)


if __name__ == "__main__":
    sys.exit(main())
