"""MobileNetV3: architecture sizes, image-folder training, bad input, evaluation and export round trip."""
import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from common.tf_compat import tf
from conftest import REPO, make_image_folder as make_folder, rank_table, run, run_python
from common.errors import UserError
from mobilenetv3 import data, inference, madds, trainer
from mobilenetv3 import model as M
from mobilenetv3.train_cls import build_config, parse_args

MODEL_DIR = os.path.join(REPO, "mobilenetv3")


def count_params(graph):
    with graph.as_default():
        return sum(int(np.prod(v.shape.as_list())) for v in tf.compat.v1.global_variables())


def build(name, variant="paper", size=32, classes=10, alpha=1.0, batch=2):
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [batch, size, size, 3])
        logits = M.mobilenet_v3(images, M.get_spec(name, variant), classes, alpha=alpha, training=False)
    return graph, images, logits


@pytest.mark.parametrize("name,variant", [("small", "paper"), ("large", "paper"), ("small", "upstream")])
def test_output_shape_and_finite_logits(name, variant):
    graph, images, logits = build(name, variant, size=32, classes=7, alpha=0.5, batch=3)
    assert logits.shape.as_list() == [3, 7]
    with graph.as_default(), tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        out = sess.run(logits, {images: np.random.RandomState(0).rand(3, 32, 32, 3)})
    assert out.shape == (3, 7) and np.isfinite(out).all()


@pytest.mark.parametrize("name,paper_params,paper_madds", [("large", 5.4e6, 219e6), ("small", 2.5e6, 56e6)])
def test_paper_variant_size_and_madds_match_paper(name, paper_params, paper_madds):
    graph, _, _ = build(name, size=224, classes=1000, batch=1)
    params = count_params(graph)
    assert abs(params - paper_params) / paper_params < 0.05, params
    counted = madds.count_madds(graph, "MobilenetV3")
    assert abs(counted - paper_madds) / paper_madds < 0.05, counted


def test_upstream_variant_has_upstream_parameter_count():
    # Measured by running xiaochus/MobileNetV3 (Keras) at 224x224 with 1000 classes.
    assert count_params(build("small", "upstream", size=224, classes=1000, batch=1)[0]) == 4320632
    assert count_params(build("large", "upstream", size=224, classes=1000, batch=1)[0]) == 10037304


def test_activations_and_widths():
    x = np.linspace(-5, 5, 41).astype(np.float32)
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        hs, hsig, khs = sess.run([M.hard_swish(x), M.hard_sigmoid(x), M.keras_hard_sigmoid(x)])
    np.testing.assert_allclose(hs, x * np.clip(x + 3, 0, 6) / 6, atol=1e-6)
    np.testing.assert_allclose(hsig, np.clip(x + 3, 0, 6) / 6, atol=1e-6)
    np.testing.assert_allclose(khs, np.clip(0.2 * x + 0.5, 0, 1), atol=1e-6)
    stem, blocks, last, head = M.widths(M.get_spec("large"), 1.0)
    assert (stem, last, head) == (16, 960, 1280)
    assert blocks == [(row.exp, row.out) for row in M.LARGE_BLOCKS]
    stem, blocks, last, head = M.widths(M.get_spec("small"), 0.5)
    assert all(c % 8 == 0 for c in [stem, last] + [c for pair in blocks for c in pair])
    assert head == 1024 and last == 288


def test_unknown_model_name_is_one_clear_error():
    with pytest.raises(UserError, match="unknown model 'medium'"):
        M.get_spec("medium")
    proc = run_python([os.path.join(MODEL_DIR, "train_cls.py"), "--model=medium", "--data_path=/nonexistent"],
                      check=False)
    assert proc.returncode == 2
    assert proc.stdout.strip().splitlines()[-1] == "error: unknown model 'medium': choose one of large, small"
    assert "Traceback" not in proc.stdout


def tiny_config(tmp_path, data_root, **kwargs):
    values = dict(model="small", height=32, width=32, alpha=0.5, batch=8, epochs=2, log_every=2,
                  train_dir=os.path.join(data_root, "train"), eval_dir=os.path.join(data_root, "validation"),
                  save_dir=str(tmp_path / "model"))
    values.update(kwargs)
    return trainer.TrainConfig(**values)


def test_bad_data_folders_are_one_line_errors(tmp_path, image_data):
    with pytest.raises(UserError, match="does not exist"):
        trainer.train(tiny_config(tmp_path, str(tmp_path / "missing")))
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "validation").mkdir()
    with pytest.raises(UserError, match="has no class folders"):
        trainer.train(tiny_config(tmp_path, str(tmp_path / "empty")))
    other = make_folder(tmp_path / "other" / "validation", 2, classes=("cat", "dog"))
    os.rename(os.path.join(other, "dog"), os.path.join(other, "wolf"))
    with pytest.raises(UserError, match="classes differ.*only in training: dog; only in validation: wolf"):
        trainer.train(tiny_config(tmp_path, image_data, eval_dir=other))
    with pytest.raises(UserError, match="batch 64 is larger than the 33 training images"):
        trainer.train(tiny_config(tmp_path, image_data, batch=64))
    with pytest.raises(UserError, match="class_number is 5 but"):
        trainer.train(tiny_config(tmp_path, image_data, class_number=5))
    assert not (tmp_path / "model").exists()   # nothing written by a failed start


def test_non_image_files_are_skipped_with_a_warning(image_data, capsys):
    folder = data.ImageFolder(os.path.join(image_data, "train"))
    assert folder.classes == ["cat", "dog"]
    assert [os.path.basename(p) for p in folder.skipped] == ["notes.txt"]
    assert len(folder) == 33   # the truncated JPEG passes the header check; the pipeline drops it if undecodable
    assert "skipping" in capsys.readouterr().err


def test_augmentation_warp_is_resize_rotation_and_edge_fill():
    rng = np.random.RandomState(0)
    image = rng.randint(0, 255, (50, 70, 3)).astype(np.uint8)
    square = image[:40, :40]
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        identity, resized, turned, shifted = sess.run([
            data.warp(tf.constant(image), 40, 40, tf.eye(2), tf.zeros([2])),
            tf.compat.v2.image.resize(tf.cast(image, tf.float32), [40, 40]),
            data.warp(tf.constant(square), 40, 40, tf.constant([[-1.0, 0.0], [0.0, -1.0]]), tf.zeros([2])),
            data.warp(tf.constant(square), 40, 40, tf.eye(2), tf.constant([0.25, 0.0]))])
        augmented, again, other = sess.run([
            data.load_augmented(tf.constant(_write_jpeg(image)), 32, 32, tf.constant(seed, tf.int64))
            for seed in ([0, 7], [0, 7], [0, 8])])
    np.testing.assert_allclose(identity, resized, atol=1e-3)          # no transform: a plain bilinear resize
    np.testing.assert_allclose(turned, square[::-1, ::-1], atol=1e-3)  # 180 degrees: both axes flipped
    np.testing.assert_allclose(shifted[:30], square[10:], atol=1e-3)   # shift by a quarter of the height
    np.testing.assert_allclose(shifted[30:], np.repeat(square[39:40], 10, 0), atol=1e-3)   # edge pixels repeat
    assert augmented.shape == (32, 32, 3) and 0.0 <= augmented.min() and augmented.max() <= 1.0
    assert np.array_equal(augmented, again) and not np.allclose(augmented, other)   # the seed picks the draws


