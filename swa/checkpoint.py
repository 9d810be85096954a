"""The seed script's checkpoints: after every epoch a folder `ckpt-N` (N = epochs done) in the run's directory
holding the model's weights (`model.npz`), the last SGD iterate (`last_iterate.npz`) and, for the SWA run, the
callback's state (`swa.npz`, SWACallback.save_state); `checkpoint.json` names the newest. Written atomically,
the last `keep` kept; resuming takes the newest intact folder.
"""
import json
import os
import shutil
import zipfile

import numpy as np

from common import checkpoints
from common.errors import UserError


def checkpoint_path(directory, epoch):
    """The folder of the checkpoint after `epoch` epochs."""
    return os.path.join(directory, "ckpt-%d" % epoch)


class Checkpoint(object):
    """The common loop's save policy for the seed script (common/train_loop.py; its call is an epoch): after
    every epoch keep the last SGD iterate and, with a directory, write model weights, SWA state and that
    iterate, atomically (a crash leaves the previous checkpoint intact)."""

    def __init__(self, model, directory, swa=None, keep=2):
        self.model = model
        self.directory = directory
        self.swa = swa
        self.keep = keep
        self.last_iterate = None
        if directory:
            checkpoints.require_writable(directory)   # now, not at the end of the first epoch

    def due(self, loop):
        return True     # every epoch, also without a directory: both runs do the same per-epoch work

    def save(self, epochs_done):
        """Save after `epochs_done` epochs; returns what the stop line says was saved."""
        weights = self.model.get_weights()
        if self.swa is None or epochs_done - 1 != getattr(self.swa, "bn_epoch", None):
            self.last_iterate = weights
        if not self.directory:
            return "nothing (no --model_dir)"
        save_checkpoint(self.directory, epochs_done, weights, self.last_iterate, self.swa, self.keep)
        return "checkpoint %s" % checkpoint_path(self.directory, epochs_done)


def save_checkpoint(directory, epoch, weights, last_iterate, swa, keep):
    """Write the checkpoint after `epoch` epochs, point checkpoint.json at it, drop those older than `keep`."""
    os.makedirs(directory, exist_ok=True)
    final = checkpoint_path(directory, epoch)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_files(tmp, weights, last_iterate, swa)
    except OSError as err:   # full disk, read-only directory: one line, no half-written folder left
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError("cannot save checkpoint %s: %s (the previous checkpoints are kept; free space or fix "
                        "permissions, then rerun to resume)" % (final, err))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _point_to(directory, epoch, os.path.basename(final))
    _drop_old(directory, epoch, keep)


def _write_files(folder, weights, last_iterate, swa):
    os.makedirs(folder)
    np.savez(os.path.join(folder, "model.npz"), *weights)
    np.savez(os.path.join(folder, "last_iterate.npz"), *(last_iterate or weights))
    if swa is not None:
        swa.save_state(os.path.join(folder, "swa.npz"))


def _point_to(directory, epoch, name):
    pointer = os.path.join(directory, "checkpoint.json")
    with open(pointer + ".tmp", "w") as f:
        json.dump({"epoch": epoch, "path": name}, f)
    os.replace(pointer + ".tmp", pointer)


def _drop_old(directory, epoch, keep):
    """Remove the checkpoints `keep` or more epochs older than `epoch` (not a folder still being written)."""
    for old in os.listdir(directory):
        if old.startswith("ckpt-") and not old.endswith(".tmp") and old != "ckpt-%d" % epoch:
            try:
                if int(old[5:]) <= epoch - keep:
                    shutil.rmtree(os.path.join(directory, old), ignore_errors=True)
            except ValueError:
                pass


def _load_list(path):
    if not zipfile.is_zipfile(path):   # first: np.load on a truncated file also prints NpzFile.__del__ noise
        raise ValueError("%s is missing or not a complete .npz archive" % path)
    with np.load(path) as f:
        return [f["arr_%d" % i] for i in range(len(f.files))]


def _checkpoint_epochs(directory):
    """Epochs of the complete checkpoints (ckpt-N folders) in `directory`, newest first. The folders decide, not
    checkpoint.json: a lost pointer file is not a silent restart."""
    if not directory or not os.path.isdir(directory):
        return []
    found = [name[len("ckpt-"):] for name in os.listdir(directory) if name.startswith("ckpt-")]
    return sorted((int(n) for n in found if n.isdigit()), reverse=True)


def _read_checkpoint(path, swa):
    """(model weights, last iterate) of one checkpoint folder; None when its files are damaged or missing."""
    try:
        weights = _load_list(os.path.join(path, "model.npz"))
        last_iterate = _load_list(os.path.join(path, "last_iterate.npz"))
        if swa is not None:
            swa.load_state(os.path.join(path, "swa.npz"))
        return weights, last_iterate
    except (IOError, OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as err:
        print("warning: checkpoint %s is damaged (%s)" % (path, str(err).splitlines()[0] if str(err) else
                                                          type(err).__name__), flush=True)
        return None


def restore_checkpoint(directory, model, swa):
    """Load the newest intact checkpoint in `directory` into model/swa; returns (epochs done, last SGD iterate).
    A damaged newest checkpoint gives way to the previous one; another model's is an error."""
    epochs = _checkpoint_epochs(directory)
    for epoch in epochs:
        path = checkpoint_path(directory, epoch)
        loaded = _read_checkpoint(path, swa)
        if loaded is None:
            continue
        try:
            model.set_weights(loaded[0])
        except ValueError as err:
            raise UserError("cannot resume from checkpoint %s (from a different model): %s" % (path, err))
        if epoch != epochs[0]:
            print("warning: resuming from the previous checkpoint %s instead" % path, flush=True)
        print("resumed from %s after epoch %d" % (path, epoch), flush=True)
        return epoch, loaded[1]
    if epochs:
        raise UserError("cannot resume from %s: all %d checkpoints are damaged; delete them or use another "
                        "--model_dir" % (directory, len(epochs)))
    return 0, None
