"""AM3 family: each variant trains, checkpoints, resumes, validates and tests on a tiny generated dataset;
lambda = 1 reduces AM3 to its visual-only base; entry scripts, NPU route and wrappers."""
import json
import os
import re

import numpy as np
import pytest

from common.tf_compat import tf
from conftest import AM3_TINY as TINY, REPO, make_am3_data as make_data, run, run_python
from am3 import flags as am3_flags, model as M, train as am3_train
from common.errors import UserError

VARIANTS = sorted(am3_flags.VARIANTS)


def config(variant, data_dir, log_dir, *extra):
    return am3_flags.parse_config(variant, ["--data_dir", data_dir, "--log_dir", str(log_dir)] + TINY + list(extra))


def checkpoint_steps(train_dir):
    state = tf.train.get_checkpoint_state(str(train_dir))
    return sorted(int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_trains_resumes_evaluates_and_tests(variant, data_dir, tmp_path, capsys):
    log = tmp_path / "log"
    am3_train.run(config(variant, data_dir, log, "--number_of_steps=3"))
    out = capsys.readouterr().out
    assert "step 0, loss : " in out and "dt: " in out and "step_time_summary: mean_dt=" in out
    assert "accuracy_sources: " in out       # validation ran at step 2
    assert checkpoint_steps(log / "train") == [2, 3]
    assert os.listdir(str(log / "eval")) and os.listdir(str(log / "train"))

    am3_train.run(config(variant, data_dir, log, "--number_of_steps=5"))
    out = capsys.readouterr().out
    assert "resumed from" in out and "from step 3 to 5" in out and "step 3, loss : " in out
    assert "step 0, loss" not in out
    assert checkpoint_steps(log / "train")[-1] == 5
    if variant == "AM3_TADAM":   # a rerun on the finished checkpoint trains nothing and says so for the wrappers
        am3_train.run(config(variant, data_dir, log, "--number_of_steps=5"))
        out = capsys.readouterr().out
        assert "nothing to train: the checkpoint in %s is at step 5 of 5" % (log / "train") in out
        assert "step 5, loss" not in out and checkpoint_steps(log / "train")[-1] == 5

    results = am3_train.run(config(variant, data_dir, log, "--mode=test"))
    assert results["episodes"] == 4 and results["step"] == 5 and 0.0 <= results["accuracy"] <= 1.0
    assert results["ci95"] >= 0.0
    with open(str(log / "test_results.json")) as f:
        assert json.load(f)["accuracy"] == results["accuracy"]
    if variant.startswith("AM3"):
        assert 0.0 < results["lambda"] < 1.0
    else:
        assert results["lambda"] == 1.0


def test_every_variant_has_a_script_and_is_tested():
    for variant in am3_flags.VARIANTS:
        assert os.path.isfile(os.path.join(REPO, "am3", variant + ".py"))
    assert VARIANTS == sorted(["protonet++", "tadam", "AM3_protonet++", "AM3_TADAM"])


def _logits_for(link, task_encoder, alpha, training):
    cfg = am3_flags.parse_config("AM3_TADAM", TINY + ["--encoder_classifier_link", link, "--task_encoder",
                                                      task_encoder, "--alpha", str(alpha)])
    rng = np.random.RandomState(0)
    support = tf.constant(rng.rand(2, 3, 16, 16, 3).astype(np.float32) * 255)
    query = tf.constant(rng.rand(2, 4, 16, 16, 3).astype(np.float32) * 255)
    words = tf.constant(rng.randn(2, 3, 12).astype(np.float32))
    embeddings = None if task_encoder == "class_mean" else words
    return M.episode_logits(cfg.model, support, query, embeddings, ways=3, shots=1, training=training)["logits"]


@pytest.mark.parametrize("link", ["prototypical", "cbn"])
def test_am3_with_lambda_one_equals_its_visual_base(link):
    """Same weights (one graph, shared scopes): AM3 with lambda forced to 1 gives the base model's logits."""
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        base = _logits_for(link, "class_mean", 1.0, training=True)
        am3_one = _logits_for(link, "fixed_alpha_mlp", 1.0, training=True)
        am3_half = _logits_for(link, "fixed_alpha_mlp", 0.5, training=True)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            if link == "cbn":   # make the FiLM branch matter: non-zero multipliers
                for var in tf.compat.v1.global_variables():
                    if "_weight" in var.name and "cbn_params" in var.name:
                        sess.run(var.assign(0.3))
            b, one, half = sess.run([base, am3_one, am3_half])
    np.testing.assert_allclose(one, b, rtol=1e-5, atol=1e-5)
    assert np.abs(half - b).max() > 1e-3


def test_flag_aliases_and_errors(tmp_path, data_dir):
    cfg = am3_flags.parse_config("AM3_TADAM", ["--data_path", data_dir, "--train_steps", "7"])
    assert cfg.data_dir == data_dir and cfg.number_of_steps == 7 and cfg.log_dir == os.path.join("logs", "AM3_TADAM")
    assert am3_flags.parse_config("tadam", []).task_encoder == "class_mean"
    assert am3_flags.parse_config("AM3_protonet++", []).encoder_classifier_link == "prototypical"
    with pytest.raises(UserError, match="--alpha"):
        am3_flags.parse_config("AM3_TADAM", ["--alpha", "2"])
    with pytest.raises(UserError, match="more than 1 images per class|7-way tasks need 7 classes"):
        am3_train.run(config("AM3_TADAM", data_dir, tmp_path, "--num_classes_test=7"))
    with pytest.raises(UserError, match="no checkpoint in"):
        am3_train.run(config("tadam", data_dir, tmp_path / "empty", "--mode=test"))


def test_params_json_never_overrides_flags_and_guards_the_checkpoint(tmp_path, data_dir, capsys):
    log = tmp_path / "log"
    am3_train.run(config("protonet++", data_dir, log, "--number_of_steps=1", "--eval_interval_steps=0",
                         "--eval_interval_fine_steps=0"))
    capsys.readouterr()
    # An eval run with other evaluation flags evaluates (does not train again, does not loop).
    results = am3_train.run(config("protonet++", data_dir, log, "--mode=eval", "--num_cases_val=5"))
    assert set(results) >= {"accuracy_sources", "accuracy_target_val", "accuracy_target_tst"}
    assert all(0.0 <= results["accuracy_" + s] <= 1.0 for s in am3_train.EVAL_SPLITS)
    assert "loss : " not in capsys.readouterr().out
    with pytest.raises(UserError, match="trained with other model flags: num_filters=8"):
        am3_train.run(config("protonet++", data_dir, log, "--mode=test", "--num_filters=8"))
    with pytest.raises(UserError, match="different model"):
        am3_train.run(config("protonet++", data_dir, log, "--number_of_steps=2", "--num_filters=8"))
    assert checkpoint_steps(log / "train") == [1]


def test_entry_script_bad_input_is_one_line(tmp_path):
    proc = run_python(["am3/AM3_TADAM.py", "--data_dir", tmp_path / "nowhere", "--log_dir", tmp_path], check=False)
    assert proc.returncode == 2
    assert proc.stdout.strip().splitlines()[-1].startswith("error: data directory")
    assert "Traceback" not in proc.stdout


def test_npu_route_with_fake_bridge(tmp_path, data_dir):
    """The script on the (fake) Ascend route: NPU session config, loss scaling and the looped train op, with
    evaluation in the training session and test mode under the same flags (the adapter aborts a looped session
    that runs a one-shot iterator)."""
    record = tmp_path / "calls.jsonl"
    npu_flags = ["--iterations_per_loop=2", "--loss_scale=dynamic", "--precision_mode=allow_mix_precision"]
    aux = ["--feat_extract_pretrain=multitask", "--num_classes_pretrain=8", "--pre_train_batch_size=6"]
    proc = run_python(["am3/AM3_protonet++.py", "--data_path", data_dir, "--log_dir", tmp_path / "log",
                       "--train_steps=4", "--mlp_dropout=0.5"] + npu_flags + aux + TINY, fake_npu=True,
                      record_file=record)
    assert "device: Ascend NPU" in proc.stdout
    # evaluation ran in the looped training session, its GetNexts sunk (a string-handle iterator's GetNext
    # reads the adapter's empty host dataset: OutOfRange, or an auxiliary accuracy of 0 from no images)
    assert "accuracy_target_tst: " in proc.stdout and "pretrain_accuracy_test: " in proc.stdout
    # the training scalars reach TensorBoard without fetching summary ops (the adapter returns none)
    tags = {value.tag for name in os.listdir(str(tmp_path / "log" / "train")) if "tfevents" in name
            for event in tf.compat.v1.train.summary_iterator(str(tmp_path / "log" / "train" / name))
            for value in event.summary.value}
    assert {"loss", "misclassification", "learning_rate", "lambda", "pretrain/loss"} <= tags, tags
    names = [json.loads(line)["name"] for line in open(str(record))]
    assert "set_iteration_per_loop" in names and "NPULossScaleOptimizer" in names, names
    assert "npu_ops.dropout" in names, names
    # The fake loop op runs one step per call where the NPU runs two, so only check that training saved.
    assert checkpoint_steps(tmp_path / "log" / "train")
    tested = run_python(["am3/AM3_protonet++.py", "--data_path", data_dir, "--log_dir", tmp_path / "log",
                         "--mode=test"] + npu_flags + aux + TINY, fake_npu=True)
    assert "accuracy_target_tst: " in tested.stdout


def test_wrappers_reject_bad_flags(tmp_path):
    for script in ("train_full_1p.sh", "train_performance_1p.sh"):
        proc = run(["bash", "am3/test/" + script, "--help"], OUTPUT_ROOT=tmp_path)
        assert "--data_path" in proc.stdout and "--train_steps" in proc.stdout
        proc = run(["bash", "am3/test/" + script, "--bogus=1"], check=False, OUTPUT_ROOT=tmp_path)
        assert proc.returncode == 2 and "unknown flag --bogus" in proc.stdout
        proc = run(["bash", "am3/test/" + script], check=False, OUTPUT_ROOT=tmp_path)
        assert proc.returncode == 2 and "--data_path is required" in proc.stdout


@pytest.mark.slow
def test_wrapper_performance_run(tmp_path):
    data = make_data(str(tmp_path / "data" / "mini-imagenet"), per_class=30, classes=(6, 5, 5))
    proc = run(["bash", "am3/test/train_performance_1p.sh", "--data_path=" + str(tmp_path / "data"),
                "--train_steps=3", "--num_filters=4"], OUTPUT_ROOT=tmp_path / "out")
    assert "Final Performance images/sec : " in proc.stdout
    case = [f for f in os.listdir(str(tmp_path / "out" / "0")) if f.endswith("_perf.log")]
    assert case, os.listdir(str(tmp_path / "out" / "0"))
    text = open(str(tmp_path / "out" / "0" / case[0])).read()
    assert "BatchSize = 145" in text and "ActualFPS = " in text
    assert data


@pytest.mark.slow
def test_wrapper_full_run(tmp_path):
    make_data(str(tmp_path / "data"), per_class=30, classes=(6, 5, 5))
    proc = run(["bash", "am3/test/train_full_1p.sh", "--data_path=" + str(tmp_path / "data"), "--train_steps=2",
                "--num_cases_test=200", "--num_filters=4"], OUTPUT_ROOT=tmp_path / "out")
    assert "Final Train Accuracy : 0." in proc.stdout


@pytest.mark.slow
def test_am3_beats_its_visual_base_when_words_carry_the_class(tmp_path):
    """The paper's claim on the generated task of am3/cross_modal_check.py (1-shot, unseen test classes)."""
    from am3 import cross_modal_check
    results = cross_modal_check.run_pair(str(tmp_path), steps=200, base="protonet++", test_cases=5000, seed=0)
    base, am3 = results["protonet++"], results["AM3_protonet++"]
    assert am3["accuracy"] - am3["ci95"] > base["accuracy"] + base["ci95"] + 0.05, results
    assert am3["lambda"] < 0.9    # it learned to lean on the word embeddings


def test_swish_matches_its_plain_definition_and_gradient():
    with tf.Graph().as_default():
        x = tf.constant(np.linspace(-8, 8, 201).astype(np.float32))
        ours, plain = M.swish(x), x * tf.sigmoid(x)
        grads = [tf.gradients(tf.reduce_sum(tf.square(y)), x)[0] for y in (ours, plain)]
        with tf.compat.v1.Session() as sess:
            a, b, ga, gb = sess.run([ours, plain] + grads)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-5)


