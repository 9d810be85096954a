"""Shared fixtures: the fake npu_bridge, running the project's scripts in a subprocess, a fake model behind the
Ascend wrapper library, and the tiny data sets (AM3's few-shot npz, MobileNetV3's image folders) several test files
use."""
import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_NPU_DIR = os.path.join(REPO, "test", "fake_npu")


def _forget_npu_bridge():
    for name in [m for m in sys.modules if m == "npu_bridge" or m.startswith("npu_bridge.")]:
        del sys.modules[name]


@pytest.fixture
def fake_npu(monkeypatch):
    """Put the recording fake npu_bridge on sys.path; yields its CALLS list."""
    from common import npu_session
    monkeypatch.delenv(npu_session.FALLBACK_ENV, raising=False)
    monkeypatch.delenv("JOB_ID", raising=False)   # the NPU route sets a default; undone after the test
    monkeypatch.syspath_prepend(FAKE_NPU_DIR)
    _forget_npu_bridge()
    npu_session.reset_probe()
    import npu_bridge
    assert npu_session.on_npu()
    yield npu_bridge.CALLS
    _forget_npu_bridge()
    npu_session.reset_probe()


@pytest.fixture
def no_npu():
    """The fallback route (npu_bridge is not installed here; this makes it explicit)."""
    from common import npu_session
    _forget_npu_bridge()
    npu_session.reset_probe()
    assert not npu_session.on_npu()
    yield
    npu_session.reset_probe()


