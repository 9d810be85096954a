"""Keras's fit drives the one training loop (common/train_loop.py): an epoch is the loop's call.

    loop = TrainLoop(None, initial_epoch, epochs, unit="epoch", checkpoint=..., timer=StepTimer(...),
                     hooks=[MyEpochLine()], where="the end of sgd epoch %d")
    keras_loop.fit(loop, model, x, y, callbacks=[swa], batch_size=512, verbose=0)

fit() wraps the model's own Keras callbacks between two of the loop's: the first callback ends each batch's
timing, the last starts it (so no callback's work is timed) and, at each epoch's end, after the model's
callbacks, hands the epoch's logs to loop.after_call: the loop's hooks, then its save policy. A Keras callback
whose epoch end must run among the hooks (SWA's: after the epoch line, before the events and the checkpoint that
record what it did) goes in the hooks as EpochEnd(callback): fit gets its other hooks, its epoch end runs
there. A stop request ends fit after that epoch; the loop then says where and what was saved. Only full batches
are timed, so samples/s = batch_size / mean step time holds.
"""
from common.tf_compat import tf
from common.train_loop import Hook


def fit(loop, model, x, y, callbacks=(), batch_size=None, **fit_args):
    """model.fit from epoch loop.step to loop.total through `loop`; returns the loop."""
    def drive(loop):
        first = _First(loop, batch_size)
        hooked = [_AllButEpochEnd(hook.callback) for hook in loop.hooks if isinstance(hook, EpochEnd)]
        model.fit(x, y, batch_size=batch_size, epochs=loop.total, initial_epoch=loop.step,
                  callbacks=[first] + hooked + list(callbacks) + [_Last(loop, first)], **fit_args)
    return loop.train(drive)


class EpochEnd(Hook):
    """A Keras callback's on_epoch_end as a loop hook (fit() passes Keras its other hooks)."""

    def __init__(self, callback):
        self.callback = callback

    def after_run(self, loop):
        self.callback.on_epoch_end(loop.last, loop.values)


class _AllButEpochEnd(tf.keras.callbacks.Callback):
    """Stands for an EpochEnd hook's callback in fit's list: forwards all of fit's calls but on_epoch_end."""

    def __init__(self, callback):
        super(_AllButEpochEnd, self).__init__()
        self.callback = callback

    def set_params(self, params):
        self.callback.set_params(params)

    def set_model(self, model):
        self.callback.set_model(model)

    def on_train_begin(self, logs=None):
        self.callback.on_train_begin(logs)

    def on_train_end(self, logs=None):
        self.callback.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self.callback.on_epoch_begin(epoch, logs)

    # fit calls on_train_batch_*, which calls these: overriding them tells Keras 2.x the batch hooks are used
    def on_batch_begin(self, batch, logs=None):
        self.callback.on_train_batch_begin(batch, logs)

    def on_batch_end(self, batch, logs=None):
        self.callback.on_train_batch_end(batch, logs)


class _First(tf.keras.callbacks.Callback):
    """First in the list: its batch-end hook runs right after the step. With compile(steps_per_execution=N)
    the batch hooks run once per execution: begin gets its first batch's index, end its last's."""

    def __init__(self, loop, batch_size):
        super(_First, self).__init__()
        self.loop, self.batch_size = loop, batch_size
        self.begin = 0

    def on_batch_end(self, batch, logs=None):
        if self.loop.timer is not None and (logs or {}).get("size", self.batch_size) == self.batch_size:
            self.loop.timer.stop(steps=max(batch - self.begin + 1, 1))


class _Last(tf.keras.callbacks.Callback):
    """Last in the list: its batch-begin hook runs right before the step, its epoch-end hook after the
    model's callbacks."""

    def __init__(self, loop, first):
        super(_Last, self).__init__()
        self.loop, self.first = loop, first

    def on_batch_begin(self, batch, logs=None):
        self.first.begin = batch
        if self.loop.timer is not None:
            self.loop.timer.start()

    def on_epoch_end(self, epoch, logs=None):
        self.loop.after_call(dict(logs or {}), steps=epoch + 1 - self.loop.step)
        if self.loop.stop_requested:
            self.model.stop_training = True
