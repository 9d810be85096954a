"""Every log line that something reads back, defined once: the text a script prints and the parser of it.

The lines are a contract: the Ascend wrappers take the loss file, the accuracy and the step time from them,
common/report.py draws them, users' own scripts grep them, and the models' lines keep their upstream formats byte
for byte. So a line is one `LogLine` holding its format beside the regex that reads it back: the scripts print
`LINE.format(...)`, the wrappers call

    python -m common.log_lines MODEL WHAT LOG      (LOG "-": standard input)

which prints one value per line (the numbers as the log wrote them; see WHAT below), and the report parses with
`LINE.parse(line)`. The shared lines are here; each model's are in <model>/log_lines.py. This module and those
import no TensorFlow: the wrappers call it once per run's summary.
"""
import importlib
import re
import sys

# A number as the scripts print it (%d, %f, %g, numpy's str): also nan and inf, which a diverged run may print.
NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf"
MODELS = ("am3", "mtnet", "mobilenetv3", "swa")


class LogLine(object):
    """One log line: `template` (a %-format string with named fields, or a function of keyword arguments)
    produces the exact text; `pattern` (named groups, searched anywhere in a line unless it starts with ^)
    reads the fields back, typed by `types` (field -> int/float/str; float when not named)."""

    def __init__(self, template, pattern, types=None):
        self.template = template
        self.regex = re.compile(pattern)
        self.types = types or {}

    def format(self, **fields):
        if callable(self.template):
            return self.template(**fields)
        return self.template % fields

    def search(self, line):
        return self.regex.search(line)

    def parse(self, line):
        """{field: typed value} of a line of this kind, else None."""
        found = self.regex.search(line)
        if not found:
            return None
        return {name: self.types.get(name, float)(text) for name, text in found.groupdict().items()
                if text is not None}

    def all(self, lines):
        """The parsed fields of every line of this kind, in order."""
        return [fields for fields in map(self.parse, lines) if fields is not None]

    def texts(self, lines, field):
        """The text of `field` in every line of this kind, as the log wrote it."""
        return [found.group(field) for found in map(self.regex.search, lines) if found]

    def series(self, lines, x, y):
        """[(x, y)] of every line of this kind (the report's curves)."""
        return [(fields[x], fields[y]) for fields in self.all(lines)]


# ---- the lines every model prints ------------------------------------------------------------------------------
# common/step_timer.py: a window of timed steps, and the run's summary (warm-up excluded; mean_dt=nan and steps=0
# when every step was a warm-up step). The wrappers' step time is the last summary's mean_dt.
STEP_TIME = LogLine(
    "step_time: step=%(step)d steps=%(steps)d mean_dt=%(mean_dt).6f throughput=%(throughput).2f %(unit)s/s",
    r"step_time: step=(?P<step>\d+) steps=(?P<steps>\d+) mean_dt=(?P<mean_dt>{0})"
    r"(?: throughput=(?P<throughput>{0}) (?P<unit>\S+)/s)?".format(NUM),
    {"step": int, "steps": int, "unit": str})
STEP_TIME_SUMMARY = LogLine(
    "step_time_summary: mean_dt=%(mean_dt).6f steps=%(steps)d warmup=%(warmup)d throughput=%(throughput).2f "
    "%(unit)s/s",
    r"step_time_summary: mean_dt=(?P<mean_dt>{0})(?: steps=(?P<steps>\d+) warmup=(?P<warmup>\d+)"
    r"(?: throughput=(?P<throughput>{0}) (?P<unit>\S+)/s)?)?".format(NUM),
    {"steps": int, "warmup": int, "unit": str})
# common/stop.py: a stop request ended the run after saving; the wrappers then say a rerun resumes.
STOP_REQUESTED = LogLine(
    "%(signal)s: stopping after this step and saving a checkpoint (again to stop at once, without saving)",
    r"^(?P<signal>SIG[A-Z]+): stopping after this step and saving a checkpoint", {"signal": str})
STOPPED = LogLine(
    "stopped by %(signal)s at %(where)s; saved %(saved)s: rerun the same command to resume",
    r"^stopped by (?P<signal>SIG[A-Z]+) at (?P<where>.*); saved (?P<saved>.*): rerun the same command to resume$",
    {"signal": str, "where": str, "saved": str})
STOPPED_UNSAVED = LogLine(
    "stopped by %(signal)s at %(where)s; %(why)s: %(then)s",
    r"^stopped by (?P<signal>SIG[A-Z]+) at (?P<where>[^;]*); (?P<why>.*): (?P<then>[^:]*)$",
    {"signal": str, "where": str, "why": str, "then": str})
# Every training script, on a rerun whose checkpoint is already at the end: the wrappers report no step time.
NOTHING_TO_TRAIN = LogLine("nothing to train: %(why)s", r"^nothing to train: (?P<why>.*)$", {"why": str})


# ---- what the wrappers extract -----------------------------------------------------------------------------------
def mean_dt(lines):
    """The step time of the last summary line; nothing when it is nan (no step was timed) or there is none."""
    texts = STEP_TIME_SUMMARY.texts(lines, "mean_dt")
    return texts[-1:] if texts and "nan" not in texts[-1] else []


def warmup_only(lines):
    """The warm-up step count when the last summary timed no step (steps=0 warmup=N, N > 0)."""
    found = [STEP_TIME_SUMMARY.parse(line) for line in lines if STEP_TIME_SUMMARY.search(line)]
    last = found[-1] if found else {}
    return [str(last["warmup"])] if last.get("steps") == 0 and last.get("warmup") else []


def nothing_to_train(lines):
    """The last 'nothing to train: ...' line, whole."""
    return [line for line in lines if NOTHING_TO_TRAIN.search(line)][-1:]


def stopped_saved(lines):
    """The 'stopped by SIG... saved ...: rerun the same command to resume' lines (the exit status says if any)."""
    return [line for line in lines if STOPPED.search(line)]


COMMON = {"mean_dt": mean_dt, "warmup_only": warmup_only, "nothing_to_train": nothing_to_train,
          "stopped": stopped_saved}


def extractors(model):
    """{what: function(lines) -> [text]} of `model` ('common' for the shared lines)."""
    if model == "common":
        return COMMON
    if model not in MODELS:
        raise KeyError(model)
    return importlib.import_module("%s.log_lines" % model).EXTRACT


USAGE = ("usage: python -m common.log_lines MODEL WHAT LOG  (MODEL: common, %s; LOG '-' reads standard input)"
         % ", ".join(MODELS))


def main(argv):
    """Print what `WHAT` extracts from LOG, one value per line; exit 1 when there is none (grep -q's status)."""
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if len(argv) != 3:
        print(USAGE, file=sys.stderr)
        return 2
    model, what, path = argv
    try:
        extract = extractors(model)[what]
    except KeyError:
        known = ", ".join(sorted(extractors(model))) if model == "common" or model in MODELS else "none"
        print("error: no log value %r of %r (known: %s)" % (what, model, known), file=sys.stderr)
        return 2
    try:
        if path == "-":
            text = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                text = handle.read()
    except OSError as err:
        print("error: cannot read %s: %s" % (path, err.strerror), file=sys.stderr)
        return 1
    values = extract(text.decode("utf-8", "replace").split("\n"))   # lines as grep sees them
    for value in values:
        print(value)
    return 0 if values else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
