"""MT-net's log lines (upstream yoonholee/MT-net's formats): printed by mtnet/trainer.py, read by the wrappers and
the report. Losses are numpy's str of the window's mean, as upstream printed them.

The wrappers' loss file holds the meta-training lines' post-update losses; their accuracy is the test mode's mean
after 10 inner updates (the test MSE of the regression tasks).
"""
from common.log_lines import NUM, LogLine


def _iteration(label):
    def line(iteration, preloss, postloss, accuracies=None):
        text = "%s %d: %s, %s" % (label, iteration, preloss, postloss)
        return text + (" (accuracy %s, %s)" % tuple(accuracies) if accuracies is not None else "")
    return line


_LOSSES = (r" (?P<iteration>\d+): (?P<preloss>{0}), (?P<postloss>{0})"
           r"(?: \(accuracy (?P<preacc>{0}), (?P<postacc>{0})\))?").format(NUM)
# Every print_interval meta-training iterations: mean loss before and after the inner update (and accuracies of
# the classification tasks), numbered as upstream: meta-training iterations alone.
LOSS = LogLine(_iteration("Iteration"), "^Iteration" + _LOSSES, {"iteration": int})
# The same during pretraining (not in the wrappers' loss file).
PRETRAIN_LOSS = LogLine(_iteration("Pretrain Iteration"), "^Pretrain Iteration" + _LOSSES, {"iteration": int})
# Test mode, one line per number of inner updates.
TEST = LogLine("update%(update)d: mean %(mean).6f std %(std).6f ci95 %(ci95).6f",
               r"^update(?P<update>\d+): mean (?P<mean>{0}) std (?P<std>{0}) ci95 (?P<ci95>{0})".format(NUM),
               {"update": int})

ACCURACY_UPDATE = 10     # the wrappers' accuracy: the test mean after this many inner updates


def accuracy_texts(lines):
    return [found.group("mean") for found in map(TEST.search, lines)
            if found and int(found.group("update")) == ACCURACY_UPDATE]


EXTRACT = {"losses": lambda lines: LOSS.texts(lines, "postloss"),
           "accuracy": lambda lines: accuracy_texts(lines)[-1:]}
