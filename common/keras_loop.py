"""Keras's fit drives the one training loop (common/train_loop.py): an epoch is the loop's call.

    loop = TrainLoop(None, initial_epoch, epochs, unit="epoch", checkpoint=..., timer=StepTimer(...),
                     hooks=[MyEpochLine()], where="the end of sgd epoch %d")
    keras_loop.fit(loop, model, x, y, callbacks=[swa], batch_size=512, verbose=0)

fit() wraps the model's own Keras callbacks between two of the loop's: the first callback ends each batch's
timing, the last starts it (so no callback's work is timed) and, at each epoch's end, after the model's
callbacks (a checkpoint must hold what they did that epoch), hands the epoch's logs to loop.after_call: the
loop's hooks, then its save policy. A stop request ends fit after that epoch; the loop then says where and
what was saved. Only full batches are timed, so samples/s = batch_size / mean step time holds.
"""
from common.tf_compat import tf


def fit(loop, model, x, y, callbacks=(), batch_size=None, **fit_args):
    """model.fit from epoch loop.step to loop.total through `loop`; returns the loop."""
    def drive(loop):
        first = _First(loop, batch_size)
        model.fit(x, y, batch_size=batch_size, epochs=loop.total, initial_epoch=loop.step,
                  callbacks=[first] + list(callbacks) + [_Last(loop, first)], **fit_args)
    return loop.train(drive)


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
