"""The one line a wrapper prints before a run that takes long on a CPU: an estimate from measured times.

    python -m common.run_cost MODEL key=value ...   # MODEL: am3, mtnet, mobilenetv3 or swa (MODEL/cpu_cost.py)

Each model's `cpu_cost.estimate(**flags)` returns the run's phases as (seconds, what) pairs and `MEASURED_ON`
says where its times come from; nothing is printed for a short run or on Ascend (the times are a CPU's).
"""
import importlib
import sys

LONG_SECONDS = 600.0       # runs shorter than this start without a note


def duration(seconds):
    """Rounded, readable: '17 days', '16 h', '43 min', '50 s'."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size or (unit != "days" and seconds >= size):
            return "%.0f %s" % (seconds / size, unit)
    return "%.0f s" % seconds


def note(phases, measured_on):
    """The line: the total, each phase, and what the per-unit times were measured on."""
    total = sum(seconds for seconds, _ in phases)
    parts = ", ".join("%s %s" % (what, duration(seconds)) for seconds, what in phases if seconds > 0)
    return ("estimate on a CPU: about %s (%s), from times measured with %s; an NPU or GPU is much faster"
            % (duration(total), parts, measured_on))


def _on_ascend():
    from common import npu_session   # imports TensorFlow: only asked for a long run
    from common.errors import UserError
    try:
        return npu_session.on_npu()
    except UserError:                  # a broken CANN install: the training command itself reports it
        return True


def _number(text):
    """int, float, or the text itself (a path)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(argv):
    if not argv:
        print("error: give MODEL key=value ... (see --help)", file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print("usage: python -m common.run_cost MODEL key=value ...\n\n" + __doc__.strip())
        return 0
    model, pairs = argv[0], [arg.split("=", 1) for arg in argv[1:]]
    rule = importlib.import_module(model + ".cpu_cost")
    phases = rule.estimate(**{key: _number(value) for key, value in pairs})
    if sum(seconds for seconds, _ in phases) >= LONG_SECONDS and not _on_ascend():
        print(note(phases, rule.MEASURED_ON), flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
