"""Time-based progress lines for long loops (evaluation, test episodes, image checks, dataset builders): on a CPU such a
phase can run for most of an hour, and a loop that prints nothing until it ends looks hung."""
import time

PROGRESS_SECONDS = 30.0    # at most this long without a line (read when a loop starts, so tests can lower it)


class Progress(object):
    """Prints '<what>: <done>/<total> <unit>, <seconds> s' once `every` seconds have passed since the last line."""

    def __init__(self, what, total, unit, every=None, clock=time.monotonic):
        self.what, self.total, self.unit = what, total, unit
        self.every = PROGRESS_SECONDS if every is None else every
        self.clock = clock
        self.start = self.last = clock()

    def update(self, done):
        """Report `done` items; silent for the last one (the loop's own result line follows)."""
        now = self.clock()
        if done < self.total and now - self.last >= self.every:
            self.last = now
            print("%s: %d/%d %s, %d s" % (self.what, done, self.total, self.unit, now - self.start), flush=True)