def test_auxiliary_task_with_held_out_evaluation(tmp_path, data_dir, capsys):
    """TADAM's auxiliary task (multitask) is evaluated on the training-split images it never trains on, during
    training and in eval mode. The run also drives the other ported options through the train/test loop."""
    flags = ["--feat_extract_pretrain=multitask", "--num_classes_pretrain=8", "--pre_train_batch_size=6",
             "--feat_extract_pretrain_decay_rate=0.999", "--att_input=queryproto", "--cbn_premultiplier=projection"]
    am3_train.run(config("AM3_TADAM", data_dir, tmp_path, "--number_of_steps=3", *flags))
    out = capsys.readouterr().out
    assert "step 0, pretrain loss : " in out and "step 1, loss : " in out and "accuracy_sources: " in out
    # 8 classes x 10 images: one image per class held out; the training-image sample is capped at num_cases_val
    line = [x for x in out.splitlines() if "pretrain_accuracy_test" in x]
    assert len(line) == 1 and line[0].startswith("step 2, ") and "on 8 held-out and 10 training images" in line[0]
    accuracies = [float(x.split(": ")[1].split(",")[0].split(" ")[0]) for x in line[0].split("pretrain_")[1:]]
    assert len(accuracies) == 2 and all(0.0 <= a <= 1.0 for a in accuracies)
    results = am3_train.run(config("AM3_TADAM", data_dir, tmp_path, "--mode=eval", *flags))
    assert 0.0 <= results["pretrain/accuracy_test"] <= 1.0 and 0.0 <= results["pretrain/accuracy_train"] <= 1.0
    assert "step 3, pretrain_accuracy_test: " in capsys.readouterr().out
    assert 0.0 < results["lambda_target_tst"] < 1.0
    with pytest.raises(UserError, match="num_classes_pretrain=4 but .* has 8 classes"):
        am3_train.run(config("tadam", data_dir, tmp_path / "x", "--feat_extract_pretrain=finetune",
                             "--num_classes_pretrain=4"))