def script_env(fake_npu=False, record_file=None, **extra):
    """Environment for running a project script: repo on PYTHONPATH, quiet TF, optionally the fake NPU."""
    env = dict(os.environ)
    paths = [REPO] + ([FAKE_NPU_DIR] if fake_npu else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHON"] = sys.executable
    env.pop("NPU_FALLBACK", None)
    env.pop("VENV", None)       # setup.sh run by a test must never build into the caller's venv
    env.pop("TF2_BEHAVIOR", None)   # TF 2.x's import sets it here; a TF 1.15 child would take v2 shapes from it
    env.pop("JOB_ID", None)
    if record_file:
        env["FAKE_NPU_RECORD"] = str(record_file)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(args, cwd=REPO, timeout=600, check=True, **env_kwargs):
    """Run a command (list) and return the CompletedProcess with text stdout+stderr in .stdout."""
    proc = subprocess.run(args, cwd=str(cwd), env=script_env(**env_kwargs), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("command failed (%d): %s\n%s" % (proc.returncode, " ".join(map(str, args)),
                                                              proc.stdout[-6000:]))
    return proc


def run_python(script_and_args, **kwargs):
    """Run a Python script of the project with this interpreter."""
    return run([sys.executable] + [str(a) for a in script_and_args], **kwargs)


def rank_table(tmp_path, devices, name="rank_table.json"):
    """Write an Ascend rank table (format 1.0, one server) listing `devices`; returns its path."""
    table = {"version": "1.0", "status": "completed", "server_count": "1",
             "server_list": [{"server_id": "10.0.0.1", "device": [
                 {"device_id": str(d), "device_ip": "192.168.100.%d" % (d + 1), "rank_id": str(i)}
                 for i, d in enumerate(devices)]}]}
    path = tmp_path / name
    path.write_text(json.dumps(table))
    return str(path)


# ---- a fake model behind common/ascend_wrapper.sh (its summary, flags, logs) -----------------------------------
FAKE_TRAIN = textwrap.dedent("""\
    import sys
    args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
    print("args:", sorted(args.items()))
    if args.get("finished") == "1":   # a rerun on a checkpoint that already reached its steps
        print("nothing to train: checkpoint already at step 40")
        print("accuracy_sources: 0.875")
        print("step_time_summary: mean_dt=nan steps=0 warmup=0 throughput=0.00 images/s")
        sys.exit(0)
    if args.get("finished") == "lost":   # no step time and no reason: the summary must fail
        sys.exit(0)
    if args.get("finished") == "warmup":   # trained, but every step was a warm-up step: none timed
        print("step 1 loss : 2.50")
        print("accuracy_sources: 0.5")
        print("step_time_summary: mean_dt=nan steps=0 warmup=3 throughput=0.00 images/s")
        sys.exit(0)
    if args.get("finished") == "never":   # a long start-up: a stop kills it before it could save
        print("starting", flush=True)
        import time
        time.sleep(120)
    for step, loss in enumerate([2.5, 1.5, 0.75], 1):
        print("step %d loss : %.2f" % (step, loss))
    print("accuracy_sources: 0.875")
    print("step_time_summary: mean_dt=0.250000 steps=40 warmup=5 throughput=128.00 images/s")
    sys.exit(int(args.get("exit_code", "0")))
""")

FAKE_WRAPPER = textwrap.dedent("""\
    #!/usr/bin/env bash
    set -euo pipefail
    Network=FakeNet_for_TensorFlow
    BatchSize=32
    data_path=""
    exit_code=0
    finished=0
    source "{repo}/common/ascend_wrapper.sh"
    wrapper_flag data_path "source data of training"
    wrapper_flag exit_code "exit status of the fake training"
    wrapper_flag finished "1: nothing left to train; lost: no step time; warmup: none timed; never: sleeps"
    wrapper_parse "$@"
    extract_losses() {{ grep -o 'loss : [0-9.]*' "$1" | awk '{{print $3}}'; }}
    extract_accuracy() {{ grep -o 'accuracy_sources: [0-9.]*' "$1" | awk '{{print $2}}'; }}
    wrapper_run "$PYTHON" fake_train.py --data_dir="$data_path" --exit_code="$exit_code" --finished="$finished"
    wrapper_summary acc
""")


@pytest.fixture
def fake_model(tmp_path):
    """A model folder with a fake training script and its common/ascend_wrapper.sh wrapper, test/train_full_1p.sh."""
    model = tmp_path / "fakemodel"
    (model / "test").mkdir(parents=True)
    (model / "fake_train.py").write_text(FAKE_TRAIN)
    script = model / "test" / "train_full_1p.sh"
    script.write_text(FAKE_WRAPPER.format(repo=REPO))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return model


# ---- tiny data sets several test files train on ----------------------------------------------------------------
# AM3's tiny configuration: a 2-block backbone, 3-way 1-shot tasks, validation and a checkpoint every 2 steps.
AM3_TINY = ["--num_filters=4", "--num_blocks=2", "--num_units_in_block=1", "--num_max_pools=2", "--cbn_num_layers=2",
            "--num_tasks_per_batch=2", "--num_classes_train=3", "--num_shots_train=1", "--train_batch_size=4",
            "--num_classes_test=3", "--num_shots_test=1", "--eval_batch_size=5", "--num_cases_val=10",
            "--num_cases_test=20", "--log_interval_steps=1", "--seed=1", "--eval_interval_steps=2",
            "--eval_interval_fine_steps=2", "--save_checkpoint_steps=2", "--num_steps_decay_pwc=1"]


def make_am3_data(root, size=16, per_class=10, classes=(8, 6, 6), dim=12, seed=0):
    """AM3's mini-ImageNet layout in `root`: few-shot-{train,val,test}.npz of random images and word vectors."""
    import numpy as np
    rng = np.random.RandomState(seed)
    os.makedirs(root, exist_ok=True)
    for split, count in zip(("train", "val", "test"), classes):
        labels = rng.permutation(np.repeat(np.arange(count), per_class))
        images = rng.randint(0, 256, (len(labels), size, size, 3)).astype(np.uint8)
        np.savez(os.path.join(root, "few-shot-%s.npz" % split), features=images, targets=labels)
        np.savez(os.path.join(root, "few-shot-wordemb-%s.npz" % split),
                 features=rng.randn(count, dim).astype(np.float32))
    return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A tiny AM3 data folder, once per test module."""
    return make_am3_data(str(tmp_path_factory.mktemp("am3data")))


COLOURS = {"cat": (210, 60, 40), "dog": (40, 70, 210), "bird": (60, 200, 60)}


def make_image_folder(root, per_class, size=40, seed=0, classes=("cat", "dog")):
    """`root/<class>/<i>.jpg|png`: noisy images whose dominant colour is the class."""
    import numpy as np
    from PIL import Image
    rng = np.random.RandomState(seed)
    for name in classes:
        folder = os.path.join(str(root), name)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(0, 40, (size, size, 3)) + COLOURS[name], 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(os.path.join(folder, "%d.%s" % (i, "png" if i % 3 == 0 else "jpg")))
    return str(root)


def make_image_data(root):
    """`root/train` (16 images a class) and `root/validation` (4 a class), images only; returns str(root)."""
    make_image_folder(root / "train", 16)
    make_image_folder(root / "validation", 4, seed=1)
    return str(root)


@pytest.fixture(scope="module")
def image_data(tmp_path_factory):
    """make_image_data's folders, plus a text file and a truncated JPEG in train (the loader's skipping)."""
    root = tmp_path_factory.mktemp("mnv3_data")
    make_image_data(root)
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    whole = (root / "train" / "dog" / "1.jpg").read_bytes()
    (root / "train" / "dog" / "truncated.jpg").write_bytes(whole[:len(whole) // 3])
    return str(root)