def test_the_same_seed_trains_the_same_run(tmp_path, image_data):
    """Augmentation draws were taken from stateful ops in parallel decoding threads: two runs differed from step
    1 on, so `common.report --compare` could not pass a MobileNetV3 rerun."""
    def losses(name):
        out = run_python([os.path.join(MODEL_DIR, "train_cls.py"), "--data_path=" + image_data, "--image_size=32",
                          "--batch=4", "--max_step=4", "--log_every=1", "--modeldir=%s" % (tmp_path / name)]).stdout
        return [line for line in out.splitlines() if line.startswith("train step=")]
    first = losses("a")
    assert len(first) == 4 and first == losses("b")


def _write_jpeg(pixels):
    import tempfile
    handle, path = tempfile.mkstemp(suffix=".jpg")
    os.close(handle)
    Image.fromarray(pixels).save(path)
    return path


def test_config_file_route_and_flag_precedence(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model": "large", "height": 64, "width": 48, "class_number": 2, "batch": 4,
                               "train_dir": "d/train", "eval_dir": "d/eval", "save_dir": "s", "weights": ""}))
    config = build_config(parse_args(["--config", str(cfg), "--batch=2", "--learning_rate=0.01"]))
    assert (config.model, config.height, config.width, config.batch) == ("large", 64, 48, 2)
    assert (config.train_dir, config.eval_dir, config.save_dir, config.learning_rate) == ("d/train", "d/eval", "s",
                                                                                          0.01)
    cfg.write_text(json.dumps({"modle": "small"}))
    with pytest.raises(UserError, match="unknown keys modle"):
        build_config(parse_args(["--config", str(cfg)]))


