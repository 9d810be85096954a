"""common/train_loop.py: the one loop's policy, without TensorFlow (the models' tests run it for real)."""
import os
import signal

import pytest

from common.errors import UserError
from common.stop import Stopped
from common.train_loop import Checkpoint, Hook, TrainLoop, crosses


class _Saves(Checkpoint):
    """The save policy of Checkpoint, recording instead of writing."""

    def __init__(self, every):
        self.every, self.saved, self.since_last, self.last_saved = every, [], False, None

    def save(self, steps_done):
        self.saved.append(steps_done)
        return "ckpt-%d" % steps_done


class _Record(Hook):
    def __init__(self):
        self.calls, self.events = [], []

    def before_train(self, loop):
        self.events.append("before")

    def after_run(self, loop):
        self.calls.append((loop.step, loop.last, loop.values))

    def after_train(self, loop):
        self.events.append("after")


def test_each_call_runs_per_run_steps_and_hooks_see_its_last_values():
    record, saves = _Record(), _Saves(every=25)
    loop = TrainLoop(lambda step: "values from %d" % step, 0, 100, per_run=10, checkpoint=saves, hooks=[record])
    loop.train()
    assert [c[:2] for c in record.calls] == [(k + 10, k + 9) for k in range(0, 100, 10)]
    assert record.calls[0][2] == "values from 0" and record.events == ["before", "after"]
    # the calls holding steps 25, 50, 75 end at steps 30, 60, 80 done; the end saves once more
    assert saves.saved == [30, 60, 80, 100]


def test_the_end_is_not_saved_twice():
    saves = _Saves(every=50)
    TrainLoop(lambda step: None, 0, 100, per_run=1, checkpoint=saves).train()
    assert saves.saved == [51, 100]        # upstream: a save after step 50 (itr % 50 == 0), then the end


def test_a_loop_length_that_does_not_divide_the_steps_left_is_one_error():
    with pytest.raises(UserError, match=r"iterations_per_loop=30 must divide the iterations left to train "
                                        r"\(80, from iteration 20 to 100\)"):
        TrainLoop(lambda step: None, 20, 100, per_run=30, unit="iteration")
    TrainLoop(lambda step: None, 100, 100, per_run=30).train()     # nothing left: nothing to divide


def test_nothing_to_train_is_said_once_and_saves_nothing(capsys):
    saves, timer = _Saves(every=10), _Timer()
    TrainLoop(lambda step: 1 / 0, 50, 50, checkpoint=saves, timer=timer,
              nothing_to_train="checkpoint model49 already reached").train()
    assert capsys.readouterr().out == "nothing to train: checkpoint model49 already reached\n"
    assert saves.saved == [] and timer.summaries == 0


class _Timer(object):
    def __init__(self):
        self.steps, self.summaries = [], 0

    def start(self):
        pass

    def stop(self, steps=1):
        self.steps.append(steps)

    def record(self, seconds, steps=1):
        self.steps.append(steps)

    def summary(self):
        self.summaries += 1


def test_a_stop_request_saves_at_the_end_of_the_call_in_flight():
    saves, timer = _Saves(every=0), _Timer()

    def run(step):
        if step == 20:
            os.kill(os.getpid(), signal.SIGINT)      # arrives during the call of steps 20..29
        return step

    with pytest.raises(Stopped) as stopped:
        TrainLoop(run, 0, 100, per_run=10, unit="iteration", checkpoint=saves, timer=timer).train()
    assert str(stopped.value) == ("stopped by SIGINT at iteration 30; saved ckpt-30: rerun the same command to "
                                  "resume")
    assert stopped.value.exit_status == 130 and saves.saved == [30] and timer.steps == [10, 10, 10]


@pytest.mark.parametrize("first,per_run,interval,zero,expected", [
    (100, 1, 100, False, True), (101, 1, 100, False, False), (0, 1, 100, False, False), (0, 1, 100, True, True),
    (100, 100, 100, False, True), (0, 100, 100, False, False), (40, 20, 30, False, False),
    (20, 20, 30, False, True)])
