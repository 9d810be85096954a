"""common/progress.py: time-based progress lines for long evaluation loops."""
from common import progress


class FakeClock(object):
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_line_only_once_the_interval_has_passed(capsys):
    clock = FakeClock()
    meter = progress.Progress("test", 500, "episodes", every=30, clock=clock)
    clock.now += 29
    meter.update(100)
    assert capsys.readouterr().out == ""
    clock.now += 12
    meter.update(120)
    assert capsys.readouterr().out == "test: 120/500 episodes, 41 s\n"
    clock.now += 20       # 20 s after the last line: not yet
    meter.update(200)
    clock.now += 500
    meter.update(500)     # the loop's own result line follows: no line for the last item
    assert capsys.readouterr().out == ""


def test_the_default_interval_is_read_when_a_loop_starts(monkeypatch, capsys):
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)
    meter = progress.Progress("validation on target_val", 3, "episodes")
    meter.update(1)
    meter.update(2)
    assert capsys.readouterr().out.splitlines() == ["validation on target_val: 1/3 episodes, 0 s",
                                                    "validation on target_val: 2/3 episodes, 0 s"]
