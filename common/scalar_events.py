"""TensorBoard scalars written from Python numbers, for training loops with no summary ops in their graph.

MobileNetV3's graph is finalized before training and SWA's Keras loop has no place for summary ops, so their
loss, accuracy and learning rate go to an event file this way: `tensorboard --logdir <output dir>` then shows
all four models alike, and common/report.py reads the same files.
"""
from common.tf_compat import tf


class ScalarEvents(object):
    """An event file in `logdir`; with no logdir (a worker that is not the chief) every call does nothing."""

    def __init__(self, logdir):
        # A Python-side writer: it adds no op to the (possibly finalized) default graph. It refuses to be made
        # while TF 2.x runs eagerly (swa's --eager) unless a graph is the default; it never uses one.
        self._writer = None
        if logdir:
            with tf.Graph().as_default():
                self._writer = tf.compat.v1.summary.FileWriter(logdir)

    @property
    def enabled(self):
        return self._writer is not None

    def add(self, step, scalars):
        """Write {tag: number} at `step`; None values are left out."""
        if self._writer is None:
            return
        values = [tf.compat.v1.Summary.Value(tag=tag, simple_value=float(value))
                  for tag, value in sorted(scalars.items()) if value is not None]
        self._writer.add_summary(tf.compat.v1.Summary(value=values), step)

    def flush(self):
        """Make what is written visible to a live TensorBoard now (the writer flushes by itself every 2 min)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
