"""The one training loop of the four models, in the shape of detectron2's TrainerBase: the loop runs session calls
from `start` to `total` and owns what every model does alike; each model supplies hooks for what is its own.

    loop = TrainLoop(run, start, total, per_run=steps_per_run(options), unit="iteration",
                     checkpoint=Checkpoint(saver, sess, directory, name="model%d", every=1000),
                     timer=StepTimer(...), hooks=[MyLogLine(), MyEvaluation()])
    loop.train()

The loop owns: "nothing to train", the stop request (Ctrl-C/SIGTERM) and its one message shape, step timing,
the save policy (every N steps, at the end, on a stop) and the step-time summary. One session call runs
`per_run` steps (Ascend's iterations_per_loop, or `repeat`'s in-graph loop elsewhere): its fetched values are
the last step's, and hooks, saves and stop requests see multiples of `per_run`, as on the NPU.

A model's hooks get `after_run(loop)` after each call, with `loop.step` the steps done (the next step's index),
`loop.last` the index of the last step run, `loop.values` the call's fetched values and `loop.seconds` its
duration. A hook may end training early with `loop.finish()` (the end-of-run save follows) and hand the stop
request (`loop.stop_request`) to a long evaluation so that it can end between two of its own steps.
"""
import time

from common import checkpoints
from common.errors import UserError
from common.stop import StopRequest


class Hook(object):
    """Override what you need; `loop` is the running TrainLoop."""

    def before_train(self, loop):
        pass

    def after_run(self, loop):
        pass

    def after_train(self, loop):
        pass


class Checkpoint(object):
    """The save policy: a checkpoint every `every` steps (at the call that crosses a multiple; with since_last,
    once `every` steps have run since the last save or the run's start, as TF's CheckpointSaverHook), at the end
    of a run that trained, and on a stop request. `name % last_step` (e.g. MT-net's upstream 'model%d') or, with
    name=None, saver.save(..., global_step) under `prefix` (AM3's and MobileNetV3's 'model.ckpt-N'), N the steps
    done or the value of the `global_step` variable when one is given (AM3's counts its episodic steps only)."""

    def __init__(self, saver, sess, directory, name=None, prefix="model.ckpt", every=0, enabled=True,
                 since_last=False, global_step=None):
        self.saver, self.sess, self.directory = saver, sess, directory
        self.name, self.prefix, self.every, self.enabled = name, prefix, every, enabled
        self.since_last, self.global_step, self.last_saved = since_last, global_step, None
        if enabled:
            checkpoints.require_writable(directory)

    def save(self, steps_done):
        """Save the state after `steps_done` steps; returns the path ('nothing' before the first step or when
        this process does not save)."""
        if not self.enabled or steps_done <= 0:
            return "nothing"
        import os
        self.last_saved = steps_done
        if self.name is not None:
            return checkpoints.save(self.saver, self.sess, os.path.join(self.directory, self.name % (steps_done - 1)))
        return checkpoints.save(self.saver, self.sess, os.path.join(self.directory, self.prefix),
                                global_step=steps_done if self.global_step is None else self.global_step)

    def due(self, loop):
        if not self.every:
            return False
        if self.since_last:
            return loop.step - (loop.start if self.last_saved is None else self.last_saved) >= self.every
        return crosses(loop.step - loop.per_run, loop.per_run, self.every)


def crosses(first, per_run, interval, count_zero=False):
    """Whether steps first..first+per_run-1 hold a multiple of `interval` (0 only with count_zero): with one step
    per call upstream's `itr % interval == 0 and itr != 0`; looped, the call that runs that step."""
    k = first + per_run - 1
    k -= k % interval
    return k >= first and (count_zero or k > 0)


class TrainLoop(object):
    """run(step) -> the fetched values of the session call that starts at global step `step`; timed(step) says
    whether that call counts in the step time (default: every call)."""

    def __init__(self, run, start, total, per_run=1, unit="step", checkpoint=None, timer=None, hooks=(),
                 stop_enabled=True, nothing_to_train=None, timed=None):
        if per_run < 1:
            raise UserError("iterations_per_loop must be >= 1, got %d" % per_run)
        if per_run > 1 and start < total and (total - start) % per_run:
            raise UserError("iterations_per_loop=%d must divide the %ss left to train (%d, from %s %d to %d): "
                            "each session call runs that many" % (per_run, unit, total - start, unit, start, total))
        self.run, self.start, self.total, self.per_run, self.unit = run, start, total, per_run, unit
        self.checkpoint, self.timer, self.hooks = checkpoint, timer, list(hooks)
        self.stop_enabled, self.timed = stop_enabled, timed
        self.nothing_to_train = nothing_to_train or "%ss %d of %d already done" % (unit, start, total)
        self.step = start
        self.values = self.seconds = self.stop_request = None
        self._finished = False

    @property
    def last(self):
        """Index of the last step the latest session call ran."""
        return self.step - 1

    @property
    def trained(self):
        return self.step > self.start

    def finish(self):
        """End training after the current session call (a hook's early stop)."""
        self._finished = True

    def train(self):
        if self.start >= self.total:
            print("nothing to train: " + self.nothing_to_train, flush=True)
        for hook in self.hooks:
            hook.before_train(self)
        with StopRequest(enabled=self.stop_enabled) as stop:
            self.stop_request = stop
            while self.step < self.total and not self._finished:
                if stop.requested:
                    stop.stop("%s %d" % (self.unit, self.step), self._save())
                self._run_once()
        if self.trained and self.checkpoint is not None and not self._saved_last:
            self.checkpoint.save(self.step)
        for hook in self.hooks:
            hook.after_train(self)
        if self.trained and self.timer is not None:
            self.timer.summary()     # no step time when nothing was trained (the wrappers then report none)
        return self

    _saved_last = False

    def _run_once(self):
        t0 = time.perf_counter()
        self.values = self.run(self.step)
        self.seconds = time.perf_counter() - t0
        if self.timer is not None and (self.timed is None or self.timed(self.step)):
            self.timer.record(self.seconds, self.per_run)
        self.step += self.per_run
        for hook in self.hooks:
            hook.after_run(self)
        self._saved_last = False
        if self.checkpoint is not None and self.checkpoint.due(self):
            self.checkpoint.save(self.step)
            self._saved_last = True

    def _save(self):
        return self.checkpoint.save(self.step) if self.checkpoint is not None else "nothing"


def repeat(iterations, step_fn, initial):
    """An in-graph loop running step_fn() `iterations` times in one session call; returns the last run's outputs.

    step_fn() builds one training step (its data drawn inside it, e.g. an iterator's get_next, so every
    iteration reads the next element) and returns a list of tensors shaped and typed as `initial`, each computed
    after the step's update. Variables the step creates are made once (TF's init_scope lifts them out of the
    loop), and the graph is the same for every `iterations` but its one constant, so a seed draws the same
    numbers at every step whatever the loop length: N=1 and N=100 train alike.
    """
    from common.tf_compat import tf

    def body(i, *previous):
        # the step's ops and variables are named as in a plain build (no 'iterations_per_loop/' prefix), so a
        # checkpoint restores whichever way it was written (N=1 or N, in-graph loop or the Ascend route's plain step)
        with tf.compat.v1.get_default_graph().name_scope(None):
            outputs = step_fn()
        with tf.control_dependencies(outputs):
            return [i + 1] + [tf.identity(value) for value in outputs]

    looped = tf.compat.v1.while_loop(lambda i, *_: i < iterations, body, [tf.constant(0)] + list(initial),
                                     parallel_iterations=1, back_prop=False, name="iterations_per_loop")
    return looped[1:]
