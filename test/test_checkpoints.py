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


def test_a_failed_save_is_one_error_and_leaves_no_partial_files(tmp_path, monkeypatch):
    directory = _saved(tmp_path, steps=(10,))
    net = Net()
    (directory / "model.ckpt-20_temp_abc").mkdir()       # what a save cut short by a full disk leaves
    (directory / "model.ckpt-20_temp_abc" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")

    def disk_full(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "model.ckpt-20_temp_abc; No space left on device")
    monkeypatch.setattr(net.saver, "save", disk_full)
    with pytest.raises(UserError, match="cannot save checkpoint .*No space left on device"):
        net.save(directory, 20)
    assert sorted(os.listdir(str(directory))) == ["checkpoint", "model.ckpt-10.data-00000-of-00001",
                                                  "model.ckpt-10.index", "model.ckpt-10.meta"]