def _query_mixing_graph(att_input, link="prototypical"):
    """Placeholders for one episode batch and the AM3 outputs with a query-dependent --att_input."""
    cfg = am3_flags.parse_config("AM3_protonet++", TINY + ["--att_input", att_input,
                                                           "--encoder_classifier_link", link])
    support = tf.compat.v1.placeholder(tf.float32, [2, 3, 16, 16, 3])
    query = tf.compat.v1.placeholder(tf.float32, [2, 4, 16, 16, 3])
    words = tf.compat.v1.placeholder(tf.float32, [2, 3, 12])
    out = M.episode_logits(cfg.model, support, query, words, ways=3, shots=1, training=False)
    return (support, query, words), out


@pytest.mark.parametrize("att_input", ["queryproto", "queryword"])
def test_query_dependent_mixing_weights(att_input):
    """One lambda (and prototype) per query and class, driven by the query and by the prototype (queryproto) or
    the word embedding (queryword) only."""
    rng = np.random.RandomState(0)
    feeds = [rng.rand(2, 3, 16, 16, 3) * 255, rng.rand(2, 4, 16, 16, 3) * 255, rng.randn(2, 3, 12)]
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        placeholders, out = _query_mixing_graph(att_input)
        assert out["lambda"].shape.as_list() == [2, 4, 3, 1] and out["logits"].shape.as_list() == [2, 4, 3]
        assert out["prototypes"].shape.as_list()[:3] == [2, 4, 3]
        fetch = [out["lambda"], out["logits"]]
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            lam, logits = sess.run(fetch, dict(zip(placeholders, feeds)))
            other_support = dict(zip(placeholders, [rng.rand(2, 3, 16, 16, 3) * 255] + feeds[1:]))
            other_words = dict(zip(placeholders, feeds[:2] + [rng.randn(2, 3, 12)]))
            lam_support, _ = sess.run(fetch, other_support)
            lam_words, _ = sess.run(fetch, other_words)
    assert np.all((lam > 0) & (lam < 1)) and np.isfinite(logits).all()
    # Compared before the sigmoid: a random draw can saturate lambda (1e-20 on TF 2.x), hiding real changes.
    pre, pre_support, pre_words = (np.log(x.astype(np.float64)) - np.log1p(-x.astype(np.float64))
                                   for x in (lam, lam_support, lam_words))
    assert pre.std(axis=1).max() > 1e-4            # the weight changes from query to query
    moved_by_support = np.abs(pre_support - pre).max() > 1e-4
    moved_by_words = np.abs(pre_words - pre).max() > 1e-4
    assert (moved_by_support, moved_by_words) == ((True, False) if att_input == "queryproto" else (False, True))


