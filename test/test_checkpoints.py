"""common.checkpoints: what is on disk decides (lost index, moved/copied directories, damaged files, keep-N)."""
import os
import shutil

import pytest

from common import checkpoints
from common.errors import UserError
from common.tf_compat import tf

v1 = tf.compat.v1


class Net(object):
    """One variable whose value names the step it was saved at."""

    def __init__(self, shape=(3,), max_to_keep=2):
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.var = v1.get_variable("w", shape=shape, initializer=v1.zeros_initializer())
            self.value = v1.placeholder(tf.float32, shape)
            self.assign = v1.assign(self.var, self.value)
            self.saver = v1.train.Saver(max_to_keep=max_to_keep, save_relative_paths=True)
            init = v1.global_variables_initializer()
        self.sess = v1.Session(graph=self.graph)
        self.sess.run(init)

    def save(self, directory, step):
        self.sess.run(self.assign, {self.value: [float(step)] * self.var.shape[0]})
        return checkpoints.save(self.saver, self.sess, os.path.join(str(directory), "model.ckpt"), global_step=step)

    def restored_step(self):
        return int(self.sess.run(self.var)[0])


def _saved(tmp_path, steps=(10, 20, 30), max_to_keep=5):
    net = Net(max_to_keep=max_to_keep)
    for step in steps:
        net.save(tmp_path / "ckpt", step)
    return tmp_path / "ckpt"


def test_a_lost_index_file_still_resumes_from_the_newest(tmp_path):
    directory = _saved(tmp_path)
    os.remove(str(directory / "checkpoint"))
    net = Net()
    assert checkpoints.restore_latest(net.saver, net.sess, str(directory)).endswith("model.ckpt-30")
    assert net.restored_step() == 30


def test_moved_and_copied_directories_resume_from_their_own_files(tmp_path):
    directory = _saved(tmp_path)
    with open(str(directory / "checkpoint"), "w") as f:   # an index as older TF versions write it: absolute paths
        f.write('model_checkpoint_path: "%s/model.ckpt-30"\n' % directory)
    copy = tmp_path / "copy"
    shutil.copytree(str(directory), str(copy))
    net = Net()
    net.save(copy, 40)     # the copy moves on; the original's files must not be read for it
    assert checkpoints.restore_latest(net.saver, net.sess, str(copy)) == str(copy / "model.ckpt-40")
    moved = tmp_path / "moved"
    shutil.move(str(directory), str(moved))
    assert checkpoints.restore_latest(net.saver, net.sess, str(moved)) == str(moved / "model.ckpt-30")
    assert net.restored_step() == 30


def test_a_truncated_newest_checkpoint_gives_way_to_the_previous_one(tmp_path, capsys):
    directory = _saved(tmp_path)
    data = directory / "model.ckpt-30.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:4])
    net = Net()
    assert checkpoints.restore_latest(net.saver, net.sess, str(directory)).endswith("model.ckpt-20")
    assert net.restored_step() == 20
    out = capsys.readouterr().out
    assert "model.ckpt-30 is damaged" in out and "resuming from the previous checkpoint" in out


def test_every_checkpoint_damaged_is_one_error(tmp_path):
    directory = _saved(tmp_path, steps=(10, 20))
    for step in (10, 20):
        (directory / ("model.ckpt-%d.index" % step)).write_bytes(b"garbage")
    net = Net()
    with pytest.raises(UserError, match="model.ckpt-20: it is damaged and so are the 1 older ones"):
        checkpoints.restore_latest(net.saver, net.sess, str(directory))


def test_another_models_checkpoint_is_an_error_not_a_fallback(tmp_path):
    directory = _saved(tmp_path)
    net = Net(shape=(4,))
    with pytest.raises(UserError, match="model.ckpt-30 .*different model"):
        checkpoints.restore_latest(net.saver, net.sess, str(directory))


