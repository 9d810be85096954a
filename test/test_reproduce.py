"""Issue 30, reproducing the papers: each model's reproduce.sh runs its protocol end to end at toy scale (--quick) on
tiny generated data and prints the paper's column beside a measured one into the log, reproduction.json and the
report; AM3's upstream evaluation resets what upstream never restored; MT-net's sinusoid frequency is a flag;
MobileNetV3's evaluation preprocessing gives keras.applications' logits on the same JPEGs."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run, run_python, script_env
from common.tf_compat import tf

HAS_KERAS_MNV3 = hasattr(tf.keras.applications, "MobileNetV3Small")   # TF 2.x; TF 1.15's keras has none


def reproduce(model, root, *flags):
    """Run <model>/test/reproduce.sh with OUTPUT_ROOT=root; (its output directory, stdout, reproduction.json)."""
    proc = run(["bash", os.path.join(REPO, model, "test", "reproduce.sh")] + list(flags), OUTPUT_ROOT=root,
               timeout=900)
    out = root / "0"
    with open(str(out / "reproduction.json")) as handle:
        return out, proc.stdout, json.load(handle)


def report_of(out):
    with open(str(out / "report.json")) as handle:
        data = json.load(handle)["runs"][0]
    return data, (out / "report.html").read_text()


def table_lines(log_text):
    return [line for line in log_text.splitlines() if line.startswith("reproduce: | ")]


def check_table(out, stdout, table, rows):
    """The log's table, reproduction.json and the report agree, with a paper column and a measured one."""
    log = (out / "train_0.log").read_text()
    lines = table_lines(log)
    assert lines == table_lines(stdout) and len(lines) == 1 + rows        # header + one line per measurement
    assert "paper" in lines[0] and "this run (95% CI)" in lines[0]
    assert len(table["numbers"]) == rows and table["quick"] is True
    data, page = report_of(out)
    assert data["reproduction"]["numbers"] == table["numbers"]
    assert "Reproduction: " in page and table["title"] in page
    for line, number in zip(lines[1:], table["numbers"]):
        assert line.startswith("reproduce: | %s " % number["row"])
        assert number["measured"] is not None and np.isfinite(number["measured"])
    return log


# ---- AM3 -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def am3_data(tmp_path_factory):
    from conftest import make_am3_data as make_data
    return make_data(str(tmp_path_factory.mktemp("am3repro")), per_class=10, classes=(8, 6, 6))


def test_am3_reproduce_quick_prints_paper_and_both_evaluations(tmp_path, am3_data):
    out, stdout, table = reproduce("am3", tmp_path, "--data_path=" + am3_data, "--quick", "--variants=AM3_TADAM",
                                   "--upstream_eval")
    log = check_table(out, stdout, table, rows=2)
    ours, upstream = table["numbers"]
    assert ours["evaluation"] == "ours" and upstream["evaluation"].startswith("upstream's evaluation")
    assert ours["paper"] == upstream["paper"] == 65.30 and "Table 1, row AM3-TADAM" in ours["paper_source"]
    tests = re.findall(r"^accuracy_target_tst: ([0-9.]+) \+- ([0-9.]+) .*$", log, re.M)
    assert [round(100 * float(a), 6) for a, _ in tests] == [round(n["measured"], 6) for n in (ours, upstream)]
    assert "--metric_multiplier_init=5" in ours["settings"] and "--feat_extract_pretrain=multitask" in ours["settings"]
    assert "upstream evaluation: 5 variables at their initial values" in log   # 2 blocks x 1 unit x (gamma, beta)


def test_am3_rows_use_upstreams_readme_settings():
    from am3 import reproduce as R
    tadam5 = R.settings("mini", 5, "AM3_TADAM")
    assert tadam5["metric_multiplier_init"] == 7 and tadam5["num_cases_test"] == 100000
    assert "num_shots_train" not in tadam5                       # the scripts' default: 5 shots
    tiered = R.settings("tiered", 1, "AM3_protonet++")
    assert tiered["number_of_steps"] == 80000 and tiered["num_steps_decay_pwc"] == 10000
    base = R.settings("mini", 1, "tadam")
    assert not any(k.startswith(("mlp_", "att_")) for k in base) and base["encoder_classifier_link"] == "cbn"
    assert R.settings("mini", 1, "protonet++")["num_cases_test"] == R.UPSTREAM_TEST_QUERIES


