"""Ctrl-C and SIGTERM stop a training run between two steps: the loop saves a checkpoint, says where it stopped
and exits 130 (SIGINT) or 143 (SIGTERM) with that one line, so rerunning the same command resumes there.

    with StopRequest() as stop:
        while step < total:
            if stop.requested:
                stop.stop("step %d" % step, save())
            ...

A signal during a step lets the step finish (TensorFlow runs it to the end anyway); a second signal stops at
once, without a save.
"""
import signal
import threading

from common.errors import UserError
from common.log_lines import STOP_REQUESTED, STOPPED, STOPPED_UNSAVED

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(UserError):
    """Training stopped on request after saving; main_guard prints the message and exits 128 + signal."""

    def __init__(self, message, signum):
        super(Stopped, self).__init__(message)
        self.exit_status = 128 + signum


class StopRequest(object):
    """While active, the first SIGINT/SIGTERM only records the request; the loop checks `requested` between steps.
    Inactive (enabled=False, or outside the main thread) it changes nothing: data-parallel workers stop together
    through their launcher instead, since one rank saving while another waits in an all-reduce would hang."""

    def __init__(self, enabled=True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum = None
        self._previous = {}

    def __enter__(self):
        if self.enabled:
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(STOP_REQUESTED.format(signal=signal.Signals(signum).name), flush=True)

    @property
    def requested(self):
        return self.signum is not None

    def stop(self, where, saved):
        """Raise Stopped: 'stopped by SIGINT at <where>; saved <saved>: rerun the same command to resume'."""
        raise Stopped(STOPPED.format(signal=signal.Signals(self.signum).name, where=where, saved=saved), self.signum)

    def stop_unsaved(self, where, why, then):
        """Raise Stopped for a phase with nothing to save (evaluation): 'stopped by SIGTERM at <where>; <why>:
        <then>'. Wrappers read only a line with 'saved' as a resumable save."""
        raise Stopped(STOPPED_UNSAVED.format(signal=signal.Signals(self.signum).name, where=where, why=why, then=then),
                      self.signum)