def test_query_dependent_mixing_tadam_head_has_the_sign_of_a_distance():
    """With per-query prototypes the TADAM logits are -s * ||q - p'|| (upstream's per-query head had them grow
    with the distance)."""
    rng = np.random.RandomState(1)
    feeds = [rng.rand(2, 3, 16, 16, 3) * 255, rng.rand(2, 4, 16, 16, 3) * 255, rng.randn(2, 3, 12)]
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        placeholders, out = _query_mixing_graph("queryword", link="cbn")
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            logits, protos = sess.run([out["logits"], out["prototypes"]], dict(zip(placeholders, feeds)))
    assert logits.shape == (2, 4, 3) and protos.shape[:3] == (2, 4, 3)
    assert np.all(logits < 0)        # -metric_multiplier_init * distance


def test_cbn_premultiplier_projection_is_per_task_and_learns():
    """--cbn_premultiplier=projection: the FiLM factor is a linear map of the task embedding that starts at 0 and
    receives gradients (upstream's tf.assign blocked them); non-zero, it changes the network's output."""
    cfg = am3_flags.parse_config("tadam", TINY + ["--cbn_premultiplier=projection"])
    rng = np.random.RandomState(0)
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        support = tf.constant(rng.rand(2, 3, 16, 16, 3).astype(np.float32) * 255)
        query = tf.constant(rng.rand(2, 4, 16, 16, 3).astype(np.float32) * 255)
        logits = M.episode_logits(cfg.model, support, query, None, ways=3, shots=1, training=True)["logits"]
        kernels = [v for v in tf.compat.v1.trainable_variables() if "cbn_params" in v.name and "_weight" in v.name
                   and v.name.endswith("kernel:0")]
        # one (gamma, beta) pair per conditioned unit: 2 blocks x 1 unit
        assert len(kernels) == 4 and all(k.shape.as_list() == [4 * 2, 1] for k in kernels)
        decays = [r.name for r in tf.compat.v1.losses.get_regularization_losses() if "_weight" in r.name]
        assert len(decays) == 8, decays   # per factor: its kernel's decay and its own (weight_decay_cbn)
        grads = tf.gradients(tf.reduce_sum(tf.square(logits)), kernels)   # from the task loss, not the decay
        assert all(g is not None for g in grads)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            before = sess.run(logits)
            # the FiLM generators' own outputs are multiplied by the factor: make them non-zero to see gradients
            sess.run([k.assign(0.05 * np.ones(k.shape.as_list(), np.float32)) for k in kernels])
            after, grad_values = sess.run([logits, grads])
    assert np.abs(after - before).max() > 1e-4
    assert max(np.abs(g).max() for g in grad_values) > 0


