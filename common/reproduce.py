"""Reproduce a paper's table: run the published protocol, print this run's numbers beside the paper's.

    python -m common.reproduce MODEL --data_path=DIR [--table=NAME] [--quick] [--out=DIR] [MODEL's flags]

MODEL/reproduce.py says what runs: TABLES {name: (title, paper table)}, add_arguments(parser),
jobs(args) -> [Job] (the training and test commands of each row, run from the model directory) and
estimate(args, jobs) -> CPU phases; MODEL/paper.py holds the paper's numbers, each naming its table and row.
The table goes to stdout (the wrapper's log) and to OUT/reproduction.json, which common/report.py shows.
`--quick` runs the same commands at toy scale: its numbers check the pipeline, not the paper.
"""
import collections
import importlib
import json
import math
import os
import subprocess
import sys

from common import run_cost
from common.errors import ArgumentParser, UserError, main_guard

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_FILE = "reproduction.json"
MODELS = ("am3", "mtnet", "mobilenetv3")

Paper = collections.namedtuple("Paper", "value ci source")   # source: "Table N, row R (arXiv id)"
Measured = collections.namedtuple("Measured", "value ci note")


class Job(object):
    """One row of a table: the commands that produce it and how its number is read from their output.
    paper: a Paper, or {evaluation: Paper} when each evaluation has its own published number (or none).

    parse(output) -> {evaluation name: Measured}; a row may be measured more than one way (AM3: our evaluation
    and upstream's), each shown as its own line beside the same paper number."""

    def __init__(self, row, paper, commands, parse, settings):
        self.row, self.paper, self.commands, self.parse, self.settings = row, paper, commands, parse, settings


def _number(value, ci, digits):
    if value is None:
        return "-"
    text = "%.*f" % (digits, value)
    return text + (" +- %.*f" % (digits, ci) if ci is not None else "")


def table_rows(results, digits):
    """[row, paper, paper's source, this run, evaluation, settings] strings of each measured line."""
    rows = []
    for job, evaluation, measured in results:
        paper = job.paper.get(evaluation) if isinstance(job.paper, dict) else job.paper
        rows.append([job.row, _number(paper.value, paper.ci, digits) if paper else "not reported",
                     paper.source if paper else "-", _number(measured.value, measured.ci, digits),
                     evaluation + ("; " + measured.note if measured.note else ""), job.settings])
    return rows


def table_numbers(results):
    """The same lines as numbers, for scripts (reproduction.json, the report's report.json)."""
    numbers = []
    for job, evaluation, measured in results:
        paper = job.paper.get(evaluation) if isinstance(job.paper, dict) else job.paper
        numbers.append(collections.OrderedDict([
            ("row", job.row), ("evaluation", evaluation), ("paper", paper.value if paper else None),
            ("paper_ci95", paper.ci if paper else None), ("paper_source", paper.source if paper else None),
            ("measured", measured.value), ("measured_ci95", measured.ci), ("note", measured.note),
            ("settings", job.settings)]))
    return numbers


HEADER = ["row", "paper", "paper's source", "this run (95% CI)", "evaluation", "settings"]


