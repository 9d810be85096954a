"""SWA's log lines: printed by swa/train.py, read by the wrappers and the report.

The wrappers' loss file holds the SWA run's epoch losses; their accuracy is the averaged model's test accuracy.
"""
from common.log_lines import NUM, LogLine

# The end of each epoch of a run (run: swa, or sgd for the baseline), with the learning rate of its last batch.
EPOCH = LogLine("%(run)s epoch %(epoch)d/%(epochs)d loss: %(loss).6f acc: %(acc).4f lr: %(lr).6g",
                r"^(?P<run>\w+) epoch (?P<epoch>\d+)/(?P<epochs>\d+) loss: (?P<loss>{0}) acc: (?P<acc>{0}) "
                r"lr: (?P<lr>{0})$".format(NUM),
                {"run": str, "epoch": int, "epochs": int})


def _final(swa, sgd=None, swa_run_last_iterate=None):
    return "final test accuracy: swa=%.4f%s%s" % (
        swa, " sgd=%.4f" % sgd if sgd is not None else "",
        " swa_run_last_iterate=%.4f" % swa_run_last_iterate if swa_run_last_iterate is not None else "")


# After training: the averaged model's test accuracy, and the baselines' that ran.
FINAL = LogLine(_final, r"^final test accuracy: swa=(?P<swa>{0})(?: sgd=(?P<sgd>{0}))?"
                r"(?: swa_run_last_iterate=(?P<swa_run_last_iterate>{0}))?$".format(NUM))


def losses(lines, run="swa"):
    return [found.group("loss") for found in map(EPOCH.search, lines) if found and found.group("run") == run]


EXTRACT = {"losses": losses, "accuracy": lambda lines: FINAL.texts(lines, "swa")[-1:]}