def read_history(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_wrapper_trains_on_the_npu_route_and_writes_logs(tmp_path, image_data):
    record = tmp_path / "npu_calls.jsonl"
    out = tmp_path / "out"
    proc = run(["bash", os.path.join(MODEL_DIR, "test", "train_full_1p.sh"), "--data_path=" + image_data,
                "--image_size=32", "--batch=8", "--epochs=3", "--loss_scale=dynamic"],
               fake_npu=True, record_file=record, OUTPUT_ROOT=out, timeout=300)
    assert "device: Ascend NPU (npu_bridge)" in proc.stdout
    assert "skipping" in proc.stdout and "notes.txt" in proc.stdout
    history = read_history(out / "0" / "ckpt" / "hist.csv")
    assert [int(row["epoch"]) for row in history] == [1, 2, 3]
    assert float(history[-1]["loss"]) < float(history[0]["loss"])
    assert os.path.isfile(out / "0" / "ckpt" / "checkpoints" / "checkpoint")
    assert os.path.isfile(out / "0" / "ckpt" / "best" / "checkpoint")
    case = "MobileNetV3_ID0256_for_TensorFlow_bs8_1p_acc"
    summary = dict(line.split(" = ", 1) for line in (out / "0" / (case + ".log")).read_text().splitlines())
    assert float(summary["ActualFPS"]) > 0
    assert float(summary["TrainAccuracy"]) == float(history[-1]["val_acc"])
    losses = (out / "0" / ("train_%s_loss.txt" % case)).read_text().split()
    assert len(losses) >= 3 and float(summary["ActualLoss"]) == float(losses[-1])
    assert "step_time_summary:" in (out / "0" / "train_0.log").read_text()
    calls = [json.loads(line)["name"] for line in record.read_text().splitlines()]
    assert any("LossScale" in name for name in calls), calls


def test_performance_wrapper_reports_images_per_second_and_a_loss_per_step(tmp_path, image_data):
    # 32 training images at batch 8 are 4 steps an epoch: the run goes on over epochs to --max_step.
    out = tmp_path / "out"
    proc = run(["bash", os.path.join(MODEL_DIR, "test", "train_performance_1p.sh"), "--data_path=" + image_data,
                "--image_size=32", "--batch=8", "--max_step=9"], OUTPUT_ROOT=out, timeout=300)
    assert "Final Performance images/sec : " in proc.stdout
    case = "MobileNetV3_ID0256_for_TensorFlow_bs8_1p_perf"
    summary = dict(line.split(" = ", 1) for line in (out / "0" / (case + ".log")).read_text().splitlines())
    assert float(summary["ActualFPS"]) > 0
    losses = (out / "0" / ("train_%s_loss.txt" % case)).read_text().split()
    assert len(losses) == 9                       # --log_every=1: one loss line per step, all 9 steps ran
    assert os.path.isdir(out / "0" / "ckpt_perf")


def test_train_resume_evaluate_export_round_trip(tmp_path, image_data, capsys):
    config = tiny_config(tmp_path, image_data, epochs=2, dropout=0.0)
    history = trainer.train(config)
    assert len(history) == 2
    model_dir = config.save_dir
    assert json.load(open(os.path.join(model_dir, "model.json")))["classes"] == ["cat", "dog"]

    files = sorted(data.ImageFolder(os.path.join(image_data, "validation")).files)
    predictor = inference.Predictor(model_dir)
    batch = np.stack([predictor.load_image(path) for path in files])
    expected = predictor(batch)
    predictor.close()
    assert expected.shape == (8, 2)

    result = inference.evaluate(model_dir, os.path.join(image_data, "validation"), batch=3)
    labels = np.array([0 if os.sep + "cat" + os.sep in path else 1 for path in files])
    assert result["images"] == 8
    assert result["top1"] == pytest.approx(np.mean(expected.argmax(1) == labels))
    assert result["top5"] == 1.0   # top-2 of 2 classes

    export_dir = str(tmp_path / "export")
    inference.export(model_dir, export_dir)
    graph, images, probabilities = inference.load_frozen(os.path.join(export_dir, "frozen_graph.pb"))
    with tf.compat.v1.Session(graph=graph) as sess:
        np.testing.assert_allclose(sess.run(probabilities, {images: batch}), expected, rtol=1e-4, atol=1e-5)
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], os.path.join(export_dir, "saved_model"))
        signature = meta.signature_def["serving_default"]
        served = sess.run(signature.outputs["probabilities"].name, {signature.inputs["images"].name: batch})
        np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-5)
    assert open(os.path.join(export_dir, "labels.txt")).read().split() == ["cat", "dog"]

    capsys.readouterr()
    config.epochs = 3
    history = trainer.train(config)
    assert "resumed from" in capsys.readouterr().out
    assert [int(row["epoch"]) for row in history] == [1, 2, 3]
    assert int(history[-1]["steps"]) == 3 * (33 // 8)
    capsys.readouterr()
    assert len(trainer.train(config)) == 3   # finished: the wrappers report no step time instead of failing
    assert "nothing to train: checkpoint at step %d" % (3 * (33 // 8)) in capsys.readouterr().out
    with pytest.raises(UserError, match="holds a different model"):
        trainer.train(tiny_config(tmp_path, image_data, model="large"))


def epoch_lines(log_path):
    return [line.split(") ")[0] for line in open(str(log_path)) if line.startswith("epoch ")]


def test_8p_wrapper_trains_with_two_cpu_workers(tmp_path, image_data):
    out = tmp_path / "out"
    proc = run(["bash", os.path.join(MODEL_DIR, "test", "train_full_8p.sh"), "--data_path=" + image_data,
                "--workers=2", "--image_size=32", "--batch=4", "--epochs=2"], OUTPUT_ROOT=out, timeout=400)
    assert "launch: all 2 workers finished" in proc.stdout
    logs = [out / str(rank) / ("train_%d.log" % rank) for rank in (0, 1)]
    for rank, log in enumerate(logs):
        assert "cluster: rank %d of 2 (MultiWorkerMirroredStrategy)" % rank in log.read_text()
    # One model trained by both: the averaged losses and validation results agree line for line.
    assert len(epoch_lines(logs[0])) == 2 and epoch_lines(logs[0]) == epoch_lines(logs[1])
    assert epoch_lines(logs[0])[-1] in proc.stdout   # the launcher shows rank 0's progress as it comes
    case = "MobileNetV3_ID0256_for_TensorFlow_bs4_2p_acc"
    summary = dict(line.split(" = ", 1) for line in (out / "0" / (case + ".log")).read_text().splitlines())
    assert summary["RankSize"] == "2" and float(summary["ActualFPS"]) > 0
    model_dir = out / "0" / "ckpt_8p"   # not the 1p wrapper's ckpt: another batch and rank count
    assert len(read_history(model_dir / "hist.csv")) == 2
    assert (model_dir / "checkpoints" / "checkpoint").exists() and (model_dir / "best" / "checkpoint").exists()
    assert sorted(os.listdir(str(out))) == ["0", "1"]   # rank 1 kept no checkpoints of its own


def test_8p_wrapper_on_the_npu_route(tmp_path, image_data):
    table = rank_table(tmp_path, [0, 1])
    record = tmp_path / "npu_calls.jsonl"
    out = tmp_path / "out"
    run(["bash", os.path.join(MODEL_DIR, "test", "train_full_8p.sh"), "--data_path=" + image_data,
         "--image_size=32", "--batch=4", "--epochs=2"], fake_npu=True, record_file=record, OUTPUT_ROOT=out,
        RANK_SIZE=2, RANK_TABLE_FILE=table, timeout=400)
    for rank in (0, 1):
        assert "cluster: rank %d of 2 (HCCL on Ascend), device %d" % (rank, rank) in \
            (out / str(rank) / ("train_%d.log" % rank)).read_text()
    calls = [json.loads(line)["name"] for line in record.read_text().splitlines()]
    assert calls.count("NPUDistributedOptimizer") == 2 and calls.count("hccl_ops.broadcast") > 2
    assert (out / "0" / "MobileNetV3_ID0256_for_TensorFlow_bs4_2p_acc.log").exists()
    proc = run(["bash", os.path.join(MODEL_DIR, "test", "train_full_8p.sh"), "--data_path=" + image_data],
               fake_npu=True, check=False, OUTPUT_ROOT=out, RANK_TABLE_FILE=tmp_path / "missing.json")
    assert proc.returncode == 2 and "set RANK_TABLE_FILE" in proc.stdout


def test_upstream_keras_h5_weights_load_in_order(tmp_path):
    """An .h5 in Keras's save_weights layout (layer_names -> weight_names) lands on the upstream variant's variables."""
    import h5py
    from mobilenetv3 import weights
    graph, images, logits = build("small", "upstream", size=32, classes=3, batch=1)
    with graph.as_default():
        variables = tf.compat.v1.global_variables("MobilenetV3")
    rng = np.random.RandomState(0)
    arrays = [rng.normal(size=v.shape.as_list()).astype(np.float32) for v in variables]
    path = str(tmp_path / "small_weights.h5")
    with h5py.File(path, "w") as handle:
        names = []
        for i, (var, value) in enumerate(zip(variables, arrays)):
            layer = "layer_%d" % i
            names.append(layer.encode())
            group = handle.create_group(layer)
            if var.op.name.split("/")[-2] in ("head", "logits") and var.op.name.endswith("kernel"):
                value = value.reshape((1, 1) + value.shape)    # Keras keeps the head as 1x1 convolutions
            group.attrs["weight_names"] = [b"w:0"]
            group.create_dataset("w:0", data=value)
        handle.attrs["layer_names"] = names
    with graph.as_default(), tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        weights.load_initial(sess, path, variables, "upstream")
        for loaded, value in zip(sess.run(variables), arrays):
            np.testing.assert_array_equal(loaded, value)
        with pytest.raises(UserError, match="need --variant=upstream"):
            weights.load_initial(sess, path, variables, "paper")
        with pytest.raises(UserError, match="holds %d weight arrays but" % len(arrays)):
            weights.load_initial(sess, path, variables[:-1], "upstream")


def test_8p_wrapper_on_ascend_needs_a_rank_table(tmp_path, image_data):
    proc = run(["bash", os.path.join(MODEL_DIR, "test", "train_full_8p.sh"), "--data_path=" + image_data],
               fake_npu=True, record_file=tmp_path / "calls.jsonl", OUTPUT_ROOT=tmp_path / "out", check=False,
               RANK_TABLE_FILE=tmp_path / "missing.json")
    assert proc.returncode == 2
    assert "train_full_8p.sh: set RANK_TABLE_FILE to the HCCL rank table of the 8 devices" in proc.stdout


def test_training_benchmark_prints_images_per_second():
    proc = run_python([os.path.join(MODEL_DIR, "benchmark.py"), "--train", "--model=small", "--image_size=32",
                       "--batch=2", "--runs=2", "--num_classes=3"])
    assert "compute precision: fp32" in proc.stdout
    line = [x for x in proc.stdout.splitlines() if x.startswith("benchmark: train model=small")][-1]
    assert float(line.split("images_per_sec=")[1]) > 0


def test_early_stopping_waits_for_the_batch_norm_statistics(capsys):
    from mobilenetv3 import trainer as T
    config = T.TrainConfig(patience=5)
    assert T.BN_SETTLE_STEPS == 299      # 0.99 ** 299 < 0.05: the initial statistics are 95% forgotten
    assert not T._early_stop(config, 5, 0.5, step=30)          # a small folder: 30 steps, BN still at its start
    assert "early stopping waits for step 299" in capsys.readouterr().out
    assert not T._early_stop(config, 4, 0.5, step=400)
    assert T._early_stop(config, 5, 0.5, step=400)
    assert not T._early_stop(T.TrainConfig(patience=0), 50, 0.5, step=4000)


def test_image_size_zero_is_an_error_not_the_default(tmp_path, image_data):
    proc = run_python([os.path.join(MODEL_DIR, "train_cls.py"), "--data_path=" + image_data, "--image_size=0",
                       "--modeldir=%s" % tmp_path], check=False)
    assert proc.returncode == 2 and proc.stdout.strip().splitlines()[-1] == \
        "error: height must be a positive integer, got 0"


def test_wrapper_passes_patience(tmp_path, image_data):
    proc = run(["bash", os.path.join(MODEL_DIR, "test", "train_full_1p.sh"), "--data_path=" + image_data,
                "--image_size=32", "--batch=8", "--epochs=2", "--patience=2"], OUTPUT_ROOT=tmp_path)
    assert [line for line in proc.stdout.splitlines() if line.startswith("+ ") and " --patience=2" in line]


# --- keras.applications ImageNet weights, fine-tuning, the paper recipe ---

BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


def keras_layout(name, classes=None, alpha=1.0):
    """[(layer, [(weight name, shape)])] in keras.applications.MobileNetV3<Name>'s layer order, named as its
    save_weights names them (checked against keras itself where TF 2.x has it); classes None: include_top=False."""
    spec = M.get_spec(name)
    stem, blocks, last, head = M.widths(spec, alpha)
    layers = [("input_1", []), ("rescaling", [])]

    def add(layer, *weights):
        layers.append((layer, [("%s/%s:0" % (layer, w), tuple(shape)) for w, shape in weights]))

    def conv_bn(layer, kernel, cin, cout, weight="kernel"):
        add(layer, (weight, (kernel, kernel, cin, cout)))
        add(layer + "/BatchNorm", *[(w, (cout,)) for w in BN_WEIGHTS])

    conv_bn("Conv", 3, 3, stem)
    channels = stem
    for i, (row, (exp, out)) in enumerate(zip(spec.blocks, blocks)):
        prefix = "expanded_conv" + ("_%d" % i if i else "")
        if exp != channels:
            conv_bn(prefix + "/expand", 1, channels, exp)
        add(prefix + "/depthwise", ("depthwise_kernel", (row.kernel, row.kernel, exp, 1)))
        add(prefix + "/depthwise/BatchNorm", *[(w, (exp,)) for w in BN_WEIGHTS])
        if row.se:
            squeeze = M.make_divisible(exp * 0.25)
            add(prefix + "/squeeze_excite/Conv", ("kernel", (1, 1, exp, squeeze)), ("bias", (squeeze,)))
            add(prefix + "/squeeze_excite/Conv_1", ("kernel", (1, 1, squeeze, exp)), ("bias", (exp,)))
        conv_bn(prefix + "/project", 1, exp, out)
        channels = out
    conv_bn("Conv_1", 1, channels, last)
    if classes:
        add("Conv_2", ("kernel", (1, 1, last, head)), ("bias", (head,)))
        add("Logits", ("kernel", (1, 1, head, classes)), ("bias", (classes,)))
    return layers


def layout_weights(layout):
    return [weight for _, weights in layout for weight in weights]


def random_array(weight_name, shape, rng):
    """Values that keep activations in range and make batch norm do something."""
    kind = weight_name.split("/")[-1].split(":")[0]
    if kind in ("gamma", "moving_variance"):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if kind in ("beta", "moving_mean", "bias"):
        return rng.normal(0, 0.1, shape).astype(np.float32)
    fan_in = int(np.prod(shape[:-1])) if kind == "kernel" else int(np.prod(shape[:2]))
    return rng.normal(0, 1.0 / np.sqrt(fan_in), shape).astype(np.float32)


def write_keras_h5(path, layout, arrays):
    """An .h5 laid out as Keras 2's save_weights writes it (attributes, nested weight names)."""
    import h5py
    values = iter(arrays)
    with h5py.File(str(path), "w") as handle:
        handle.attrs["layer_names"] = np.array([layer.encode() for layer, _ in layout])
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["keras_version"] = b"2.15.0"
        for layer, weights in layout:
            group = handle.create_group(layer)
            group.attrs["weight_names"] = np.array([w.encode() for w, _ in weights])
            for weight, _ in weights:
                group.create_dataset(weight, data=next(values))
    return str(path)


def random_keras_file(path, name, classes=None, alpha=1.0, seed=0):
    """(path, {weight name: array}) of a keras-layout file with random weights."""
    layout = keras_layout(name, classes, alpha)
    rng = np.random.RandomState(seed)
    arrays = [random_array(w, shape, rng) for w, shape in layout_weights(layout)]
    write_keras_h5(path, layout, arrays)
    return str(path), dict(zip([w for w, _ in layout_weights(layout)], arrays))


def keras_reference_logits(w, name, images):
    """MobileNetV3 written from keras.applications' layer names and code (inputs to [-1, 1], ZeroPadding then
    VALID for strided depthwise convolutions, 1x1 convolutions after the pool): independent of model.py."""
    def bn(x, layer):
        g, b, m, v = (w["%s/BatchNorm/%s:0" % (layer, k)] for k in BN_WEIGHTS)
        return (x - m) / np.sqrt(v + 1e-3) * g + b

    def conv(x, layer, stride=1, bias=False):
        y = tf.nn.conv2d(x, w[layer + "/kernel:0"], [1, stride, stride, 1], "SAME")
        return y + w[layer + "/bias:0"] if bias else y

    def hard_sigmoid(x):
        return tf.nn.relu6(x + 3.0) / 6.0

    acts = {"RE": tf.nn.relu, "HS": lambda x: x * hard_sigmoid(x)}
    x = acts["HS"](bn(conv(tf.constant(images * 2.0 - 1.0), "Conv", 2), "Conv"))
    for i, row in enumerate(M.get_spec(name).blocks):
        prefix, shortcut = "expanded_conv" + ("_%d" % i if i else ""), x
        if prefix + "/expand/kernel:0" in w:
            x = acts[row.act](bn(conv(x, prefix + "/expand"), prefix + "/expand"))
        kernel = w[prefix + "/depthwise/depthwise_kernel:0"]
        if row.stride == 2:   # keras's correct_pad for even sizes: k//2 - 1 before, k//2 after
            before, after = row.kernel // 2 - 1, row.kernel // 2
            x = tf.nn.depthwise_conv2d(tf.pad(x, [[0, 0], [before, after], [before, after], [0, 0]]), kernel,
                                       [1, 2, 2, 1], "VALID")
        else:
            x = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "SAME")
        x = acts[row.act](bn(x, prefix + "/depthwise"))
        if prefix + "/squeeze_excite/Conv/kernel:0" in w:
            s = tf.reduce_mean(x, [1, 2], keepdims=True)
            s = tf.nn.relu(conv(s, prefix + "/squeeze_excite/Conv", bias=True))
            x = x * hard_sigmoid(conv(s, prefix + "/squeeze_excite/Conv_1", bias=True))
        x = bn(conv(x, prefix + "/project"), prefix + "/project")
        if row.stride == 1 and shortcut.shape[-1] == x.shape[-1]:
            x = x + shortcut
    x = acts["HS"](bn(conv(x, "Conv_1"), "Conv_1"))
    x = acts["HS"](conv(tf.reduce_mean(x, [1, 2], keepdims=True), "Conv_2", bias=True))
    return tf.squeeze(conv(x, "Logits", bias=True), [1, 2])


def our_logits_from_file(path, name, classes, images, alpha=1.0):
    """Our paper variant at ImageNet's input range, loaded from a keras-layout file: (logits, {var: value})."""
    graph = tf.Graph()
    with graph.as_default():
        logits = M.mobilenet_v3(tf.constant(images), M.get_spec(name), classes, alpha=alpha, input_range="-1,1")
        variables = M.network_variables()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            from mobilenetv3 import weights
            weights.load_initial(sess, path, variables, "paper", name, alpha)
            return sess.run(logits), dict(zip([v.op.name for v in variables], sess.run(variables)))


def test_keras_applications_file_loads_and_matches_a_reference_from_the_same_arrays(tmp_path, capsys):
    path, arrays = random_keras_file(tmp_path / "weights_mobilenet_v3_small_224_1.0_float.h5", "small", classes=5)
    images = np.random.RandomState(1).rand(2, 32, 32, 3).astype(np.float32)
    ours, loaded = our_logits_from_file(path, "small", 5, images)
    assert "loaded 210 arrays of keras.applications MobileNetV3Small weights" in capsys.readouterr().out
    np.testing.assert_array_equal(loaded["MobilenetV3/logits/kernel"], arrays["Logits/kernel:0"][0, 0])
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        reference = sess.run(keras_reference_logits(arrays, "small", images))
    assert np.std(reference) > 0.05   # logits that tell the images and classes apart: a comparison that can fail
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())


@pytest.mark.parametrize("name,arrays", [("large", 266), ("small", 210)])
def test_keras_layout_maps_one_to_one_onto_the_paper_variant(name, arrays):
    graph, _, _ = build(name, size=32, classes=1000, batch=1)
    with graph.as_default():
        variables = M.network_variables()
    weights = layout_weights(keras_layout(name, classes=1000))
    assert len(weights) == len(variables) == arrays
    for (weight, shape), var in zip(weights, variables):
        assert int(np.prod(shape)) == int(np.prod(var.shape.as_list())), (weight, var.op.name)


def test_keras_file_without_top_or_with_another_class_count_keeps_a_fresh_classifier(tmp_path, capsys):
    images = np.random.RandomState(1).rand(1, 32, 32, 3).astype(np.float32)
    path, arrays = random_keras_file(tmp_path / "no_top.h5", "small", classes=None)
    _, loaded = our_logits_from_file(path, "small", 2, images)
    out = capsys.readouterr().out
    assert "without top (include_top=False), 206 arrays" in out and "fresh: head, classifier" in out
    np.testing.assert_array_equal(loaded["MobilenetV3/last_conv/kernel"], arrays["Conv_1/kernel:0"])
    path, arrays = random_keras_file(tmp_path / "seven.h5", "small", classes=7)
    _, loaded = our_logits_from_file(path, "small", 2, images)
    assert "its 7-class classifier is left out: 2 classes here; fresh: classifier" in capsys.readouterr().out
    np.testing.assert_array_equal(loaded["MobilenetV3/head/kernel"], arrays["Conv_2/kernel:0"][0, 0])


def test_keras_file_of_another_model_or_width_is_one_clear_error(tmp_path, image_data):
    images = np.zeros((1, 32, 32, 3), np.float32)
    small, _ = random_keras_file(tmp_path / "small.h5", "small", classes=1000)
    with pytest.raises(UserError, match=r"small.h5: keras.applications MobileNetV3Small weights, alpha 1.0, with "
                                        r"top \(1000 classes\), 210 arrays; this run builds MobileNetV3-Large at "
                                        r"alpha 1 \(paper variant\)"):
        our_logits_from_file(small, "large", 2, images)
    narrow, _ = random_keras_file(tmp_path / "small_075.h5", "small", classes=None, alpha=0.75)
    with pytest.raises(UserError, match="MobileNetV3Small weights, alpha 0.75, without top"):
        our_logits_from_file(narrow, "small", 2, images)
    proc = run_python([os.path.join(MODEL_DIR, "train_cls.py"), "--data_path=" + image_data, "--image_size=32",
                       "--model=large", "--weights=" + small, "--modeldir=" + str(tmp_path / "m")], check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("error: %s: keras.applications MobileNetV3Small" % small)
    assert not (tmp_path / "m").exists()


HAS_KERAS_MOBILENETV3 = hasattr(tf.keras.applications, "MobileNetV3Small")


@pytest.mark.skipif(not HAS_KERAS_MOBILENETV3, reason="this TensorFlow's keras.applications has no MobileNetV3 "
                                                      "(TF 1.15); the reference test above covers the loader")
@pytest.mark.parametrize("name", ["small", "large"])
def test_logits_equal_keras_applications_with_its_own_weight_file(tmp_path, name):
    cls = {"small": tf.keras.applications.MobileNetV3Small, "large": tf.keras.applications.MobileNetV3Large}[name]
    rng = np.random.RandomState(0)
    images = rng.rand(2, 32, 32, 3).astype(np.float32)
    path = str(tmp_path / "keras.h5")
    with tf.Graph().as_default():
        model = cls(input_shape=(32, 32, 3), weights=None, classes=5, classifier_activation=None)
        model.set_weights([random_array(w.name, w.shape.as_list(), rng) for w in model.weights])
        model.save_weights(path)
        expected = model.predict(images * 255.0)      # keras rescales [0, 255] to [-1, 1] itself
    with tf.Graph().as_default():   # a graph of its own: keras would number a second model's layer names
        cls(input_shape=(32, 32, 3), weights=None, include_top=False).save_weights(str(tmp_path / "no_top.h5"))
    from mobilenetv3 import weights
    for file, classes in (path, 5), (str(tmp_path / "no_top.h5"), None):   # the test's files mirror keras's
        written = [(e.weight, e.shape) for e in weights.read_h5(file)]
        assert written == layout_weights(keras_layout(name, classes))
    ours, _ = our_logits_from_file(path, name, 5, images)
    assert np.std(expected) > 0.05
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def checkpoint_values(path, variables):
    return {v.op.name: tf.train.load_variable(path, v.op.name) for v in variables}


def small_variables(classes):
    graph, _, _ = build("small", size=32, classes=classes, batch=1)
    with graph.as_default():
        return M.network_variables()


def calibrated_values(checkpoint, classes, folder):
    """The network's values from `checkpoint` with batch-norm statistics measured over `folder`'s images: a real
    ImageNet file carries converged statistics, three epochs of momentum-0.99 averages do not."""
    images = np.stack([np.asarray(Image.open(f).convert("RGB").resize((32, 32), Image.BILINEAR), np.float32) / 255
                       for f in data.ImageFolder(folder).files])
    momentum, M.BN_MOMENTUM = M.BN_MOMENTUM, 0.0    # one update then sets the statistics to the batch's
    try:
        with tf.Graph().as_default():
            M.mobilenet_v3(tf.constant(images), M.get_spec("small"), classes, training=True, input_range="-1,1")
            variables = M.network_variables()
            with tf.compat.v1.Session() as sess:
                tf.compat.v1.train.Saver(variables).restore(sess, checkpoint)
                sess.run(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS))
                return sess.run(variables)
    finally:
        M.BN_MOMENTUM = momentum


@pytest.fixture(scope="module")
def pretrained_h5(tmp_path_factory):
    """A keras-layout file of a Small trained on three colour classes: features that transfer to cat/dog."""
    root = tmp_path_factory.mktemp("mnv3_pretrain")
    make_folder(root / "data" / "train", 16, classes=("cat", "dog", "bird"), seed=3)
    make_folder(root / "data" / "validation", 2, classes=("cat", "dog", "bird"), seed=4)
    config = tiny_config(root, str(root / "data"), alpha=1.0, epochs=3, augment=False, learning_rate=0.003,
                         patience=0, input_range="-1,1")
    trainer.train(config)
    values = calibrated_values(tf.train.latest_checkpoint(os.path.join(config.save_dir, "checkpoints")), 3,
                               str(root / "data" / "train"))
    layout = keras_layout("small", classes=3)
    return write_keras_h5(root / "pretrained.h5", layout,
                          [value.reshape(shape) for value, (_, shape) in zip(values, layout_weights(layout))])


def test_fine_tuning_from_a_keras_file_lowers_the_loss_faster_than_from_scratch(tmp_path, image_data, pretrained_h5):
    common = dict(alpha=1.0, epochs=2, augment=False, learning_rate=0.003, dropout=0.0, patience=0, seed=7)
    tuned = trainer.train(tiny_config(tmp_path / "tuned", image_data, weights=pretrained_h5,
                                      freeze_backbone_epochs=2, **common))
    scratch = trainer.train(tiny_config(tmp_path / "scratch", image_data, input_range="-1,1", **common))
    for key in ("loss", "val_loss"):
        tuned_loss, scratch_loss = [[float(row[key]) for row in h] for h in (tuned, scratch)]
        assert all(t < s for t, s in zip(tuned_loss, scratch_loss)), (key, tuned_loss, scratch_loss)
    record = trainer.load_model_record(str(tmp_path / "tuned" / "model"))
    assert record["input_range"] == "-1,1"     # followed the ImageNet-style weights


def test_wrapper_fine_tunes_with_a_frozen_backbone_first(tmp_path, image_data, pretrained_h5):
    out = tmp_path / "out"
    proc = run(["bash", os.path.join(MODEL_DIR, "test", "train_full_1p.sh"), "--data_path=" + image_data,
                "--image_size=32", "--batch=8", "--epochs=2", "--weights=" + pretrained_h5,
                "--freeze_backbone_epochs=1"], OUTPUT_ROOT=out, timeout=300)
    assert "its 3-class classifier is left out: 2 classes here" in proc.stdout
    assert "epoch 1: backbone frozen" in proc.stdout and "epoch 2: the whole network trains" in proc.stdout
    variables = small_variables(2)
    from mobilenetv3 import weights
    arrays = weights.read_arrays(pretrained_h5, weights.read_h5(pretrained_h5))
    ckpt = out / "0" / "ckpt" / "checkpoints"
    after_frozen = checkpoint_values(str(ckpt / "model.ckpt-4"), variables)
    after_all = checkpoint_values(str(ckpt / "model.ckpt-8"), variables)
    for var, value in zip(variables, arrays):
        name, frozen = var.op.name, after_frozen[var.op.name]
        if not M.is_top(var):   # weights and batch-norm statistics of the backbone untouched by the frozen epoch
            np.testing.assert_array_equal(frozen, value.reshape(frozen.shape), err_msg=name)
        elif value.size == frozen.size:   # the head: loaded, then trained
            assert not np.array_equal(frozen, value.reshape(frozen.shape)), name
    changed = [v.op.name for v in variables if not M.is_top(v)
               and not np.array_equal(after_all[v.op.name], after_frozen[v.op.name])]
    assert len(changed) == len([v for v in variables if not M.is_top(v)])   # then everything trains


def test_paper_recipe_schedule_and_weight_decay():
    from mobilenetv3 import recipe
    assert recipe.initial_learning_rate("adam", None, 64) == 0.001
    assert recipe.initial_learning_rate("paper", 0.5, 64) == 0.5
    initial = recipe.initial_learning_rate("paper", None, 64)
    assert initial == pytest.approx(0.1 * 64 / 4096)
    graph, _, _ = build("small", size=32, classes=3, batch=1)
    with graph.as_default():
        step = tf.compat.v1.placeholder(tf.int64, [])
        rate = recipe.learning_rate("paper", initial, 10, step)
        variables = M.network_variables()
        penalty = recipe.weight_decay_loss(variables, 1e-5)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            rates = [sess.run(rate, {step: s}) for s in (0, 29, 30, 65)]   # 3 epochs of 10 steps per decay
            got, values = sess.run([penalty, variables])
    np.testing.assert_allclose(rates, [initial, initial, initial * 0.99, initial * 0.99 ** 2], rtol=1e-6)
    kernels = [v for var, v in zip(variables, values) if var.op.name.endswith("/kernel")]
    assert not any(var.op.name.endswith("depthwise_kernel") and var.op.name.endswith("/kernel") for var in variables)
    assert len(kernels) == len([v for v in variables if "kernel" in v.op.name]) - 11   # Small's 11 depthwise left out
    assert got == pytest.approx(1e-5 * sum(float(np.sum(k.astype(np.float64) ** 2)) for k in kernels) / 2, rel=1e-5)


def _event_scalars(directory, tag):
    """[(step, value)] of `tag` in the event files directly in `directory`."""
    points = []
    for name in sorted(os.listdir(directory)):
        if name.startswith("events.out.tfevents."):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
                points += [(event.step, value.simple_value) for value in event.summary.value if value.tag == tag]
    return sorted(points)


def test_the_logged_learning_rate_is_the_one_the_step_used(tmp_path, image_data):
    """The event files' learning_rate was config.learning_rate: absent by default (None), and a constant under
    the paper recipe while its rate decays. It is the rate the last step of each epoch used."""
    paper = tiny_config(tmp_path / "paper", image_data, recipe="paper", epochs=4, learning_rate=0.05, patience=0)
    trainer.train(paper)                  # 33 images, batch 8: 4 steps per epoch, x 0.99 after 12 steps
    rates = _event_scalars(paper.save_dir, "learning_rate")
    assert [step for step, _ in rates] == [4, 8, 12, 16]
    np.testing.assert_allclose([rate for _, rate in rates], [0.05, 0.05, 0.05, 0.05 * 0.99], rtol=1e-6)
    adam = tiny_config(tmp_path / "adam", image_data, epochs=1)   # no --learning_rate: Adam's default 0.001
    trainer.train(adam)
    assert _event_scalars(adam.save_dir, "learning_rate") == [(4, pytest.approx(0.001))]


def test_paper_recipe_evaluates_and_exports_the_weight_average(tmp_path, image_data, capsys):
    config = tiny_config(tmp_path, image_data, recipe="paper", epochs=1, learning_rate=0.05, dropout=0.0)
    trainer.train(config)
    assert "optimizer: RMSProp (paper recipe) lr 0.05 x 0.99 every 3 epochs, weight decay 1e-05" in \
        capsys.readouterr().out
    record = trainer.load_model_record(config.save_dir)
    assert record["weight_average"] is True and record["input_range"] == "0,1"
    checkpoint = inference.find_checkpoint(config.save_dir)
    graph, images, logits = build("small", size=32, classes=2, alpha=0.5, batch=8)
    with graph.as_default():
        variables, trainable = M.network_variables(), set(tf.compat.v1.trainable_variables())
    raw = {v: tf.train.load_variable(checkpoint, v.op.name) for v in variables}
    averaged = {v: tf.train.load_variable(checkpoint, v.op.name + "/ExponentialMovingAverage") if v in trainable
                else raw[v] for v in variables}
    assert sum(not np.array_equal(raw[v], averaged[v]) for v in trainable) > len(trainable) // 2
    batch = np.random.RandomState(2).rand(8, 32, 32, 3).astype(np.float32)
    with graph.as_default(), tf.compat.v1.Session() as sess:
        probabilities = tf.nn.softmax(logits)
        outputs = []
        for values in (averaged, raw):
            sess.run([v.initializer for v in variables], {v.initializer.inputs[1]: values[v] for v in variables})
            outputs.append(sess.run(probabilities, {images: batch}))
    predictor = inference.Predictor(config.save_dir)
    predicted = predictor(batch)
    predictor.close()
    np.testing.assert_allclose(predicted, outputs[0], rtol=1e-4, atol=1e-5)
    off_average, off_raw = (np.abs(predicted - out).max() for out in outputs)
    assert off_raw > 20 * max(off_average, 1e-6)     # the averages, not the last weights
    inference.export(config.save_dir, str(tmp_path / "export"))
    frozen, inputs, output = inference.load_frozen(str(tmp_path / "export" / "frozen_graph.pb"))
    with tf.compat.v1.Session(graph=frozen) as sess:
        np.testing.assert_allclose(sess.run(output, {inputs: batch}), predicted, rtol=1e-4, atol=1e-5)


def test_validation_prints_time_based_progress(tmp_path, image_data, capsys, monkeypatch):
    from common import progress
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)   # a line after every batch instead of every 30 s
    trainer.train(tiny_config(tmp_path, image_data, batch=2, epochs=1))   # 8 validation images: 4 batches
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("validation: ")]
    assert [line.split(",")[0] for line in lines] == ["validation: %d/4 batches" % i for i in (1, 2, 3)]