def test_upstream_evaluation_puts_back_film_multipliers_and_metric_scale(am3_data):
    """Upstream's evaluation restores only the 'Model' variables: the 24 FiLM multipliers of AM3-TADAM's seed
    backbone and power_weight1 stay at their initial values (0 and -metric_multiplier_init)."""
    from am3 import flags, model as M, train
    cfg = flags.parse_config("AM3_TADAM", ["--data_dir", am3_data, "--metric_multiplier_init=5",
                                           "--metric_multiplier_trainable=True"])
    with tf.Graph().as_default():
        support = tf.zeros([1, 5, 84, 84, 3])
        query = tf.zeros([1, 5, 84, 84, 3])
        M.episode_logits(cfg.model, support, query, tf.zeros([1, 5, 300]), 5, 1, training=False)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            every = tf.compat.v1.global_variables()
            sess.run([tf.compat.v1.assign(v, v + 1.0) for v in every])        # "trained" values
            trained = dict(zip([v.op.name for v in every], sess.run(every)))
            names = train.upstream_evaluation(sess)
            values = dict(zip([v.op.name for v in every], sess.run(every)))
    film = [n for n in names if "cbn_params" in n]
    assert len(film) == 24 and len(names) == 25
    assert all(values[n] == 0 for n in film)
    (metric,) = [n for n in names if n.endswith("power_weight1")]
    assert values[metric] == -5.0
    kept = [n for n in values if n not in names]
    assert len(kept) > 100 and all(np.array_equal(values[n], trained[n]) for n in kept)


# ---- MT-net ----------------------------------------------------------------------------------------------------
def test_mtnet_reproduce_quick_sinusoid_table(tmp_path):
    out, stdout, table = reproduce("mtnet", tmp_path, "--data_path=" + str(tmp_path), "--quick",
                                   "--variants=MT-net", "--sine_freq=1")
    log = check_table(out, stdout, table, rows=6)                 # K = 5, 10, 20 x (1 step, 10 steps)
    assert [n["row"] for n in table["numbers"][::2]] == ["MT-net K=5", "MT-net K=10", "MT-net K=20"]
    assert all("--sine_freq=1" in n["settings"] and "--update_lr=0.01" in n["settings"] for n in table["numbers"])
    mses = [float(m) for m in re.findall(r"^update10: mean (\S+) ", log, re.M)]
    assert mses == pytest.approx([n["measured"] for n in table["numbers"][1::2]], rel=1e-6)
    assert "freq1.0-1.0" in " ".join(os.listdir(str(out / "mtnet_sinusoid")))


def test_sine_frequency_flag_sets_the_drawn_frequencies():
    from mtnet import tasks as T
    from common.errors import UserError
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        fixed = T.regression_tasks("sinusoid", 64, 5, freq_range=T.parse_freq_range("1"))
        default = T.regression_tasks("sinusoid", 64, 5)
        with tf.compat.v1.Session() as sess:
            f1, f2 = sess.run([fixed.params["freq"], default.params["freq"]])
    assert np.all(f1 == 1.0)
    assert f2.min() >= 0.8 and f2.max() <= 1.2 and f2.std() > 0.05
    with pytest.raises(UserError, match="--sine_freq"):
        T.parse_freq_range("1.2,0.8")