def format_table(title, rows):
    """A plain-text table for the log (columns padded to their widest cell), then each row's settings."""
    shown = [r[:-1] for r in [HEADER] + rows]          # the settings are long: a line of their own below
    widths = [max(len(str(r[i])) for r in shown) for i in range(len(shown[0]))]
    lines = ["reproduce: %s" % title]
    for row in shown:
        lines.append("reproduce: | " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    for row in _unique((r[0], r[-1]) for r in rows):
        lines.append("reproduce: settings of %s: %s" % row)
    return lines


def _unique(items):
    return list(collections.OrderedDict.fromkeys(items))


def run_command(argv, cwd):
    """Run one command from `cwd`, its output passed through line by line (the wrapper tees it into the log);
    returns the output. A failure stops the reproduction with the command's status."""
    print("+ %s" % " ".join(argv), flush=True)
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    status = proc.wait()
    if status:
        raise CommandFailed(status, argv)
    return "".join(lines)


class CommandFailed(Exception):
    def __init__(self, status, argv):
        Exception.__init__(self, "command failed with exit status %d: %s" % (status, " ".join(argv)))
        self.status = status


def write_data(out_dir, model, table, title, results, quick, digits):
    os.makedirs(out_dir, exist_ok=True)
    data = collections.OrderedDict([("model", model), ("table", table), ("title", title), ("quick", quick),
                                    ("header", HEADER), ("rows", table_rows(results, digits)),
                                    ("numbers", table_numbers(results))])
    path = os.path.join(out_dir, DATA_FILE)
    with open(path, "w") as handle:
        json.dump(data, handle, indent=1)
    return path


def build_parser(model, rule):
    p = ArgumentParser(prog="%s/test/reproduce.sh" % model,
                       description="Run the paper's protocol for %s and print this run's numbers beside the "
                                   "paper's." % model)
    p.add_argument("--data_path", required=True, help="the data set's folder (see %s/README.md)" % model)
    p.add_argument("--table", default=rule.DEFAULT_TABLE, choices=sorted(rule.TABLES),
                   help="which paper table (default %s)" % rule.DEFAULT_TABLE)
    p.add_argument("--quick", action="store_true",
                   help="the same protocol at toy scale (a few steps, few test episodes): checks the pipeline")
    p.add_argument("--out", default=".", help="folder of the runs and of reproduction.json")
    rule.add_arguments(p)
    return p


def split_ascend_flags(argv):
    """(our flags, the Ascend flags the wrapper passes through to every training and test command)."""
    from common.ascend_flags import ASCEND_FLAGS
    names = {opt.name for opt in ASCEND_FLAGS}
    ascend = [a for a in argv if a.startswith("--") and a[2:].split("=", 1)[0] in names]
    return [a for a in argv if a not in ascend], ascend


def reproduce(model, argv):
    rule = importlib.import_module(model + ".reproduce")
    argv, ascend = split_ascend_flags(argv)
    args = build_parser(model, rule).parse_args(argv)
    if not os.path.exists(args.data_path):
        raise UserError("--data_path %s does not exist" % args.data_path)
    args.out = os.path.abspath(args.out)
    args.data_path = os.path.abspath(args.data_path)
    jobs = rule.jobs(args)
    stale = os.path.join(args.out, DATA_FILE)
    if os.path.isfile(stale):      # an earlier run's table: the report must not show it beside this run's log
        os.remove(stale)
    phases = rule.estimate(args, jobs)
    if sum(seconds for seconds, _ in phases) >= run_cost.LONG_SECONDS and not run_cost._on_ascend():
        print(run_cost.note(phases, rule.MEASURED_ON), flush=True)
    title = "%s%s" % (rule.TABLES[args.table], " (--quick: toy scale, not comparable with the paper)"
                      if args.quick else "")
    results = []
    for job in jobs:
        output = "".join(run_command([sys.executable] + command + ascend, os.path.join(REPO, model))
                         for command in job.commands)
        measured = job.parse(output)
        if not measured:
            raise UserError("no result for %s in its commands' output: see the log above" % job.row)
        results.extend((job, name, value) for name, value in measured.items())
    rows = table_rows(results, rule.DIGITS)
    for line in format_table(title, rows):
        print(line, flush=True)
    path = write_data(args.out, model, args.table, title, results, args.quick, rule.DIGITS)
    print("reproduce: table written to %s" % path, flush=True)
    return 0


def ci95(values):
    """Mean and 95% confidence half-width (normal approximation, as the models' test modes)."""
    n = len(values)
    mean = sum(values) / float(n)
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n)


@main_guard
def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print("usage: python -m common.reproduce MODEL [flags]   (MODEL: %s; MODEL --help lists its flags)\n\n%s"
              % (", ".join(MODELS), __doc__.strip()))
        return 0
    if not argv or argv[0] not in MODELS:
        raise UserError("first argument: the model, one of %s" % ", ".join(MODELS))
    try:
        return reproduce(argv[0], argv[1:])
    except CommandFailed as failed:
        print("error: %s" % failed, file=sys.stderr, flush=True)
        return failed.status


if __name__ == "__main__":
    sys.exit(main())
