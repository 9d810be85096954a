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

An outer loop can run the calls instead (`loop.train(drive)`: Keras's fit, whose call is an epoch, through
common/keras_loop.py); it reports each call with `loop.after_call(values)` and ends once `loop.stop_requested`.
A stop request is honoured after the call in flight, the last one too: the call is saved, then the run stops.
"""
import os
import time

from common import checkpoints
from common.errors import UserError
from common.log_lines import NOTHING_TO_TRAIN
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
    whether that call counts in the step time (default: every call).

    `where % steps_done` or where(steps_done) names the place in the stop line (default "<unit> N"; SWA's "the end
    of sgd epoch N", MobileNetV3's "step N (epoch E)").
    summary=False leaves the step-time summary to the script (SWA prints it after its final results)."""

    def __init__(self, run, start, total, per_run=1, unit="step", checkpoint=None, timer=None, hooks=(),
                 stop_enabled=True, nothing_to_train=None, where=None, summary=True, timed=None):
        if per_run < 1:
            raise UserError("iterations_per_loop must be >= 1, got %d" % per_run)
        if per_run > 1 and start < total and (total - start) % per_run:
            raise UserError("iterations_per_loop=%d must divide the %ss left to train (%d, from %s %d to %d): "
                            "each session call runs that many" % (per_run, unit, total - start, unit, start, total))
        self.run, self.start, self.total, self.per_run, self.unit = run, start, total, per_run, unit
        self.checkpoint, self.timer, self.hooks = checkpoint, timer, list(hooks)
        self.stop_enabled, self.summary, self.timed = stop_enabled, summary, timed
        self.nothing_to_train = nothing_to_train or "%ss %d of %d already done" % (unit, start, total)
        self.where = where or unit + " %d"
        self.step = start
        self.values = self.seconds = None
        self._stop = None
        self._finished = False
        self._last_save = None      # what the latest call saved (None: it saved nothing)

    @property
    def last(self):
        """Index of the last step the latest session call ran."""
        return self.step - 1

    @property
    def trained(self):
        return self.step > self.start

    @property
    def stop_request(self):
        """The active StopRequest (None before train): a long evaluation checks it between its own steps."""
        return self._stop

    @property
    def stop_requested(self):
        """A Ctrl-C/SIGTERM arrived: an outer loop ends after the call in flight (Keras: model.stop_training)."""
        return self._stop is not None and self._stop.requested

    def finish(self):
        """End training after the current session call (a hook's early stop)."""
        self._finished = True

    def train(self, drive=None):
        """Run the session calls from start to total. With `drive`, an outer loop runs them instead: drive(loop)
        calls loop.after_call(values) after each call and returns early once loop.stop_requested (Keras's fit
        through common/keras_loop.py); the stop, the saves, the hooks and the summary stay the loop's."""
        if self.start >= self.total:
            print(NOTHING_TO_TRAIN.format(why=self.nothing_to_train), flush=True)
        for hook in self.hooks:
            hook.before_train(self)
        with StopRequest(enabled=self.stop_enabled) as self._stop:
            if drive is not None:
                if self.step < self.total:
                    drive(self)
            else:
                while self.step < self.total and not self._finished:
                    self._check_stop()
                    self._run_once()
            self._check_stop()      # a request during the last call: it is saved, and still a stop
        if self.trained and self.checkpoint is not None and self._last_save is None:
            self.checkpoint.save(self.step)
        for hook in self.hooks:
            hook.after_train(self)
        if self.trained and self.timer is not None and self.summary:
            self.timer.summary()     # no step time when nothing was trained (the wrappers then report none)
        return self

    def after_call(self, values, steps=None):
        """After a call that ran `steps` steps (per_run unless given): the hooks, then the save policy."""
        self.values = values
        self.step += self.per_run if steps is None else steps
        for hook in self.hooks:
            hook.after_run(self)
        self._last_save = None
        if self.checkpoint is not None and self.checkpoint.due(self):
            self._last_save = self.checkpoint.save(self.step)

    def _run_once(self):
        t0 = time.perf_counter()
        values = self.run(self.step)
        self.seconds = time.perf_counter() - t0
        if self.timer is not None and (self.timed is None or self.timed(self.step)):
            self.timer.record(self.seconds, self.per_run)
        self.after_call(values)

    def _check_stop(self):
        """On a stop request: save (unless the latest call just did) and raise Stopped with where it stopped."""
        if self.stop_requested:
            saved = self._last_save
            if saved is None:
                saved = self.checkpoint.save(self.step) if self.checkpoint is not None else "nothing"
            self._stop.stop(self.where(self.step) if callable(self.where) else self.where % self.step, saved)


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


def xla_compiled(build_loop):
    """build_loop() as one XLA computation (tf.xla.experimental.compile): the whole in-graph loop, its data
    sampling and optimizer update compiled together, the way JAX compiles a scanned loop. Its variables must be
    resource variables (build them under `resource_variables()`); a GetNext cannot be inside. XLA draws its own
    random numbers: a seed gives other tasks and masks than without --xla."""
    from common.tf_compat import tf
    return tf.xla.experimental.compile(build_loop)


def resource_variables():
    """A variable scope making resource variables (XLA reads and updates only those; a checkpoint restores
    either kind)."""
    from common.tf_compat import tf
    tf1 = tf.compat.v1
    return tf1.variable_scope(tf1.get_variable_scope(), use_resource=True)


def ordered_updates(update_ops):
    """Make updates of the same resource variable run in the order given (creation order): each one reads the
    variable after its predecessor's assign. A layer applied several times in one step (AM3's encoder on the
    support, the query and again under FiLM) adds one batch-norm update per pass; unordered, a later pass could
    read the moving statistic before an earlier pass wrote it, so identical runs ended with different
    statistics. Ref-variable updates (no separate read op to order) are left as they are."""
    last = {}
    for op in update_ops:
        if not op.type.endswith("VariableOp") or not op.type.startswith("Assign"):
            continue
        handle = op.inputs[0].name
        if handle in last:
            for read in _reads_inside(op, handle):
                read._add_control_input(last[handle])   # TF's graph API: no public way to add an edge later
        last[handle] = op


def _reads_inside(op, handle):
    """The ReadVariableOps of `handle` among op's ancestors in op's own name scope (its update's arithmetic)."""
    scope = op.name.rsplit("/", 1)[0] + "/"
    seen, todo, reads = set(), [op], []
    while todo:
        current = todo.pop()
        for tensor in current.inputs:
            parent = tensor.op
            if parent.name in seen or not parent.name.startswith(scope):
                continue
            seen.add(parent.name)
            if parent.type == "ReadVariableOp" and parent.inputs[0].name == handle:
                reads.append(parent)
            todo.append(parent)
    return reads
