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
`loop.last` the index of the last step run and `loop.values` the call's fetched values; a hook ends training
early (e.g. early stopping) with `loop.finish()`.
"""
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
    """The save policy: a checkpoint every `every` steps (at the call that crosses a multiple), at the end of a
    run that trained, and on a stop request. `name % last_step` (e.g. MT-net's upstream 'model%d') or, with
    name=None, saver.save(..., global_step) under `prefix` (AM3's and MobileNetV3's 'model.ckpt-N')."""

    def __init__(self, saver, sess, directory, name=None, prefix="model.ckpt", every=0, enabled=True):
        self.saver, self.sess, self.directory = saver, sess, directory
        self.name, self.prefix, self.every, self.enabled = name, prefix, every, enabled
        if enabled:
            checkpoints.require_writable(directory)

    def save(self, steps_done):
        """Save the state after `steps_done` steps; returns the path ('nothing' before the first step or when
        this process does not save)."""
        if not self.enabled or steps_done <= 0:
            return "nothing"
        import os
        if self.name is not None:
            return checkpoints.save(self.saver, self.sess, os.path.join(self.directory, self.name % (steps_done - 1)))
        return checkpoints.save(self.saver, self.sess, os.path.join(self.directory, self.prefix),
                                global_step=steps_done)

    def due(self, loop):
        return bool(self.every) and crosses(loop.step - loop.per_run, loop.per_run, self.every)


def crosses(first, per_run, interval, count_zero=False):
    """Whether steps first..first+per_run-1 hold a multiple of `interval` (0 only with count_zero): with one step
    per call upstream's `itr % interval == 0 and itr != 0`; looped, the call that runs that step."""
    k = first + per_run - 1
    k -= k % interval
    return k >= first and (count_zero or k > 0)


class TrainLoop(object):
    """run(step) -> the fetched values of the session call that starts at global step `step`."""

    def __init__(self, run, start, total, per_run=1, unit="step", checkpoint=None, timer=None, hooks=(),
                 stop_enabled=True, nothing_to_train=None, where=None):
        """where(step): the stop message's place (default '<unit> <step>', e.g. MobileNetV3's 'step N (epoch E)')."""
        if per_run < 1:
            raise UserError("iterations_per_loop must be >= 1, got %d" % per_run)
        if per_run > 1 and start < total and (total - start) % per_run:
            raise UserError("iterations_per_loop=%d must divide the %ss left to train (%d, from %s %d to %d): "
                            "each session call runs that many" % (per_run, unit, total - start, unit, start, total))
        self.run, self.start, self.total, self.per_run, self.unit = run, start, total, per_run, unit
        self.checkpoint, self.timer, self.hooks = checkpoint, timer, list(hooks)
        self.stop_enabled = stop_enabled
        self.nothing_to_train = nothing_to_train or "%ss %d of %d already done" % (unit, start, total)
        self.where = where or (lambda step: "%s %d" % (unit, step))
        self.step = start
        self.values = None
        self.finished = False

    def finish(self):
        """End training after this session call (its save policy and after_train still run)."""
        self.finished = True

    @property
    def last(self):
        """Index of the last step the latest session call ran."""
        return self.step - 1

    @property
    def trained(self):
        return self.step > self.start

    def train(self):
        if self.start >= self.total:
            print("nothing to train: " + self.nothing_to_train, flush=True)
        for hook in self.hooks:
            hook.before_train(self)
        with StopRequest(enabled=self.stop_enabled) as stop:
            while self.step < self.total and not self.finished:
                if stop.requested:
                    stop.stop(self.where(self.step), self._save())
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
        if self.timer is not None:
            self.timer.start()
        self.values = self.run(self.step)
        if self.timer is not None:
            self.timer.stop(steps=self.per_run)
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
