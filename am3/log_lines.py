"""AM3's log lines (upstream ElementAI/am3's formats): printed by am3/train.py, read by the wrappers and the report.

The wrappers' loss file holds the training loss lines' losses; their accuracy is the last accuracy on the
target_tst split, of a validation line or of the test mode's line.
"""
import re
from collections import OrderedDict

from common.log_lines import NUM, LogLine

# Every log_interval_steps steps of training (the loss as %.4g, dt the seconds per step).
LOSS = LogLine(
    "step %(step)d, loss : %(loss).4g, dt: %(dt).3gs, accuracy: %(accuracy).4f, lambda: %(lam).4f",
    r"step (?P<step>\d+), loss : (?P<loss>{0})(?:, dt: (?P<dt>{0})s, accuracy: (?P<accuracy>{0}), "
    r"lambda: (?P<lam>{0}))?".format(NUM),
    {"step": int})


def _accuracies(text):
    """'accuracy_a: x, accuracy_b: y' -> OrderedDict(a=x, b=y)."""
    return OrderedDict((split, float(value)) for split, value in re.findall(r"accuracy_(\w+): (%s)" % NUM, text))


def _validation(step, accuracies):
    """accuracies: [(split, accuracy)] in the order the splits are evaluated."""
    return "step %d, " % step + ", ".join("accuracy_%s: %.4f" % pair for pair in accuracies) + "."


# Validation during training, one accuracy per split.
VALIDATION = LogLine(_validation, r"^step (?P<step>\d+), (?P<accuracies>accuracy_\w+: .*)\.$",
                     {"step": int, "accuracies": _accuracies})
# Test mode: mean accuracy and its 95% confidence interval over the episodes (note: the upstream-evaluation note).
TEST = LogLine(
    "accuracy_%(split)s: %(accuracy).4f +- %(ci95).4f (95%% confidence interval; %(ways)d-way %(shots)d-shot, "
    "%(episodes)d episodes x %(queries)d queries, checkpoint step %(step)d, %(seconds).2f s/episode, "
    "mean lambda %(lam).3f)%(note)s",
    r"^accuracy_(?P<split>\w+): (?P<accuracy>{0}) \+- (?P<ci95>{0}) \(95% confidence interval; (?P<ways>\d+)-way "
    r"(?P<shots>\d+)-shot, (?P<episodes>\d+) episodes x (?P<queries>\d+) queries, checkpoint step (?P<step>\d+), "
    r"(?P<seconds>{0}) s/episode, mean lambda (?P<lam>{0})\)(?P<note>.*)$".format(NUM),
    {"split": str, "ways": int, "shots": int, "episodes": int, "queries": int, "step": int, "note": str})

ACCURACY_SPLIT = "target_tst"     # the split the wrappers' accuracy is of


def accuracy_texts(lines):
    """The target_tst accuracies of the validation and test lines, as printed, in order."""
    texts = []
    for line in lines:
        found = VALIDATION.search(line)
        if found:
            texts += [value for split, value in re.findall(r"accuracy_(\w+): (%s)" % NUM, found.group("accuracies"))
                      if split == ACCURACY_SPLIT]
        found = TEST.search(line)
        if found and found.group("split") == ACCURACY_SPLIT:
            texts.append(found.group("accuracy"))
    return texts


EXTRACT = {"losses": lambda lines: LOSS.texts(lines, "loss"),
           "accuracy": lambda lines: accuracy_texts(lines)[-1:]}
