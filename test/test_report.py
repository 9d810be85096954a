"""common/report.py on tiny wrapper runs: the page's numbers are the log's, the page renders in a real headless
browser with every image loaded, --compare passes on a rerun of the same seed and fails on another learning
rate; MobileNetV3 and SWA write TensorBoard events; bad input is one line."""
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run, run_python, script_env

MTNET_PERF = os.path.join(REPO, "mtnet", "test", "train_performance_1p.sh")
SWA_FULL = os.path.join(REPO, "swa", "test", "train_full_1p.sh")
MNV3_PERF = os.path.join(REPO, "mobilenetv3", "test", "train_performance_1p.sh")
SWA_SMALL = ["--num_samples=3000", "--batch_size=512", "--train_epochs=6", "--swa_start=3", "--swa_freq=2",
             "--swa_lr=0.01", "--swa_lr2=0.03"]
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def wrapper_run(root, script, *flags):
    """Run a wrapper with OUTPUT_ROOT=root; returns (its output directory, its stdout)."""
    proc = run(["bash", script] + list(flags), OUTPUT_ROOT=root, timeout=600)
    return root / "0", proc.stdout


def report_data(run_dir):
    with open(str(run_dir / "report.json")) as handle:
        return json.load(handle)["runs"][0]


def loss_file(run_dir):
    (path,) = run_dir.glob("train_*_loss.txt")
    return [float(v) for v in path.read_text().split()]


def log_lines(run_dir, prefix):
    return [line for line in (run_dir / "train_0.log").read_text().splitlines() if line.startswith(prefix)]


def report(*args, **kwargs):
    return run_python(["-m", "common.report"] + [str(a) for a in args], check=False, **kwargs)


@pytest.fixture(scope="module")
def mtnet_runs(tmp_path_factory):
    """Three 100-iteration MT-net runs: a reference, the same seed again, and a 10x outer learning rate."""
    root = tmp_path_factory.mktemp("mtnet_runs")
    flags = ["--train_steps=100"]
    return {name: wrapper_run(root / name, MTNET_PERF, *(flags + extra))
            for name, extra in (("reference", []), ("same_seed", []), ("lr_x10", ["--meta_lr=0.01"]))}


@pytest.fixture(scope="module")
def swa_run(tmp_path_factory):
    return wrapper_run(tmp_path_factory.mktemp("swa_run"), SWA_FULL, *SWA_SMALL)


# ---- the page's numbers are the log's --------------------------------------------------------------------------
def test_wrapper_run_leaves_a_report_whose_numbers_are_the_logs(mtnet_runs):
    run_dir, out = mtnet_runs["reference"]
    assert "report: %s" % (run_dir / "report.html") in out
    data = report_data(run_dir)
    steps, losses = zip(*data["loss"]["loss"])
    assert list(losses) == loss_file(run_dir)                     # what the wrapper's extract_losses found
    assert list(steps) == [int(line.split()[1].rstrip(":")) for line in log_lines(run_dir, "Iteration ")]
    assert len(steps) == 10 and steps[-1] == 99
    summary = log_lines(run_dir, "step_time_summary:")[-1]
    assert data["mean_step_time"] == float(summary.split("mean_dt=")[1].split()[0])
    device = log_lines(run_dir, "device: ")[0]
    assert data["settings"]["device route"] == device
    assert data["settings"]["precision that ran"] == device.split("compute precision: ")[1].split()[0]
    assert data["settings"]["--train_steps"] == "100"               # the wrapper's flags, recorded
    page = (run_dir / "report.html").read_text()
    assert "%.6g" % losses[-1] in page and "meta-training iteration 99" in page
    for png in ("loss.png", "step_time.png"):
        assert "src='%s'" % png in page and (run_dir / png).stat().st_size > 5000