def omniglot_source(root, alphabets=3, chars=4, images=10):
    """Omniglot as downloaded: images_background/ and images_evaluation/, 105x105 black-and-white PNGs."""
    rng = np.random.RandomState(0)
    for a in range(alphabets):
        half = "images_background" if a < 2 else "images_evaluation"
        for c in range(chars):
            folder = root / half / ("Alphabet_%d" % a) / ("character%02d" % (c + 1))
            folder.mkdir(parents=True)
            for i in range(images):
                pixels = rng.rand(105, 105) > 0.3 + 0.1 * c
                Image.fromarray(pixels.astype(np.uint8) * 255, "L").convert("1").save(
                    str(folder / ("%02d%02d_%02d.png" % (a, c, i))))
    return root


def test_prepare_mtnet_data_resizes_as_upstream_into_a_new_folder(tmp_path):
    source = omniglot_source(tmp_path / "omniglot_raw", images=2)
    out = tmp_path / "omniglot_resized"
    run_python([os.path.join(REPO, "datasets", "prepare_mtnet_data.py"), "omniglot", "--source=" + str(source),
                "--output_dir=" + str(out)])
    images = sorted(out.glob("*/*/*.png"))
    assert len(images) == 3 * 4 * 2 and {Image.open(str(p)).size for p in images} == {(28, 28)}
    first = sorted(source.glob("*/Alphabet_0/character01/*.png"))[0]
    with Image.open(str(first)) as raw:
        expected = np.asarray(raw.resize((28, 28), resample=Image.LANCZOS))
    assert np.array_equal(np.asarray(Image.open(str(out / "Alphabet_0" / "character01" / first.name))), expected)
    assert Image.open(str(first)).size == (105, 105)                    # the source is left as it was
    again = run_python([os.path.join(REPO, "datasets", "prepare_mtnet_data.py"), "omniglot",
                        "--source=" + str(source), "--output_dir=" + str(out)], check=False)
    assert again.returncode == 2 and "is not empty" in again.stdout

    rng = np.random.RandomState(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "splits").mkdir()
    for split, wnids in (("train", ("n01532829", "n01558993")), ("val", ("n01855672",)), ("test", ("n01930112",))):
        rows = ["filename,label"]
        for wnid in wnids:
            for i in range(2):
                name = "%s%08d.jpg" % (wnid, i + 1)
                Image.fromarray((rng.rand(100, 140, 3) * 255).astype(np.uint8)).save(str(tmp_path / "images" / name))
                rows.append("%s,%s" % (name, wnid))
        (tmp_path / "splits" / (split + ".csv")).write_text("\n".join(rows) + "\n")
    mini = tmp_path / "miniImagenet"
    run_python([os.path.join(REPO, "datasets", "prepare_mtnet_data.py"), "miniimagenet",
                "--image_dir=" + str(tmp_path / "images"), "--split_dir=" + str(tmp_path / "splits"),
                "--output_dir=" + str(mini)])
    assert sorted(p.name for p in (mini / "train").iterdir()) == ["n01532829", "n01558993"]
    assert {Image.open(str(p)).size for p in mini.glob("*/*/*.jpg")} == {(84, 84)}


def test_mtnet_reproduce_quick_omniglot(tmp_path):
    """From Omniglot as downloaded: prepared by datasets/prepare_mtnet_data.py, then the table at toy scale."""
    omni = tmp_path / "omniglot_resized"
    run_python([os.path.join(REPO, "datasets", "prepare_mtnet_data.py"), "omniglot",
                "--source=" + str(omniglot_source(tmp_path / "omniglot")), "--output_dir=" + str(omni)])
    out, stdout, table = reproduce("mtnet", tmp_path / "out", "--data_path=" + str(omni), "--quick",
                                   "--table=omniglot-5way", "--variants=MT-net", "--omniglot_train_chars=6",
                                   "--omniglot_test_chars=5")
    check_table(out, stdout, table, rows=2)                      # 1-shot and 5-shot, accuracy after the last step
    one_shot = table["numbers"][0]
    assert one_shot["paper"] == 99.5 and 0 <= one_shot["measured"] <= 100