def test_keep_n_spans_resumes(tmp_path):
    directory = _saved(tmp_path, steps=(10, 20), max_to_keep=2)
    net = Net(max_to_keep=2)
    checkpoints.restore_latest(net.saver, net.sess, str(directory))
    net.save(directory, 30)
    assert [os.path.basename(p) for p in checkpoints.checkpoint_paths(str(directory))] == \
        ["model.ckpt-20", "model.ckpt-30"]
    with open(str(directory / "checkpoint")) as f:
        assert str(tmp_path) not in f.read()   # relative names: the directory can move


def test_an_unwritable_directory_fails_at_the_start(tmp_path):
    (tmp_path / "file").write_text("")   # root ignores read-only modes; a path through a file fails for anyone
    with pytest.raises(UserError, match="cannot write checkpoints to .*file/ckpt: Not a directory"):
        checkpoints.require_writable(str(tmp_path / "file" / "ckpt"))


def _disk_full_after(net, monkeypatch, *partial):
    """Make the next save write `partial` (directory names ending in / get a shard inside) and then fail."""
    def disk_full(sess, prefix, **kwargs):
        directory = os.path.dirname(prefix)
        for name in partial:
            path = os.path.join(directory, name)
            if name.endswith("/"):
                os.mkdir(path)
                path = os.path.join(path, "part-00000-of-00001.data-00000-of-00001")
            with open(path, "wb") as f:
                f.write(b"x")
        raise tf.errors.ResourceExhaustedError(None, None, "%s; No space left on device" % partial[0])
    monkeypatch.setattr(net.saver, "save", disk_full)


def test_a_failed_save_is_one_error_and_leaves_no_partial_files(tmp_path, monkeypatch):
    directory = _saved(tmp_path, steps=(10,))
    net = Net()
    # What a save cut short by a full disk leaves (the names strace shows on both stacks), and a sharded save's
    # temporary directory (TF 1.x adds a uuid, TF 2.x not).
    _disk_full_after(net, monkeypatch, "model.ckpt-20.data-00000-of-00001.tempstate8697486956916556497",
                     "model.ckpt-20.index.tempstate17979421882053931365", "checkpoint.tmp70afee673d614f2486",
                     "model.ckpt-20.meta.tmpbc3097444cb84dd7", "model.ckpt-20_temp_0123abcd/", "model.ckpt_temp/")
    with pytest.raises(UserError, match="cannot save checkpoint .*No space left on device"):
        net.save(directory, 20)
    assert sorted(os.listdir(str(directory))) == ["checkpoint", "model.ckpt-10.data-00000-of-00001",
                                                  "model.ckpt-10.index", "model.ckpt-10.meta"]


def test_a_failed_save_leaves_links_and_other_files_alone(tmp_path, monkeypatch):
    """The cleanup removed whatever matched *_temp* or *.tmp*, following links: a link x_temp -> /some/dir lost
    every file of /some/dir (then a NotADirectoryError traceback), and a user's notes.tmp.txt went too."""
    directory = _saved(tmp_path, steps=(10,))
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    os.symlink(str(target), str(directory / "x_temp"))
    os.symlink(str(target / "precious.txt"), str(directory / "y.tmp"))
    (directory / "notes.tmp.txt").write_text("mine")
    (directory / "model.ckpt-20_temp_old").mkdir()   # an earlier process's: not this save's to judge
    net = Net()
    _disk_full_after(net, monkeypatch, "model.ckpt-20_temp_0123abcd/")
    with pytest.raises(UserError, match="cannot save checkpoint"):
        net.save(directory, 20)
    assert (target / "precious.txt").read_text() == "keep me"
    assert os.path.islink(str(directory / "x_temp")) and os.path.islink(str(directory / "y.tmp"))
    assert (directory / "notes.tmp.txt").read_text() == "mine"
    assert (directory / "model.ckpt-20_temp_old").is_dir()
    assert not (directory / "model.ckpt-20_temp_0123abcd").exists()