def test_swa_report_and_events_match_the_log(swa_run):
    run_dir, _ = swa_run
    data = report_data(run_dir)
    assert [v for _, v in data["loss"]["loss"]] == loss_file(run_dir)
    sgd = [float(line.split("loss: ")[1].split()[0]) for line in log_lines(run_dir, "sgd epoch ")]
    assert [v for _, v in data["loss"]["loss (sgd baseline)"]] == sgd and len(sgd) == 6
    final = dict(kv.split("=") for kv in log_lines(run_dir, "final test accuracy: ")[-1].split(": ")[1].split())
    assert {k: v[0][1] for k, v in data["evaluation"].items()} == {"test " + k: float(v) for k, v in final.items()}
    # Events: the learning rate of every batch (5 a epoch), the phase, and the averaged model's accuracy.
    events = read_events(run_dir / "ckpt" / "swa")
    batches = 5
    rates = events["learning_rate"]
    assert [step for step, _ in rates] == list(range(1, 6 * batches + 1))
    epoch_lr = [float(line.split("lr: ")[1]) for line in log_lines(run_dir, "swa epoch ")]
    for epoch, rate in enumerate(epoch_lr[:-1], 1):   # the log shows the rate of the epoch's last batch
        assert rates[epoch * batches - 1][1] == pytest.approx(rate, rel=1e-6)
    assert len({round(v, 6) for _, v in rates[2 * batches:5 * batches]}) > 2      # cyclic within the SWA epochs
    assert [v for _, v in events["swa/phase"]] == [0, 0, 1, 1, 1, 2]
    assert events["test_accuracy"][-1] == (6 * batches, pytest.approx(float(final["swa"]), abs=5e-5))
    assert data["learning_rate"]["ckpt/swa"] == [list(p) for p in rates]       # the page's rate: the events'
    assert "test_accuracy" in read_events(run_dir / "ckpt" / "sgd")


