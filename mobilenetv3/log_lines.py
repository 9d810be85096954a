"""MobileNetV3's log lines (the Ascend model zoo's MobileNetV3 formats): printed by mobilenetv3/trainer.py, read by
the wrappers and the report.

The wrappers' loss file holds the training step lines' losses; their accuracy is the last epoch line's val_acc.
"""
from common.log_lines import NUM, LogLine

# Every log_every steps and at the end of each epoch.
LOSS = LogLine("train step=%(step)d epoch=%(epoch)d loss=%(loss).6f acc=%(acc).4f",
               r"^train step=(?P<step>\d+) epoch=(?P<epoch>\d+) loss=(?P<loss>{0}) acc=(?P<acc>{0})".format(NUM),
               {"step": int, "epoch": int})


def _epoch(epoch, epochs, loss, acc, val_loss, val_acc, images, seconds, best):
    """loss, acc, val_loss, val_acc as the history file holds them (text); best: the best val_acc so far."""
    return "epoch %d/%d: loss=%s acc=%s val_loss=%s val_acc=%s (%d images) %.1fs%s" % (
        epoch, epochs, loss, acc, val_loss, val_acc, images, seconds, " best" if best else "")


# The end of each epoch: training means, validation, the epoch's seconds, and " best" on a new best val_acc.
EPOCH = LogLine(_epoch, r"^epoch (?P<epoch>\d+)/(?P<epochs>\d+): loss=(?P<loss>{0}) acc=(?P<acc>{0}) "
                r"val_loss=(?P<val_loss>{0}) val_acc=(?P<val_acc>{0}) \((?P<images>\d+) images\) "
                r"(?P<seconds>{0})s(?P<best>| best)$".format(NUM),
                {"epoch": int, "epochs": int, "images": int, "best": bool})

EXTRACT = {"losses": lambda lines: LOSS.texts(lines, "loss"),
           "accuracy": lambda lines: EPOCH.texts(lines, "val_acc")[-1:]}
