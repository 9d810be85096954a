"""Checkpoints that survive what happens to output directories, for the scripts that drive tf.Session themselves.

What is on disk decides, not the `checkpoint` index file: a lost index, a moved or copied output directory, or a
truncated newest checkpoint still resume from the newest intact checkpoint of *this* directory. Saves that fail
(read-only directory, full disk) are one error line and leave no temporary files behind.
"""
import glob
import os
import re

from common.errors import UserError
from common.tf_compat import tf

_STEP = re.compile(r"(\d+)$")
# A damaged file (truncated, bad checksum); anything else from a restore means another model's checkpoint.
_DAMAGED = (tf.errors.DataLossError, tf.errors.OutOfRangeError)
_OTHER_MODEL = (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, ValueError)


def _step(prefix):
    match = _STEP.search(prefix)
    return int(match.group(1)) if match else -1


def _complete(prefix):
    """True when the index file and every data shard of a checkpoint are there."""
    shards = glob.glob(glob.escape(prefix) + ".data-*-of-*")
    if not shards:
        return False
    count = int(shards[0].rsplit("-of-", 1)[1])
    return all(os.path.exists("%s.data-%05d-of-%05d" % (prefix, i, count)) for i in range(count))


def checkpoint_paths(directory):
    """The complete checkpoints in `directory`, oldest first (by step, then time), as paths inside it."""
    if not directory or not os.path.isdir(directory):
        return []
    prefixes = [os.path.join(directory, name[:-len(".index")]) for name in os.listdir(directory)
                if name.endswith(".index")]
    prefixes = [p for p in prefixes if _complete(p)]
    return sorted(prefixes, key=lambda p: (_step(p), os.path.getmtime(p + ".index")))


def latest_checkpoint(directory):
    """Path of the newest checkpoint in `directory`, or None when there is none yet. A directory with traces of
    checkpoints (an index file, .index files) but none complete is an error, not a silent start from scratch."""
    paths = checkpoint_paths(directory)
    if paths:
        return paths[-1]
    traces = [name for name in os.listdir(directory) if name == "checkpoint" or name.endswith(".index")] \
        if directory and os.path.isdir(directory) else []
    if traces:
        raise UserError("%s holds no complete checkpoint (files missing); restore them, or use another output "
                        "directory to start from scratch" % directory)
    return None


def _first_line(err):
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _restore_one(saver, sess, path):
    """saver.restore; True when done, False when the files are damaged; another model's checkpoint raises."""
    try:
        saver.restore(sess, path)
        return True
    except _DAMAGED as err:
        print("warning: checkpoint %s is damaged (%s)" % (path, _first_line(err)), flush=True)
        return False
    except _OTHER_MODEL as err:
        raise UserError("cannot restore checkpoint %s (written by a different model/config): %s"
                        % (path, _first_line(err)))


def restore(saver, sess, path, fall_back=True):
    """Restore `path`; returns the path restored. A damaged checkpoint gives way to the newest intact older one
    of its directory (fall_back), and the saver takes over the older ones so its max_to_keep spans resumes."""
    paths = checkpoint_paths(os.path.dirname(path) or ".")
    older = [p for p in paths if _step(p) < _step(path)] if fall_back else []
    for candidate in [path] + older[::-1]:
        if _restore_one(saver, sess, candidate):
            if candidate != path:
                print("warning: resuming from the previous checkpoint %s instead" % candidate, flush=True)
            kept = [p for p in paths if _step(p) <= _step(candidate)]
            saver.recover_last_checkpoints(kept)
            return candidate
    raise UserError("cannot restore checkpoint %s: it is damaged%s; delete the damaged files or use another "
                    "output directory" % (path, " and so are the %d older ones" % len(older) if older else ""))


def restore_latest(saver, sess, directory):
    """Restore the newest intact checkpoint in `directory`; returns its path, or None if there is none."""
    path = latest_checkpoint(directory)
    return restore(saver, sess, path) if path else None


def require_writable(directory):
    """Fail at the start, not at the first save hours later, when checkpoints cannot be written."""
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as err:
        raise UserError("cannot write checkpoints to %s: %s" % (directory, err.strerror or err))


def save(saver, sess, prefix, **kwargs):
    """saver.save with one error line when the disk is full or the directory not writable; the partial files
    of the failed save are removed. Returns the saved path."""
    directory = os.path.dirname(prefix) or "."
    before = _entries(directory)
    try:
        return saver.save(sess, prefix, **kwargs)
    except (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError, tf.errors.UnknownError,
            tf.errors.InternalError, tf.errors.NotFoundError, OSError) as err:
        _remove_partial_saves(directory, os.path.basename(prefix), before)
        raise UserError("cannot save checkpoint %s: %s (the previous checkpoints are kept; free space or fix "
                        "permissions, then rerun to resume)" % (prefix, _first_line(err)))


def _entries(directory):
    try:
        return set(os.listdir(directory))
    except OSError:
        return set()


def _remove_partial_saves(directory, base, before):
    """Remove what this save left: the names a Saver writes for `base` (seen on both stacks) that were not there
    before it began: '<base>-<step>.data-...-of-....tempstate<n>' and '.index.tempstate<n>' (the bundle writer's),
    '<base>-<step>.meta.tmp<hex>' and 'checkpoint.tmp<hex>' (atomic writes), '<base>-<step>_temp[_<hex>]/' (a
    sharded save's directory). Links are never followed nor removed: a save makes none, so a link is someone
    else's."""
    ours = re.compile(r"%s(-\d+)?(\.data-\d+-of-\d+\.tempstate\d+|\.index\.tempstate\d+|\.meta\.tmp[0-9a-f]+|"
                      r"_temp(_[0-9a-f]+)?)$|checkpoint\.tmp[0-9a-f]+$" % re.escape(base))
    for name in sorted(_entries(directory) - before):
        path = os.path.join(directory, name)
        if not ours.match(name) or os.path.islink(path):
            continue
        try:
            if os.path.isdir(path):
                for inner in os.listdir(path):   # the shards the save wrote; os.remove never follows a link
                    os.remove(os.path.join(path, inner))
                os.rmdir(path)
            else:
                os.remove(path)
        except OSError as err:   # the save's error is the one to report; this only leaves a file behind
            print("warning: could not remove %s of the failed save: %s" % (path, err.strerror or err), flush=True)