def read_events(directory):
    """{tag: [(step, value)]} of the event files in directory, read independently of common.report."""
    from tensorboard.compat.proto import event_pb2
    scalars = {}
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        while data:
            (length,) = struct.unpack("<Q", data[:8])
            event = event_pb2.Event.FromString(data[12:12 + length])
            data = data[16 + length:]
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_mobilenetv3_events_and_report(tmp_path):
    data_dir = tmp_path / "data"
    for split, count in (("train", 8), ("validation", 2)):
        for name, colour in (("cat", (210, 60, 40)), ("dog", (40, 70, 210))):
            (data_dir / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(np.random.RandomState(i).normal(0, 40, (36, 36, 3)) + colour, 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(str(data_dir / split / name / ("%d.jpg" % i)))
    run_dir, _ = wrapper_run(tmp_path / "out", MNV3_PERF, "--data_path=%s" % data_dir, "--image_size=32",
                             "--batch=8", "--max_step=8", "--learning_rate=0.002")   # 5 warm-up steps, 3 timed
    data = report_data(run_dir)
    assert [v for _, v in data["loss"]["loss"]] == loss_file(run_dir) and len(loss_file(run_dir)) == 8
    val = [float(line.split("val_acc=")[1].split()[0]) for line in log_lines(run_dir, "epoch ")]
    assert [v for _, v, _ in data["evaluation"]["validation"]] == val and len(val) == 4
    events = read_events(run_dir / "ckpt_perf")
    assert [step for step, _ in events["loss"]] == list(range(1, 9))
    assert [v for _, v in events["loss"]] == pytest.approx(loss_file(run_dir), abs=1e-6)
    assert [v for _, v in events["val_accuracy"]] == pytest.approx(val, abs=1e-6)
    assert [v for _, v in events["learning_rate"]] == pytest.approx([0.002] * 4)
    assert data["learning_rate"]["ckpt_perf"] == [list(p) for p in events["learning_rate"]]
    assert "accuracy" in events


# ---- the porting check -----------------------------------------------------------------------------------------
def relative_differences(reference, candidate):
    return [abs(c - r) / abs(r) for r, c in zip(loss_file(reference), loss_file(candidate))]


def test_compare_passes_on_the_same_seed_and_fails_on_another_learning_rate(mtnet_runs, tmp_path):
    reference = mtnet_runs["reference"][0]
    same = report("--compare", reference, mtnet_runs["same_seed"][0])
    assert same.returncode == 0, same.stdout
    assert same.stdout.splitlines()[-1] == "PASS: mean relative loss difference 0% <= tolerance 1%"
    other = mtnet_runs["lr_x10"][0]
    changed = report("--compare", reference, other, "--out", tmp_path / "page")
    assert changed.returncode == 1, changed.stdout
    expected = relative_differences(reference, other)
    data = json.loads((tmp_path / "page" / "report.json").read_text())
    assert data["compare"]["relative_differences"] == pytest.approx(expected)
    assert data["compare"]["mean"] == pytest.approx(np.mean(expected)) and data["compare"]["passed"] is False
    assert "FAIL: mean relative loss difference %.3g%% > tolerance 1%%" % (100 * np.mean(expected)) \
        in changed.stdout
    page = (tmp_path / "page" / "report.html").read_text()
    assert "class='fail'" in page and "loss_difference.png" in page
    assert [run["label"] for run in data["runs"]] == ["reference/0", "lr_x10/0"]
    # The window and the tolerance flag: the first logged step alone, and a tolerance above its difference.
    first = report("--compare", reference, other, "--window=:10", "--tolerance=%r" % (expected[0] * 1.01 + 1e-9))
    assert first.returncode == 0 and "window 10..10 (1 steps)" in first.stdout


def test_several_runs_on_one_page(mtnet_runs, tmp_path):
    proc = report(*[mtnet_runs[name][0] for name in ("reference", "lr_x10")], "--out", tmp_path / "both")
    assert proc.returncode == 0, proc.stdout
    data = json.loads((tmp_path / "both" / "report.json").read_text())
    assert [run["loss"]["loss"] for run in data["runs"]] == \
        [report_data(mtnet_runs[name][0])["loss"]["loss"] for name in ("reference", "lr_x10")]
    assert "reference/0 vs lr_x10/0" in (tmp_path / "both" / "report.html").read_text()


# ---- the page in a real browser --------------------------------------------------------------------------------
# Test-only: after every image has loaded or failed, list each image's state and place (the report has no script).
PROBE = """<script>window.addEventListener('load', function () {
  var found = [].map.call(document.images, function (img) {
    var r = img.getBoundingClientRect();
    return {src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth,
            left: r.left + window.scrollX, top: r.top + window.scrollY, w: r.width, h: r.height};
  });
  var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(found);
  document.body.appendChild(pre);
});</script>"""


def chromium(*args):
    proc = subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                           "--force-device-scale-factor=1"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120, env=script_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium here (Debian: apt-get install chromium)")
def test_page_renders_in_a_browser_with_every_image_loaded_and_drawn(swa_run):
    run_dir, _ = swa_run
    page = (run_dir / "report.html").read_text()
    assert "<script" not in page and "http" not in page.replace(run_dir.as_uri(), "")   # nothing from elsewhere
    probe = run_dir / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    images = json.loads(html.unescape(dom.split("<pre id=\"probe\">")[1].split("</pre>")[0]))
    assert [img["src"] for img in images] == ["loss.png", "evaluation.png", "learning_rate.png", "step_time.png"]
    assert all(img["complete"] and img["width"] == 800 for img in images), images
    height = int(max(img["top"] + img["h"] for img in images)) + 40
    shot = run_dir / "screenshot.png"
    chromium("--screenshot=%s" % shot, "--window-size=1200,%d" % height, (run_dir / "report.html").as_uri())
    pixels = np.asarray(Image.open(str(shot)).convert("RGB")).astype(int)
    for img in images:
        top, left = int(img["top"]), int(img["left"])
        region = pixels[top:top + int(img["h"]), left:left + int(img["w"])]
        coloured = (np.abs(region - region[..., :1]).max(axis=2) > 60).mean()   # a curve or bar, not grey
        drawn = (region.min(axis=2) < 200).mean()                                # axes, text, lines
        assert 0.002 < coloured and 0.01 < drawn < 0.9, (img["src"], coloured, drawn)
    blank = pixels[height - 30:height - 10, 600:1100]             # below the last image: the page background
    assert (blank.min(axis=2) > 200).mean() > 0.5


# ---- bad input: one line each ----------------------------------------------------------------------------------
def one_error_line(proc):
    assert proc.returncode == 2, proc.stdout
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stdout, proc.stdout
    return lines[0]


def mtnet_log(directory, steps):
    directory.mkdir(parents=True)
    (directory / "train_0.log").write_text("".join("Iteration %d: 1.0, %g\n" % (s, 1.0 / s) for s in steps))
    return directory


def test_bad_input_is_one_clear_line(tmp_path):
    assert "does not exist" in one_error_line(report(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    assert "has no training log train_<device id>.log" in one_error_line(report(tmp_path / "empty"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "train_0.log").write_text("hello\nstep_time_summary: mean_dt=0.1 steps=3 warmup=1\n")
    assert "no loss lines in %s" % (tmp_path / "other" / "train_0.log") in one_error_line(report(tmp_path / "other"))
    a, b = mtnet_log(tmp_path / "a", [10, 20]), mtnet_log(tmp_path / "b", [15, 25])
    line = one_error_line(report("--compare", a, b))
    assert "have no step in common (reference steps 10..20, candidate steps 15..25)" in line
    assert "--window must be FIRST:LAST" in one_error_line(report("--compare", a, a, "--window=5"))
    assert report("--compare", a, a).returncode == 0


def test_a_failing_report_is_one_warning_and_the_run_still_passes(fake_model, tmp_path):
    # conftest's fake model: a wrapper whose log has no loss lines the report knows
    proc = run(["bash", str(fake_model / "test" / "train_full_1p.sh")], OUTPUT_ROOT=tmp_path / "out")
    warnings = [line for line in proc.stdout.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "warning: no report written (error: no loss lines in" in warnings[0]
    assert "Final Train Accuracy : 0.875" in proc.stdout
    assert "--data_path" not in (tmp_path / "out" / "0" / "wrapper_flags.txt").read_text()   # empty: not set
    assert "--exit_code = 0" in (tmp_path / "out" / "0" / "wrapper_flags.txt").read_text()


def test_an_appended_log_reports_its_newest_run_with_the_runs_it_resumed():
    from common import report as R
    loss = next(m.loss for m in R.MODELS if m.name == "MT-net")
    log = ["===== train_full_1p.sh --train_steps=2 (1) =====", "Iteration 1: 1.0, 9.0", "Iteration 2: 1.0, 8.0",
           "Restoring model weights from x/model2", "===== train_performance_1p.sh (2) =====",
           "Iteration 1: 1.0, 50.0", "===== train_full_1p.sh --train_steps=4 (3) =====",
           "Restoring model weights from x/model2", "Iteration 3: 1.0, 7.0", "Iteration 4: 1.0, 6.0",
           "===== train_full_1p.sh --train_steps=4 (4) =====", "nothing to train"]
    lines = R.newest_run_lines(log, loss)
    assert [line for line in lines if line.startswith("Iteration")] == [
        "Iteration 1: 1.0, 9.0", "Iteration 2: 1.0, 8.0", "Iteration 3: 1.0, 7.0", "Iteration 4: 1.0, 6.0"]


def test_am3_log_numbers_reach_the_report(tmp_path):
    """AM3's loss, validation and test lines (a tiny real run, its output laid out as a wrapper's log)."""
    from common import report as R
    from conftest import AM3_TINY as TINY, make_am3_data as make_data
    data = make_data(str(tmp_path / "data"))
    common = ["--data_dir", data, "--log_dir", str(tmp_path / "log")] + TINY
    trained = run_python(["am3/AM3_TADAM.py", "--train_steps=4", "--log_interval_steps=1",
                          "--eval_interval_steps=2", "--eval_interval_fine_steps=2"] + common).stdout
    tested = run_python(["am3/AM3_TADAM.py", "--mode=test", "--num_cases_test=20"] + common).stdout
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "train_0.log").write_text("===== train_full_1p.sh (x) =====\n" + trained + tested)
    run = R.load_run(str(tmp_path / "0"))
    assert run.model.name == "AM3"
    logged = [(int(m.group(1)), float(m.group(2))) for m in re.finditer(r"step (\d+), loss : (\S+), dt", trained)]
    assert run.loss == logged and len(logged) == 4
    val = re.search(r"step (\d+), accuracy_\w+: (\S+)", trained)
    first_series = next(iter(run.evals.values()))
    assert (int(val.group(1)), float(val.group(2).rstrip(",."))) in [(x, v) for x, v, _ in first_series]
    test = re.search(r"accuracy_target_tst: (\S+) \+- (\S+) \(95% confidence interval", tested)
    assert [(v, ci) for _, v, ci in run.evals["test"]] == [(float(test.group(1)), float(test.group(2)))]


def mobilenet_log(directory, steps, size="small"):
    directory.mkdir(parents=True)
    (directory / "train_0.log").write_text("".join("train step=%d epoch=1 loss=%g acc=0.5\n" % (s, 1.0 / s)
                                                   for s in steps))
    (directory / "wrapper_flags.txt").write_text("wrapper = mobilenetv3/test/train_full_1p.sh\n--model = %s\n" % size)
    return directory


def test_compare_takes_two_runs_of_one_model(tmp_path):
    """--compare A B C ignored C; two different models were compared over whatever steps overlapped, and passed."""
    a, b, c = (mtnet_log(tmp_path / name, [10, 20]) for name in "abc")
    assert "--compare takes exactly two run directories, REFERENCE and CANDIDATE (got 3)" in one_error_line(
        report("--compare", a, b, c))
    small = mobilenet_log(tmp_path / "small", [10, 20])
    line = one_error_line(report("--compare", a, small))
    assert "%s is a run of MT-net, %s of MobileNetV3 (small): compare runs of one model" % (a, small) in line
    large = mobilenet_log(tmp_path / "large", [10, 20], size="large")
    assert "of MobileNetV3 (small), %s of MobileNetV3 (large)" % large in one_error_line(
        report("--compare", small, large))
    same = report("--compare", a, b)
    assert same.returncode == 0 and "compare: MT-net: reference %s, candidate %s" % (a, b) in same.stdout


def test_an_out_that_is_a_file_or_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path):
    """--out naming a file was a FileExistsError traceback; a full disk an OSError traceback and a 0-byte PNG."""
    run_dir = mtnet_log(tmp_path / "run", [10, 20, 30])
    (tmp_path / "file").write_text("mine")
    assert "--out %s is a file, not a directory" % (tmp_path / "file") in one_error_line(
        report(run_dir, "--out", tmp_path / "file"))
    assert (tmp_path / "file").read_text() == "mine"
    # A file size limit stands for a full disk: the first PNG write fails part-way, as ENOSPC would.
    out = tmp_path / "page"
    proc = subprocess.run([sys.executable, "-m", "common.report", str(run_dir), "--out", str(out)], cwd=REPO,
                          env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, preexec_fn=_small_file_limit)
    line = one_error_line(proc)
    assert line.startswith("error: cannot write the report in %s: File too large" % out), line
    assert os.listdir(str(out)) == []


def _small_file_limit():
    import resource
    import signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails (EFBIG) instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