def test_crosses_is_upstreams_interval_test_and_its_looped_form(first, per_run, interval, zero, expected):
    assert crosses(first, per_run, interval, count_zero=zero) is expected


def test_xla_compiled_runs_the_whole_loop_as_one_xla_launch():
    """What --xla claims for MT-net: the loop, its reads and updates, one XlaLaunch op in the executed graph."""
    from common.tf_compat import tf
    from common.train_loop import repeat, resource_variables, xla_compiled
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        with resource_variables():
            counter = tf1.get_variable("counter", [], initializer=tf1.zeros_initializer())

        def step():
            with tf.control_dependencies([counter.assign_add(1.0)]):
                return [counter.read_value() * 2]
        looped = xla_compiled(lambda: repeat(5, step, [tf.constant(0.0)]))
        plain = repeat(5, step, [tf.constant(0.0)])
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            ops = {}
            for name, fetch in (("xla", looped), ("plain", plain)):
                metadata = tf1.RunMetadata()
                value, = sess.run(fetch, options=tf1.RunOptions(output_partition_graphs=True),
                                  run_metadata=metadata)
                ops[name] = {node.op for graph in metadata.partition_graphs for node in graph.node}
                assert value == (10.0 if name == "xla" else 20.0)      # 5 updates per call, the last one's value
    assert "XlaLaunch" in ops["xla"] and "While" not in ops["xla"] and "Enter" not in ops["xla"]
    assert "XlaLaunch" not in ops["plain"] and "Enter" in ops["plain"]


def test_an_outer_loop_drives_the_calls_and_the_loop_keeps_its_policy(capsys):
    """Keras's fit drives the loop (common/keras_loop.py): after_call per epoch, the loop's hooks and saves."""
    record, saves = _Record(), _Saves(every=2)

    def drive(loop):
        for epoch in range(loop.start, loop.total):
            loop.after_call({"loss": epoch})
    TrainLoop(None, 1, 5, unit="epoch", checkpoint=saves, hooks=[record]).train(drive)
    assert [c[0] for c in record.calls] == [2, 3, 4, 5] and record.calls[-1][2] == {"loss": 4}
    assert record.events == ["before", "after"] and saves.saved == [3, 5]
    TrainLoop(None, 5, 5, nothing_to_train="swa: all 5 epochs already done").train(lambda loop: 1 / 0)
    assert capsys.readouterr().out == "nothing to train: swa: all 5 epochs already done\n"


class _EveryCall(_Saves):
    def due(self, loop):
        return True


@pytest.mark.parametrize("stop_at,total", [(2, 5), (4, 5)])
def test_a_driven_stop_ends_after_the_call_in_flight_says_where_and_reuses_its_save(stop_at, total):
    """SWA's shape: every epoch saved, a stop at the end of the epoch in flight (the last one too) names it
    with the model's where-text and the save that epoch made, not a second one."""
    saves = _EveryCall(every=1)

    def drive(loop):
        for epoch in range(loop.start, loop.total):
            if epoch == stop_at - 1:
                os.kill(os.getpid(), signal.SIGTERM)
            loop.after_call(None)
            if loop.stop_requested:
                return

    with pytest.raises(Stopped) as stopped:
        TrainLoop(None, 0, total, unit="epoch", checkpoint=saves, where="the end of sgd epoch %d").train(drive)
    assert str(stopped.value) == ("stopped by SIGTERM at the end of sgd epoch %d; saved ckpt-%d: rerun the same "
                                  "command to resume" % (stop_at, stop_at))
    assert stopped.value.exit_status == 143 and saves.saved == list(range(1, stop_at + 1))


def test_a_stop_during_the_last_call_is_still_a_stop_after_saving_it():
    saves = _Saves(every=0)

    def run(step):
        if step == 9:
            os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(Stopped, match="at step 10; saved ckpt-10"):
        TrainLoop(run, 0, 10, checkpoint=saves).train()
    assert saves.saved == [10]