def test_every_quoted_paper_number_says_where_it_was_read():
    """A paper cell is quoted only with the stored source it was read at; an interval never without its value."""
    from am3 import paper as am3_paper
    from mtnet import paper as mtnet_paper
    cells = [cell for row in am3_paper.ACCURACY.values() for cell in row.values()]
    cells += list(mtnet_paper.SINUSOID.values()) + list(mtnet_paper.CLASSIFICATION.values())
    for cell in cells:
        assert cell.ci is None or cell.value is not None, cell
        unread = "not read at the source" in cell.source
        assert unread == (cell.value is None), cell
        assert unread or "; as " in cell.source, cell               # names the listing the value came from
    quoted = [cell for cell in cells if cell.ci is not None]
    assert quoted and all("95% CI as " in cell.source for cell in quoted)


# ---- MobileNetV3 -----------------------------------------------------------------------------------------------
def imagenet_folder(root, classes=3, per_class=2):
    """val/<wnid>/*.JPEG of random sizes (landscape and portrait), as ImageNet's validation folder: smooth random
    patterns, so that where the crop falls changes what the network sees (pixel noise looks alike everywhere)."""
    rng = np.random.RandomState(0)
    for c in range(classes):
        folder = root / "val" / ("n%08d" % (1440764 + c))
        folder.mkdir(parents=True)
        for i in range(per_class):
            h, w = rng.randint(120, 300, 2)
            pattern = Image.fromarray((rng.rand(6, 6, 3) * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
            pattern.save(str(folder / ("ILSVRC2012_val_%08d.JPEG" % (c * per_class + i))), quality=90)
    return root


KERAS_REFERENCE = r'''
import json, sys
import numpy as np
import tensorflow as tf
weights, files = sys.argv[1], sys.argv[2:]
net = tf.keras.applications.MobileNetV3Small(weights=None, include_preprocessing=True, classifier_activation=None)
rng = np.random.RandomState(0)            # weights=None starts nearly silent: draw weights that give real logits
values = []
for w in net.weights:
    shape = w.shape.as_list()
    if "moving_variance" in w.name or "gamma" in w.name:
        values.append(rng.uniform(0.5, 1.5, shape))
    elif "depthwise" in w.name:
        values.append(rng.randn(*shape) / np.sqrt(np.prod(shape[:2])))
    elif len(shape) > 1:
        values.append(rng.randn(*shape) * np.sqrt(2.0 / np.prod(shape[:-1])))
    else:
        values.append(rng.randn(*shape) * 0.1)
net.set_weights(values)
net.save_weights(weights)
batch = []
for path in files:                        # keras's loader (PIL), central crop 0.875, bilinear resize, 0..255 in
    x = tf.keras.utils.img_to_array(tf.keras.utils.load_img(path))
    batch.append(tf.image.resize(tf.image.central_crop(x, 0.875), (224, 224), method="bilinear"))
print(json.dumps(net(tf.stack(batch), training=False).numpy().tolist()))
'''


@pytest.fixture(scope="module")
def keras_reference(tmp_path_factory):
    """A keras.applications MobileNetV3Small weight file, and keras's logits of the val JPEGs (TF 2.x only)."""
    if not HAS_KERAS_MNV3:
        pytest.skip("keras.applications has no MobileNetV3 on this TensorFlow (1.15): run on the TF 2.x stack")
    root = imagenet_folder(tmp_path_factory.mktemp("imagenet"))
    files = sorted(str(p) for p in (root / "val").glob("*/*.JPEG"))
    weights = str(root / "weights_mobilenet_v3_small_224_1.0_float.h5")
    script = root / "keras_reference.py"
    script.write_text(KERAS_REFERENCE)
    proc = subprocess.run([sys.executable, str(script), weights] + files, env=script_env(), check=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=600)
    return root, weights, files, np.array(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_evaluation_preprocessing_gives_keras_logits_on_the_same_jpegs(keras_reference):
    from mobilenetv3.imagenet_accuracy import predict_logits
    _, weights, files, reference = keras_reference
    ours = predict_logits(weights, "small", files)
    # The part of the logits that depends on the image (their spread over the images) is the yardstick.
    spread = np.abs(reference - reference.mean(0)).max()
    difference = np.abs(ours - reference).max()
    uncropped = np.abs(predict_logits(weights, "small", files, crop_fraction=1.0) - reference).max()
    print("spread %.4g, ours vs keras %.4g, uncropped vs keras %.4g" % (spread, difference, uncropped))
    assert spread > 1e-3 and difference < 1e-3 * spread            # float rounding, nothing more
    assert uncropped > 0.05 * spread                                # the crop is what makes them match


def test_mobilenetv3_reproduce_quick_with_keras_weights(tmp_path, keras_reference):
    root, weights, _, _ = keras_reference
    out, stdout, table = reproduce("mobilenetv3", tmp_path, "--data_path=" + str(root), "--quick",
                                   "--weights=" + weights)
    check_table(out, stdout, table, rows=3)
    paper, keras, top5 = table["numbers"]
    assert (paper["paper"], keras["paper"], top5["paper"]) == (67.4, 68.1, None)
    assert paper["measured"] == keras["measured"] and "6 images" in paper["note"]


def test_mobilenetv3_reproduce_quick_with_our_checkpoint(tmp_path):
    """Our own model directory (a few training steps on the val folder's 3 classes) through the same command."""
    root = imagenet_folder(tmp_path / "data", per_class=4)
    run_python([os.path.join(REPO, "mobilenetv3", "train_cls.py"), "--train_dir=" + str(root / "val"),
                "--eval_dir=" + str(root / "val"), "--image_size=32", "--batch=4", "--max_step=2",
                "--modeldir=" + str(tmp_path / "model")])
    out, stdout, table = reproduce("mobilenetv3", tmp_path / "out", "--data_path=" + str(root), "--quick",
                                   "--weights=" + str(tmp_path / "model"))
    check_table(out, stdout, table, rows=3)


def test_mobilenetv3_reproduce_needs_weights_and_a_full_val_folder(tmp_path):
    root = imagenet_folder(tmp_path / "data")
    proc = run(["bash", os.path.join(REPO, "mobilenetv3", "test", "reproduce.sh"), "--data_path=" + str(root)],
               OUTPUT_ROOT=tmp_path / "out", check=False)
    assert proc.returncode == 2 and "--weights is required" in proc.stdout and "Traceback" not in proc.stdout
    proc = run_python([os.path.join(REPO, "mobilenetv3", "imagenet_eval.py"), "--weights=/nonexistent.h5",
                       "--data_dir=" + str(root / "val")], check=False)
    assert proc.returncode == 2 and "3 class folders; ImageNet's validation has 1000" in proc.stdout


def test_reproduce_rejects_an_unknown_table_in_one_line(tmp_path):
    proc = run(["bash", os.path.join(REPO, "am3", "test", "reproduce.sh"), "--data_path=" + str(tmp_path),
                "--table=mini-2shot"], OUTPUT_ROOT=tmp_path / "out", check=False)
    assert proc.returncode == 2 and "invalid choice: 'mini-2shot'" in proc.stdout and "Traceback" not in proc.stdout


# ---- MobileNetV3: the paper recipe's training augmentation ------------------------------------------------------
def test_crop_boxes_follow_slims_ranges():
    """Candidate boxes: inside the image, area >= 10% of it, aspect 3/4..4/3; the whole image when none fits."""
    from mobilenetv3 import data
    with tf.Graph().as_default():
        seed = tf.compat.v1.placeholder(tf.int64, [2])
        draws = tf.random.stateless_uniform([3, data.INCEPTION_ATTEMPTS], seed=seed)
        box = data.random_crop_box(draws, tf.constant(300), tf.constant(200))
        none_fit = data.random_crop_box(tf.ones([3, data.INCEPTION_ATTEMPTS]) * 0.999, tf.constant(4), tf.constant(1))
        with tf.compat.v1.Session() as sess:
            boxes = np.array([sess.run(box, {seed: [7, i]}) for i in range(300)])
            whole = sess.run(none_fit)
    top, left, h, w = boxes.T
    assert np.all(top >= 0) and np.all(left >= 0) and np.all(top + h <= 300) and np.all(left + w <= 200)
    assert np.all(h * w >= 0.1 * 300 * 200 - 1)
    assert np.all((w / h > 0.7) & (w / h < 1.4))
    assert len(set(map(tuple, boxes))) > 250 and (h * w).std() > 0.1 * 300 * 200    # crops of many sizes
    assert tuple(whole) == (0, 0, 4, 1)


def test_inception_augmentation_is_seeded_and_in_range(tmp_path):
    from mobilenetv3 import data
    rng = np.random.RandomState(0)
    path = str(tmp_path / "a.jpg")
    Image.fromarray((rng.rand(90, 120, 3) * 255).astype(np.uint8)).save(path)
    with tf.Graph().as_default():
        seed = tf.compat.v1.placeholder(tf.int64, [2])
        image = data.load_inception(tf.constant(path), 48, 40, seed)
        with tf.compat.v1.Session() as sess:
            first, again, other = (sess.run(image, {seed: s}) for s in ([1, 5], [1, 5], [1, 6]))
    assert first.shape == (48, 40, 3) and first.min() >= 0 and first.max() <= 1
    assert np.array_equal(first, again) and not np.allclose(first, other)


def test_paper_recipe_trains_with_slims_augmentation(tmp_path):
    from mobilenetv3.trainer import TrainConfig
    assert TrainConfig(recipe="paper").augmentation_style() == "inception"
    assert TrainConfig().augmentation_style() == "upstream"
    assert TrainConfig(recipe="paper", augmentation="upstream").augmentation_style() == "upstream"
    root = imagenet_folder(tmp_path / "data", per_class=4)
    out = run_python([os.path.join(REPO, "mobilenetv3", "train_cls.py"), "--train_dir=" + str(root / "val"),
                      "--eval_dir=" + str(root / "val"), "--image_size=32", "--batch=4", "--max_step=2",
                      "--recipe=paper", "--modeldir=" + str(tmp_path / "model")]).stdout
    assert "augmentation: TF-slim's ImageNet (random-resized crop, flip" in out
    bad = run_python([os.path.join(REPO, "mobilenetv3", "train_cls.py"), "--train_dir=" + str(root / "val"),
                      "--augmentation=autoaugment"], check=False)
    assert bad.returncode == 2 and "augmentation must be one of upstream, inception" in bad.stdout


@pytest.mark.parametrize("script", ["mobilenetv3/imagenet_eval.py", "datasets/prepare_mtnet_data.py",
                                    "-m common.reproduce am3", "-m common.reproduce mtnet",
                                    "-m common.reproduce mobilenetv3"])
def test_new_entry_points_give_one_error_line_and_help(script):
    args = script.split()
    bad = run_python(args + ["--no_such_flag=1"], check=False)
    lines = bad.stdout.strip().splitlines()
    assert bad.returncode == 2 and lines[-1].startswith("error: ") and "Traceback" not in bad.stdout
    assert "no_such_flag" in lines[-1] or "the following arguments are required" in lines[-1]
    assert run_python(args + ["--help"]).returncode == 0


def test_full_scale_rows_estimate_their_cpu_time_and_quick_rows_are_short(tmp_path):
    """The estimate line's numbers: a full AM3 row is weeks on a CPU, the same row with --quick seconds."""
    import argparse
    from am3 import reproduce as R
    args = argparse.Namespace(table="mini-1shot", variants="AM3_TADAM", upstream_eval=True, quick=False,
                              data_path=str(tmp_path), out=str(tmp_path))
    full = sum(seconds for seconds, _ in R.estimate(args, R.jobs(args)))
    assert 14 * 86400 < full < 30 * 86400
    args.quick = True
    assert sum(seconds for seconds, _ in R.estimate(args, R.jobs(args))) < 600    # no estimate line for --quick
