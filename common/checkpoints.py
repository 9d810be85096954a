"""Checkpoint restore with one-line errors, for the scripts that drive tf.Session themselves."""
import os


from common.errors import UserError
from common.tf_compat import tf


def latest_checkpoint(directory):
    """Path of the newest checkpoint in `directory`, or None when there is none yet."""
    if not directory or not os.path.isdir(directory):
        return None
    return tf.train.latest_checkpoint(directory)


def restore(saver, sess, path):
    """saver.restore with a clear error when the checkpoint is corrupt or from another model."""
    try:
        saver.restore(sess, path)
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, tf.errors.DataLossError,
            ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError("cannot restore checkpoint %s (corrupt, or written by a different model/config): %s"
                        % (path, first_line))


def restore_latest(saver, sess, directory):
    """Restore the newest checkpoint in `directory`; returns its path, or None if there is none."""
    path = latest_checkpoint(directory)
    if path is not None:
        restore(saver, sess, path)
    return path
