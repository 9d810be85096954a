"""One-line errors for users: bad flags, missing or malformed data, bad checkpoints, NaN losses."""
import argparse
import functools
import math
import sys


class UserError(Exception):
    """A problem the user can fix (flag, file, data); reported as one line, without a traceback."""


class NonFiniteLossError(UserError):
    """Training produced a NaN or infinite loss."""


NAN_ADVICE = "lower the learning rate, or enable loss scaling with --loss_scale"


# float16's largest value: Ascend 910 saturates an overflow to +-max instead of Inf/NaN, so a diverged fp16
# computation reads 65504 on the host and a diverged float32 one 3.4e38, both at or past this.
FP16_MAX = 65504.0


def check_finite(value, step, name="loss", advice=NAN_ADVICE, saturates=False):
    """Raise NonFiniteLossError if a fetched scalar is NaN or infinite; `advice` says what this script's user can
    change (a script without loss scaling passes its own). `saturates`: the value comes from a device that
    saturates on overflow (Ascend), where |value| >= FP16_MAX is the overflow."""
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise NonFiniteLossError("%s is %s at step %d: training diverged (%s)" % (name, value, step, advice))
    if saturates and abs(value) >= FP16_MAX:
        raise NonFiniteLossError(
            "%s is %.4g at step %d, at or past float16's largest value %g: the NPU saturates an overflow there "
            "instead of giving Inf/NaN, so training diverged (%s; --over_dump=True names the overflowing ops)"
            % (name, value, step, FP16_MAX, advice))
    return value


def require(condition, message):
    if not condition:
        raise UserError(message)


def main_guard(main):
    """Decorate an entry point: a UserError prints 'error: ...' on one line and exits with status 2."""
    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            status = getattr(err, "exit_status", 2)   # common.stop.Stopped: a requested stop, not an error
            print("%s%s" % ("error: " if status == 2 else "", err), file=sys.stderr, flush=True)
            sys.exit(status)
        except KeyboardInterrupt:
            print("interrupted (nothing saved since the last checkpoint)", file=sys.stderr, flush=True)
            sys.exit(130)
    return wrapped


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line 'error: <prog>: <problem> (see --help)' with exit status 2 (under
    main_guard) instead of the whole usage text, and no abbreviations: argparse's default took '--train_ep=6' for
    --train_epochs, so a typo of one flag silently set another."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super(ArgumentParser, self).__init__(*args, **kwargs)

    def error(self, message):
        raise UserError("%s: %s (see --help)" % (self.prog, message))
