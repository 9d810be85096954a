"""common/step_timer.py: warm-up exclusion, throughput and the lines the wrappers parse."""
import pytest

from common.step_timer import StepTimer


def test_warmup_excluded_and_throughput():
    lines = []
    timer = StepTimer(batch_size=32, warmup_steps=2, log_every=2, printer=lines.append)
    for seconds in (5.0, 4.0, 0.5, 0.5, 1.0, 1.0):
        timer.record(seconds)
    assert timer.timed_steps == 4
    assert timer.mean_step_time == pytest.approx(0.75)
    assert timer.throughput == pytest.approx(32 / 0.75)
    summary = timer.summary()
    assert summary == "step_time_summary: mean_dt=0.750000 steps=4 warmup=2 throughput=42.67 images/s"
    assert lines[:2] == ["step_time: step=4 steps=2 mean_dt=0.500000 throughput=64.00 images/s",
                         "step_time: step=6 steps=2 mean_dt=1.000000 throughput=32.00 images/s"]


def test_multi_step_calls_count_every_step():
    timer = StepTimer(batch_size=10, warmup_steps=4, log_every=0, printer=lambda _: None)
    timer.record(2.0, steps=4)   # one NPU loop of 4 steps: all warm-up
    timer.record(1.0, steps=4)
    assert timer.mean_step_time == pytest.approx(0.25)
    assert timer.throughput == pytest.approx(40.0)


def test_start_stop_measures_time():
    timer = StepTimer(batch_size=1, warmup_steps=0, log_every=0, printer=lambda _: None)
    timer.start()
    assert timer.stop() >= 0.0
    assert timer.timed_steps == 1


def test_summary_of_a_run_shorter_than_warmup_says_nan():
    timer = StepTimer(batch_size=1, warmup_steps=5, printer=lambda _: None)
    timer.record(1.0)
    assert "mean_dt=nan" in timer.summary()