def test_predictor_on_the_npu_route_sees_one_input_shape(tmp_path, image_data, request):
    """The adapter compiles a graph per input shape: files of their own sizes are decoded and resized on the host,
    and the network always gets [batch, H, W, 3] (a short last chunk padded), with the fallback's numbers."""
    config = tiny_config(tmp_path, image_data, epochs=1)
    trainer.train(config)
    files = sorted(data.ImageFolder(os.path.join(image_data, "validation")).files)
    other = str(tmp_path / "wide.jpg")
    Image.fromarray(np.full((30, 50, 3), 200, np.uint8)).save(other)   # another size than the others
    files.append(other)
    predictor = inference.Predictor(config.save_dir)
    expected = predictor.predict_files(files)
    predictor.close()
    request.getfixturevalue("fake_npu")
    predictor = inference.Predictor(config.save_dir)
    got = predictor.predict_files(files)
    predictor.close()
    predictor = inference.Predictor(config.save_dir, batch=4)
    batched = predictor(np.stack([predictor.load_image(path) for path in files]))   # 9 images: 4 + 4 + 1 padded
    predictor.close()
    assert [name for name, _ in got] == files
    for (_, want), (_, have) in zip(expected, got):
        assert [c for c, _ in want] == [c for c, _ in have]
        np.testing.assert_allclose([p for _, p in want], [p for _, p in have], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(batched.max(1), [max(p for _, p in top) for _, top in expected], rtol=1e-4)


def _declare_huge(path, dataset):
    """Replace `dataset` of an .h5 by one declaring 10^6 x 10^6 floats (4 TB) that hold no data: a few KB file."""
    import h5py
    with h5py.File(str(path), "a") as handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        del group[dataset]
        group.create_dataset(dataset, shape=(10 ** 6, 10 ** 6), dtype="f4")


def test_a_weight_file_declaring_a_huge_array_is_one_error_before_reading_it(tmp_path):
    """weights.py read every dataset with np.asarray before checking its shape: a file of a few KB declaring a
    10^6 x 10^6 array was a MemoryError traceback. Shapes are checked against the model first."""
    import h5py
    from mobilenetv3 import weights
    images = np.zeros((1, 32, 32, 3), np.float32)
    path, _ = random_keras_file(tmp_path / "keras.h5", "small", classes=None)
    _declare_huge(path, "Conv/Conv/kernel:0")
    with pytest.raises(UserError, match=r"Conv/kernel:0 \[1000000, 1000000\] does not fit MobilenetV3/"):
        our_logits_from_file(path, "small", 2, images)
    graph, _, _ = build("small", "upstream", size=32, classes=3, batch=1)
    with graph.as_default():
        variables = tf.compat.v1.global_variables("MobilenetV3")
    upstream = str(tmp_path / "upstream.h5")
    with h5py.File(upstream, "w") as handle:
        handle.attrs["layer_names"] = [("layer_%d" % i).encode() for i in range(len(variables))]
        for i, var in enumerate(variables):
            group = handle.create_group("layer_%d" % i)
            group.attrs["weight_names"] = [b"w:0"]
            group.create_dataset("w:0", data=np.zeros(var.shape.as_list(), np.float32))
    _declare_huge(upstream, "layer_0/w:0")
    with graph.as_default(), tf.compat.v1.Session() as sess:
        with pytest.raises(UserError, match=r"weight of shape \[1000000, 1000000\] does not fit variable"):
            weights.load_initial(sess, upstream, variables, "upstream")


def test_a_run_of_warm_up_steps_only_still_gets_its_summary_and_report(tmp_path, image_data):
    """--max_step=3: every step a warm-up step (5), none timed; the wrapper exited 1 after training succeeded."""
    out = tmp_path / "out"
    proc = run(["bash", os.path.join(MODEL_DIR, "test", "train_performance_1p.sh"), "--data_path=" + image_data,
                "--image_size=32", "--batch=8", "--max_step=3"], check=False, OUTPUT_ROOT=out, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "no step time measured: every step of this run (3) was a warm-up step" in proc.stdout
    assert "Final Performance images/sec : None" in proc.stdout
    assert (out / "0" / "MobileNetV3_ID0256_for_TensorFlow_bs8_1p_perf.log").exists()
    assert (out / "0" / "report.html").exists()


# ---- --iterations_per_loop off Ascend: an in-graph loop with the NPU's semantics (issue 27) --------------------
def _looped(tmp_path, image_data, n, **kwargs):
    """8 steps an epoch (33 images, batch 4), one loss line per session call."""
    from common.npu_session import NpuOptions
    values = dict(batch=4, log_every=1, shuffle=False, npu=NpuOptions(iterations_per_loop=n))
    values.update(kwargs)
    return tiny_config(tmp_path, image_data, **values)


def _train_lines(out):
    """{step: (loss, acc)} of the 'train step=N epoch=E loss=X acc=Y' lines."""
    fields = [dict(kv.split("=") for kv in line.split()[1:]) for line in out.splitlines()
              if line.startswith("train step=")]
    return {int(f["step"]): (float(f["loss"]), float(f["acc"])) for f in fields}


@pytest.mark.parametrize("recipe", ["adam", "paper"])   # paper: a decaying rate and the weight average in the loop
def test_a_looped_run_trains_the_same_as_one_step_per_call(tmp_path, image_data, capsys, recipe):
    """N=1 and N=4: the same losses at the logged steps (each call's last step) and the same final weights,
    batch-norm statistics, optimizer slots and weight averages (each variable made once)."""
    from common import npu_session
    printed, final = {}, {}
    for n in (1, 4):
        config = _looped(tmp_path / str(n), image_data, n, recipe=recipe)
        npu_session.reset_probe()   # the device line again (once per process)
        trainer.train(config)
        out = capsys.readouterr().out
        assert ("looping: %d training steps per session call (in-graph loop)" % n) in out
        printed[n] = _train_lines(out)
        reader = tf.train.load_checkpoint(os.path.join(config.save_dir, "checkpoints", "model.ckpt-16"))
        final[n] = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    assert sorted(printed[4]) == [4, 8, 12, 16] and sorted(printed[1]) == list(range(1, 17))
    for step in (4, 8, 12, 16):
        assert printed[4][step] == pytest.approx(printed[1][step], abs=2e-6), step
    assert sorted(final[4]) == sorted(final[1])
    for name, value in final[1].items():
        assert np.allclose(final[4][name], value, rtol=1e-5, atol=1e-6), name
    means = [name for name in final[1] if name.endswith("moving_mean")]
    assert means and all(np.any(final[4][name] != 0) for name in means)   # the BN updates ran inside the loop
    averages = [name for name in final[1] if name.endswith(trainer.recipe.EMA_SUFFIX)]
    assert bool(averages) == (recipe == "paper")


def test_a_looped_run_saves_stops_and_resumes_at_multiples_of_the_loop(tmp_path, image_data, capsys, monkeypatch):
    import signal
    from common.stop import Stopped
    config = _looped(tmp_path, image_data, 4, save_interval=6, patience=0)
    trainer.train(config)
    # save_interval 6 counted from the last save: the calls ending at steps 8 and 16 (the end)
    state = tf.train.get_checkpoint_state(os.path.join(config.save_dir, "checkpoints"))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["model.ckpt-8", "model.ckpt-16"]
    assert sorted(_train_lines(capsys.readouterr().out)) == [4, 8, 12, 16]

    after_run = trainer._TrainLines.after_run

    def interrupt_at_20(self, loop):   # Ctrl-C during the call that runs steps 17..20
        after_run(self, loop)
        if loop.step == 20:
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(trainer._TrainLines, "after_run", interrupt_at_20)
    config.epochs = 4
    with pytest.raises(Stopped, match=r"stopped by SIGINT at step 20 \(epoch 3\); saved \S+model.ckpt-20: rerun"):
        trainer.train(config)
    monkeypatch.undo()
    capsys.readouterr()
    history = trainer.train(config)
    out = capsys.readouterr().out
    assert "resumed from %s" % os.path.join(config.save_dir, "checkpoints", "model.ckpt-20") in out
    assert sorted(_train_lines(out)) == [24, 28, 32] and [int(r["steps"]) for r in history] == [8, 16, 24, 32]


def test_a_loop_length_that_does_not_fit_the_steps_is_one_error(tmp_path, image_data):
    with pytest.raises(UserError, match="iterations_per_loop=3 must divide the 8 steps of an epoch"):
        trainer.train(_looped(tmp_path, image_data, 3))
    with pytest.raises(UserError, match=r"iterations_per_loop=4 must divide the steps left to train \(10, "
                                        r"from step 0 to 10\)"):
        trainer.train(_looped(tmp_path, image_data, 4, max_step=10))
    trainer.train(_looped(tmp_path, image_data, 1, max_step=2))
    with pytest.raises(UserError, match="the checkpoint's step 2 is not a multiple of it"):
        trainer.train(_looped(tmp_path, image_data, 4, max_step=10))
    proc = run_python([os.path.join(MODEL_DIR, "train_cls.py"), "--data_path=" + image_data, "--image_size=32",
                       "--batch=4", "--iterations_per_loop=3", "--modeldir=%s" % (tmp_path / "cli")], check=False)
    errors = [line for line in proc.stdout.splitlines() if line.startswith("error:")]   # stdout and stderr
    assert proc.returncode in (1, 2) and len(errors) == 1 and "Traceback" not in proc.stdout, proc.stdout[-2000:]
    assert "iterations_per_loop=3 must divide the 8 steps of an epoch" in errors[0]
