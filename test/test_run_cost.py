"""common/run_cost.py and the models' cpu_cost rules: the estimate line a wrapper prints before a long CPU run."""
import pytest

from am3 import cpu_cost as am3_cost
from common import run_cost
from conftest import run
from mtnet import cpu_cost as mtnet_cost
from swa import cpu_cost as swa_cost


def _validations_of_the_training_loop(steps, interval, fine_interval):
    """am3/train.py's condition, step by step (one step per session call)."""
    count = 0
    for main_step in range(1, steps + 1):
        every = fine_interval if main_step > 0.5 * steps else interval
        if (main_step - 1) // every != main_step // every and main_step < steps:
            count += 1
    return count


@pytest.mark.parametrize("steps", [30000, 1001, 20, 3])
def test_am3_counts_the_validations_its_training_loop_runs(steps):
    assert am3_cost.validations(steps) == _validations_of_the_training_loop(steps, 1000, 250)


def test_am3_rule_scales_with_steps_width_and_episodes():
    (train, _), = am3_cost.estimate(train_steps=20)
    assert train == pytest.approx(20 * am3_cost.STEP_SECONDS)
    (narrow, _), = am3_cost.estimate(train_steps=20, num_filters=32)
    assert narrow == pytest.approx(train / 4)
    phases = am3_cost.estimate(train_steps=30000, num_cases_test=50000, validate=1)
    assert [what for _, what in phases] == ["30000 training steps", "74 validations", "500 test episodes"]
    assert phases[2][0] == pytest.approx(500 * am3_cost.EPISODE_SECONDS)


def test_the_line_says_estimate_total_phases_and_the_machine():
    line = run_cost.note([(30000 * 49.0, "30000 training steps"), (43 * 60.0, "500 test episodes")], "TF on X")
    assert line.startswith("estimate on a CPU: about 17 days (30000 training steps 17 days, 500 test episodes "
                           "43 min), from times measured with TF on X")
    assert [run_cost.duration(s) for s in (50, 600, 3 * 3600, 86400, 3 * 86400)] == [
        "50 s", "10 min", "3 h", "24 h", "3 days"]


def test_a_line_only_for_a_long_run_off_ascend(capsys, no_npu):
    run_cost.main(["mtnet", "train_steps=60000", "meta_batch_size=4"])      # the seed run: about 90 s
    run_cost.main(["swa", "train_epochs=100", "num_samples=131072", "baseline=1"])
    assert capsys.readouterr().out == ""
    steps = int(2 * run_cost.LONG_SECONDS / mtnet_cost.STEP_SECONDS)
    run_cost.main(["mtnet", "train_steps=%d" % steps, "meta_batch_size=4"])
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "%d meta-training iterations" % steps in out[0] and mtnet_cost.MEASURED_ON in out[0]
    assert swa_cost.estimate(train_epochs=10, baseline=0)[0][0] < run_cost.LONG_SECONDS


def test_no_line_on_ascend(capsys, fake_npu):
    run_cost.main(["am3", "train_steps=30000"])
    assert capsys.readouterr().out == ""


def test_the_am3_wrapper_says_what_its_defaults_cost_before_it_starts(tmp_path):
    proc = run(["bash", "am3/test/train_performance_1p.sh", "--data_path=" + str(tmp_path / "none")], check=False,
               OUTPUT_ROOT=tmp_path / "out")
    lines = proc.stdout.splitlines()
    notes = [i for i, line in enumerate(lines) if line.startswith("estimate on a CPU: about ")]
    starts = [i for i, line in enumerate(lines) if line.startswith("+ ")]
    assert len(notes) == 1 and notes[0] < starts[0], proc.stdout
    assert "20 training steps" in lines[notes[0]] and am3_cost.MEASURED_ON in lines[notes[0]]


def test_mobilenetv3_rule_counts_the_folder_and_scales_with_pixels(tmp_path):
    from mobilenetv3 import cpu_cost as mnv3_cost
    for split, count in (("train", 64), ("validation", 16)):
        for i in range(count):
            folder = tmp_path / split / ("c%d" % (i % 2))
            folder.mkdir(parents=True, exist_ok=True)
            (folder / ("%d.jpg" % i)).write_bytes(b"")
    (tmp_path / "train" / "c0" / "notes.txt").write_text("not an image")
    (train, what), (val, val_what) = mnv3_cost.estimate(data_path=str(tmp_path), epochs=3, batch=32)
    assert what == "6 training steps of 32 images" and val_what == "validation of 16 images per epoch"
    assert train == pytest.approx(6 * 32 / mnv3_cost.IMAGES_PER_SECOND["small"])
    assert val == pytest.approx(3 * 16 / (mnv3_cost.IMAGES_PER_SECOND["small"] * mnv3_cost.VALIDATION_SPEEDUP))
    (half, _), _ = mnv3_cost.estimate(data_path=str(tmp_path), epochs=3, batch=32, image_size=112, model="large")
    assert half == pytest.approx(6 * 32 / (mnv3_cost.IMAGES_PER_SECOND["large"] * 4))
    (capped, what), _ = mnv3_cost.estimate(data_path=str(tmp_path), epochs=3, batch=32, max_step=4)
    assert what == "4 training steps of 32 images"


def test_the_mobilenetv3_wrapper_notes_a_long_run(tmp_path):
    for i in range(200):
        folder = tmp_path / "data" / "train" / ("c%d" % (i % 2))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ("%d.jpg" % i)).write_bytes(b"")
    proc = run(["bash", "mobilenetv3/test/train_full_1p.sh", "--data_path=" + str(tmp_path / "data"),
                "--model=large", "--epochs=200"], check=False, OUTPUT_ROOT=tmp_path / "out", timeout=120)
    notes = [line for line in proc.stdout.splitlines() if line.startswith("estimate on a CPU: about ")]
    assert len(notes) == 1 and "1200 training steps of 32 images" in notes[0], proc.stdout