def test_backbone_training_benchmark_prints_images_per_second():
    proc = run_python(["am3/benchmark.py", "--batch=2", "--image_size=16", "--num_filters=4", "--runs=2"])
    line = [x for x in proc.stdout.splitlines() if x.startswith("benchmark: train ResNet-12")][-1]
    assert "filters=4" in line and float(line.split("images_per_sec=")[1]) > 0


def test_a_split_of_another_image_size_fails_before_training(tmp_path):
    root = make_data(str(tmp_path / "data"))
    rng = np.random.RandomState(1)
    labels = np.repeat(np.arange(6), 10)
    np.savez(os.path.join(root, "few-shot-val.npz"), features=rng.randint(0, 256, (60, 20, 20, 3)).astype(np.uint8),
             targets=labels)
    proc = run_python(["am3/AM3_TADAM.py", "--data_dir", root, "--log_dir", tmp_path / "log", "--train_steps=3",
                       "--eval_interval_steps=2"] + TINY, check=False)
    assert proc.returncode == 2 and "step 0, loss" not in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == (
        "error: %s/few-shot-val.npz holds 20x20 images but the training split %s/few-shot-train.npz holds 16x16: "
        "build all splits with the same --image_size" % (root, root))


@pytest.mark.parametrize("rate", ["0", "-0.1"])
def test_non_positive_learning_rate_is_one_error_line(rate, tmp_path):
    proc = run_python(["am3/AM3_TADAM.py", "--init_learning_rate=" + rate, "--data_dir", tmp_path,
                       "--log_dir", tmp_path], check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout
    errors = [line for line in proc.stdout.splitlines() if line.startswith("error: ")]   # TF 2.x logs more lines
    assert errors == ["error: --init_learning_rate must be positive, got %s" % float(rate)]
    assert proc.stdout.strip().splitlines()[-1] == errors[0]


def test_performance_wrapper_starts_afresh_and_derives_nothing_without_a_step(tmp_path):
    make_data(str(tmp_path / "data"), per_class=30, classes=(6, 5, 5))
    wrapper = ["bash", "am3/test/train_performance_1p.sh", "--data_path=" + str(tmp_path / "data"), "--num_filters=4"]
    run(wrapper + ["--train_steps=1"], OUTPUT_ROOT=tmp_path / "out")
    second = run(wrapper + ["--train_steps=0"], OUTPUT_ROOT=tmp_path / "out").stdout
    assert "resumed from" not in second      # the first run's ckpt_perf is cleared, as MT-net's wrapper does
    summary = second.split("------------------ Final result")[1].splitlines()
    assert "Final Performance images/sec : None" in summary
    assert "images/sec : None" in summary and not any("inf" in line for line in summary)


def test_full_wrapper_passes_the_test_episode_size_it_names_in_errors(tmp_path):
    make_data(str(tmp_path / "data"), per_class=30, classes=(6, 5, 5))
    proc = run(["bash", "am3/test/train_full_1p.sh", "--data_path=" + str(tmp_path / "data"), "--num_filters=4",
                "--train_steps=1", "--eval_batch_size=1000"], check=False, OUTPUT_ROOT=tmp_path / "out")
    assert proc.returncode == 2
    errors = [line for line in proc.stdout.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "1000 queries per task cannot be drawn" in errors[0]
    assert "--eval_batch_size" in errors[0]
    assert "--eval_batch_size" in run(["bash", "am3/test/train_full_1p.sh", "--help"]).stdout


def test_test_mode_prints_time_based_progress(tmp_path, data_dir, capsys, monkeypatch):
    from common import progress
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)   # a line after every episode instead of every 30 s
    am3_train.run(config("protonet++", data_dir, tmp_path, "--number_of_steps=1", "--eval_interval_steps=0",
                         "--eval_interval_fine_steps=0"))
    capsys.readouterr()
    am3_train.run(config("protonet++", data_dir, tmp_path, "--mode=test"))    # 20 cases / 5 queries: 4 episodes
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("test on target_tst: ")]
    assert [line.split(",")[0] for line in lines] == ["test on target_tst: %d/4 episodes" % i for i in (1, 2, 3)]


