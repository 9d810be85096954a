"""Step time and throughput, reported the same way by every model.

The wrappers in common/ascend_wrapper.sh read the final `step_time_summary:` line (common/log_lines.py defines it):
    step_time: step=200 steps=100 mean_dt=0.012345 throughput=1234.56 images/s
    step_time_summary: mean_dt=0.012345 steps=950 warmup=50 throughput=1234.56 images/s
mean_dt is seconds per training step with the warm-up steps (graph build, first-run allocation) left out.
"""
import time

from common.log_lines import STEP_TIME, STEP_TIME_SUMMARY


class StepTimer(object):
    """Times training steps; call start() before and stop() after each timed session call."""

    def __init__(self, batch_size, warmup_steps=5, unit="images", log_every=100, printer=print):
        self.batch_size = batch_size
        self.warmup_steps = warmup_steps
        self.unit = unit
        self.log_every = log_every
        self.printer = printer
        self.steps_seen = 0          # all steps, warm-up included
        self.timed_steps = 0         # steps after warm-up
        self.timed_seconds = 0.0
        self._window_steps = 0
        self._window_seconds = 0.0
        self._t0 = None

    def start(self):
        self._t0 = time.perf_counter()

    def stop(self, steps=1):
        """End a timed call that ran `steps` training steps; returns its duration in seconds."""
        dt = time.perf_counter() - self._t0
        self.record(dt, steps)
        return dt

    def record(self, seconds, steps=1):
        """Account `seconds` spent on `steps` steps (for loops that time themselves)."""
        first = self.steps_seen
        self.steps_seen += steps
        if first < self.warmup_steps:
            return
        self.timed_steps += steps
        self.timed_seconds += seconds
        self._window_steps += steps
        self._window_seconds += seconds
        if self.log_every and self._window_steps >= self.log_every:
            self.printer(STEP_TIME.format(step=self.steps_seen, steps=self._window_steps,
                                          mean_dt=self._window_seconds / self._window_steps,
                                          throughput=self._rate(self._window_steps, self._window_seconds),
                                          unit=self.unit))
            self._window_steps, self._window_seconds = 0, 0.0

    def _rate(self, steps, seconds):
        return self.batch_size * steps / seconds if seconds > 0 else 0.0

    @property
    def mean_step_time(self):
        return self.timed_seconds / self.timed_steps if self.timed_steps else float("nan")

    @property
    def throughput(self):
        return self._rate(self.timed_steps, self.timed_seconds)

    def summary(self):
        """Print and return the summary line; falls back to all steps if the run was shorter than warm-up."""
        # no timed step: mean_dt=nan steps=0 warmup=<all steps> throughput=0.00
        line = STEP_TIME_SUMMARY.format(mean_dt=self.mean_step_time, steps=self.timed_steps,
                                        warmup=self.steps_seen - self.timed_steps, throughput=self.throughput,
                                        unit=self.unit)
        self.printer(line)
        return line