# ---- --iterations_per_loop off Ascend: an in-graph loop with the NPU's semantics (issue 27) --------------------
LOOP = ["--eval_interval_steps=0", "--eval_interval_fine_steps=0", "--lr_anneal=pwc"]   # the rate moves each step


def _loss_lines(out):
    """{step: 'loss : X, ... lambda: L'} of the 'step N, loss' lines (the time left out)."""
    lines = [line.split(", ", 1) for line in out.splitlines() if line.startswith("step ") and ", loss : " in line]
    return {int(head.split()[1]): re.sub(r"dt: \S+, ", "", rest) for head, rest in lines}


def _scalars(train_dir, tag):
    return {event.step: value.simple_value for name in os.listdir(str(train_dir)) if "tfevents" in name
            for event in tf.compat.v1.train.summary_iterator(str(train_dir / name))
            for value in event.summary.value if value.tag == tag}


def test_a_looped_run_trains_the_same_as_one_step_per_call(data_dir, tmp_path, capsys):
    """N=1 and N=4: the same loss, accuracy, lambda and learning rate at the logged steps (each call's last
    step) and the same weights at the end, batch norm's moving statistics too (float32 rounding: rtol 1e-5,
    atol 1e-6; they were 2% apart while the encoder's passes updated them in the order TF scheduled)."""
    printed, weights = {}, {}
    for n in (1, 4):
        log = tmp_path / str(n)
        am3_train.run(config("AM3_TADAM", data_dir, log, "--number_of_steps=8", "--iterations_per_loop=%d" % n,
                             *LOOP))
        printed[n] = _loss_lines(capsys.readouterr().out)
        reader = tf.train.load_checkpoint(str(log / "train" / "model.ckpt-8"))
        weights[n] = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
        for tag in ("loss", "learning_rate"):
            printed[n][tag] = _scalars(log / "train", tag)
    assert sorted(k for k in printed[4] if isinstance(k, int)) == [3, 7]
    assert sorted(k for k in printed[1] if isinstance(k, int)) == list(range(8))
    for step in (3, 7):
        assert printed[4][step] == printed[1][step], step
        for tag in ("loss", "learning_rate"):
            assert printed[4][tag][step] == pytest.approx(printed[1][tag][step], rel=1e-6), (tag, step)
    assert len(set(printed[1]["learning_rate"].values())) > 1     # the loop reads the moving global step
    assert sorted(weights[4]) == sorted(weights[1])
    for name, value in weights[1].items():
        np.testing.assert_allclose(weights[4][name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def _moving_mean_after_two_passes(ordered):
    """Batch norm run on a batch of ones, then (the same layer) on a batch of zeros, as AM3's encoder runs on
    support and query; momentum 0.5 from 0: in order the moving mean is 0.5 then 0.25."""
    from common.train_loop import ordered_updates
    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.variable_scope("encoder", use_resource=True, reuse=v1.AUTO_REUSE):
        for batch in (tf.ones([64, 4, 4, 8]), tf.zeros([64, 4, 4, 8])):
            v1.layers.batch_normalization(batch, momentum=0.5, training=True, name="bn")
        updates = v1.get_collection(v1.GraphKeys.UPDATE_OPS)
        if ordered:
            ordered_updates(updates)
        mean = [v for v in v1.global_variables() if "moving_mean" in v.name][0]
        with v1.Session(config=v1.ConfigProto(inter_op_parallelism_threads=4)) as sess:
            values = set()
            for _ in range(30):
                sess.run(v1.global_variables_initializer())
                sess.run(updates)
                values.add(float(sess.run(mean)[0]))
    return values


def test_repeated_passes_update_the_moving_statistics_in_order():
    """Each pass's update reads the statistic its predecessor wrote (without the order, a later pass's update
    could read it before the earlier one's assign and the result depended on TF's scheduling: AM3's looped
    runs were not bit-reproducible)."""
    assert _moving_mean_after_two_passes(ordered=True) == {0.25}


def test_a_looped_run_saves_and_resumes_at_multiples_of_the_loop(data_dir, tmp_path, capsys, no_npu):
    log = tmp_path / "log"
    am3_train.run(config("tadam", data_dir, log, "--number_of_steps=6", "--iterations_per_loop=2",
                         "--save_checkpoint_steps=3", *LOOP))
    out = capsys.readouterr().out
    assert "looping: 2 training steps per session call (in-graph loop)" in out
    assert checkpoint_steps(log / "train") == [4, 6]     # 3 steps since the last save: the call ending at step 4
    with pytest.raises(UserError, match=r"iterations_per_loop=4 must divide the steps left to train \(6, from "
                                        r"step 6 to 12\)"):
        am3_train.run(config("tadam", data_dir, log, "--number_of_steps=12", "--iterations_per_loop=4", *LOOP))
    am3_train.run(config("tadam", data_dir, log, "--number_of_steps=12", "--iterations_per_loop=3", *LOOP))
    out = capsys.readouterr().out
    assert "resumed from %s" % (log / "train" / "model.ckpt-6") in out
    assert sorted(_loss_lines(out)) == [8, 11] and checkpoint_steps(log / "train") == [4, 6, 9, 12]


def test_looping_is_refused_where_the_auxiliary_task_picks_the_train_op(data_dir, tmp_path):
    with pytest.raises(UserError, match="--feat_extract_pretrain=multitask picks the auxiliary or the episodic "
                                        "train op at each step in Python: off Ascend it takes "
                                        "--iterations_per_loop=1"):
        am3_train.run(config("AM3_TADAM", data_dir, tmp_path, "--number_of_steps=4", "--iterations_per_loop=2",
                             "--feat_extract_pretrain=multitask", "--num_classes_pretrain=8"))
