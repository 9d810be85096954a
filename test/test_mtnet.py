"""MT-net port: the three learners train, masks and T behave as the paper says, train/resume/test/images work."""
import csv
import json
import os
import pickle
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from common import checkpoints, npu_session
from common.errors import UserError
from common.npu_session import NpuOptions
from common.tf_compat import tf
from conftest import REPO, rank_table, run, run_python
from mtnet import tasks as T
from mtnet import model as mtnet_model
from mtnet import trainer
from mtnet.model import MetaLearner, ModelSpec, straight_through_mask

tf1 = tf.compat.v1
MAIN = os.path.join(REPO, "mtnet", "main.py")
VARIANTS = {"MAML": dict(use_T=False, use_M=False), "Tnet": dict(use_T=True, use_M=False),
            "MTnet": dict(use_T=True, use_M=True, share_M=True)}
SEED_FLAGS = dict(datasource="sinusoid", meta_batch_size=4, update_lr=0.01, norm="None", update_batch_size=10,
                  use_T=True, use_M=True, share_M=True)


def _spec(**kw):
    values = dict(kind="fc", dim_input=1, dim_output=1, dim_hidden=[40, 40], norm="None", update_lr=0.01)
    values.update(kw)
    return ModelSpec(**values)


def _cfg(tmp_path, **kw):
    values = dict(SEED_FLAGS, logdir=str(tmp_path / "logs"), log=False, print_interval=10, save_interval=10)
    values.update(kw)
    return trainer.default_config(**values)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_variant_lowers_the_sinusoid_loss(variant):
    """120 meta-steps lower the post-update loss on a fixed set of held-out tasks."""
    with tf.Graph().as_default():
        tf1.set_random_seed(3)
        learner = MetaLearner(_spec(**VARIANTS[variant]))
        sampled = T.sinusoid_tasks(16, 20)
        x = tf1.placeholder_with_default(sampled.x, [16, None, 1])
        y = tf1.placeholder_with_default(sampled.y, [16, None, 1])
        out = learner.build(*T.split_support_query(x, y, 10), num_steps=1)
        loss = tf.reduce_mean(out["lossesb"][0])
        train_op = tf1.train.AdamOptimizer(0.01).minimize(loss)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            held_x, held_y = sess.run([sampled.x, sampled.y])
            held = {x: held_x, y: held_y}
            before = np.mean([sess.run(loss, held) for _ in range(5)])
            for _ in range(120):
                sess.run(train_op)
            after = np.mean([sess.run(loss, held) for _ in range(5)])
    assert after < 0.85 * before, (variant, before, after)


def test_straight_through_mask_is_binary_forward_and_has_gradients():
    with tf.Graph().as_default():
        logits = tf1.get_variable("logits", initializer=np.linspace(-3, 3, 50).astype(np.float32))
        mask = straight_through_mask(logits, [64, 50], temp=1.0)
        weight = tf.constant(np.random.RandomState(0).randn(64, 50).astype(np.float32))
        grad = tf.gradients(tf.reduce_sum(mask * weight), logits)[0]
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            m, g = sess.run([mask, grad])
    assert set(np.unique(m)) <= {0.0, 1.0}
    assert 0 < m.mean() < 1
    assert np.mean(m[:, -1]) > np.mean(m[:, 0])        # P(1) = sigmoid(logit)
    assert np.all(np.isfinite(g)) and np.count_nonzero(g) == g.size


@pytest.mark.parametrize("share_M", [True, False])
def test_inner_step_skips_T_and_is_masked_by_M(share_M):
    with tf.Graph().as_default():
        tf1.set_random_seed(0)
        learner = MetaLearner(_spec(use_T=True, use_M=True, share_M=share_M, logit_init=0.0))
        tasks = T.sinusoid_tasks(4, 20)
        out = learner.build(*T.split_support_query(tasks.x, tasks.y, 10), num_steps=1)
        fast, masks = out["fast_weights"], out["masks"]
        for key in ("w1_f", "w2_f", "w3_f"):
            assert key not in learner.train_keys                # T: outer loop only
        assert "w1_f" not in learner.train_keys and not any(k.endswith("_prob") for k in learner.train_keys)
        # the outer loss reaches T, the mask logits and the initial weights
        grads = tf.gradients(tf.reduce_mean(out["lossesb"][0]),
                             [learner.weights[k] for k in ("w2_f", "w2_prob", "w2")])
        assert all(g is not None for g in grads)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            w, f, m, gv = sess.run([learner.weights, fast, masks, grads])
    for key in ("w1_f", "w2_f", "w3_f"):
        assert np.all(f[key] == w[key][None])                  # tiled per task, never updated
    for key in ("w1", "b1", "w2", "b2", "w3", "b3"):
        delta = f[key] - w[key]
        mask = np.broadcast_to(m[key], delta.shape)
        assert set(np.unique(mask)) <= {0.0, 1.0}
        assert np.all(delta[mask == 0] == 0), key
    changed = f["w2"] - w["w2"]
    assert np.count_nonzero(changed) > 0
    assert np.count_nonzero(gv[1]) > 0                         # straight-through gradient to the logits


@pytest.mark.parametrize("share_M", [True, False])
def test_per_entry_masks_are_drawn_for_every_inner_step(share_M):
    """As upstream: shared masks once per task, per-entry masks anew at each inner step."""
    with tf.Graph().as_default():
        tf1.set_random_seed(2)
        learner = MetaLearner(_spec(use_T=True, use_M=True, share_M=share_M))
        tasks = T.sinusoid_tasks(4, 20)
        out = learner.build(*T.split_support_query(tasks.x, tasks.y, 10), num_steps=2)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            first, second = sess.run([out["step_masks"][0]["w2"], out["step_masks"][1]["w2"]])
    assert set(np.unique(first)) == {0.0, 1.0} and first.shape == second.shape
    assert np.array_equal(first, second) == share_M


def test_stop_grad_drops_second_order_terms():
    def outer_grad(stop_grad):
        with tf.Graph().as_default():
            tf1.set_random_seed(5)
            learner = MetaLearner(_spec(stop_grad=stop_grad, update_lr=0.1))
            tasks = T.sinusoid_tasks(4, 20)
            out = learner.build(*T.split_support_query(tasks.x, tasks.y, 10), num_steps=1)
            grad = tf.gradients(tf.reduce_mean(out["lossesb"][0]), learner.weights["w1"])[0]
            with tf1.Session() as sess:
                sess.run(tf1.global_variables_initializer())
                return sess.run(grad)
    first, second = outer_grad(True), outer_grad(False)
    assert first.shape == second.shape and not np.allclose(first, second)


def test_train_resume_and_test_mode(tmp_path):
    cfg = _cfg(tmp_path, metatrain_iterations=30)
    first = trainer.run(cfg)
    exp_dir = first["exp_dir"]
    assert os.path.basename(exp_dir) == "cls_5.mbs_4.ubs_10.numstep1.updatelr0.01.temp1.0MTnetnonorm"
    assert first["start"] == 0 and first["end"] == 30
    assert tf.train.latest_checkpoint(exp_dir).endswith("model29")
    second = trainer.run(cfg.replace(metatrain_iterations=45))
    assert second["start"] == 30 and second["end"] == 45
    assert tf.train.latest_checkpoint(exp_dir).endswith("model44")
    kept = [os.path.basename(p) for p in checkpoints.checkpoint_paths(exp_dir)]
    assert len(kept) == 3 and kept[-1] == "model44" and "model20" not in kept   # max_to_keep spans the resume

    tested = trainer.run(cfg.replace(train=False, num_test_tasks=150))
    assert tested["results"].shape == (150, 11)
    with open(tested["pkl"], "rb") as f:
        assert pickle.load(f)["mses"].shape == (150, 11)
    with open(tested["csv"]) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["update%d" % i for i in range(11)] and len(rows) == 4
    means, ci = np.array(rows[1], float), np.array(rows[3], float)
    assert np.allclose(means, tested["results"].mean(0), rtol=1e-5) and np.all(ci > 0)
    assert len(tested["plots"]) == 5 and all(os.path.getsize(p) > 1000 for p in tested["plots"])
    # a fixed iteration can be tested too
    at_kept = int(kept[0][len("model"):])
    at = trainer.run(cfg.replace(train=False, num_test_tasks=10, test_iter=at_kept, test_num_updates=1))
    assert at["results"].shape == (10, 2) and at["csv"].endswith("testiter%d.csv" % at_kept)


def test_test_mode_names_diverged_tasks_and_reports_the_others(capsys):
    losses = np.tile(np.linspace(3.0, 0.2, 11), (6, 1))
    losses[2, 6:] = [40.0, 900.0, 1e9, 1e30, np.inf]        # blows up, as one MAML test task in 600 did here
    losses[4, -1] = np.nan
    losses[5, -1] = 2.9                                      # worse than after 1 step, but not diverged
    assert list(trainer.diverged_tasks(losses)) == [False, False, True, False, True, False]
    trainer.report_diverged(losses)
    line = capsys.readouterr().out
    assert "2 of 6 test tasks diverged" in line and "task 2, 4;" in line
    assert "over the other 4 tasks update10: mean %.6f" % np.mean([0.2, 0.2, 0.2, 2.9]) in line
    trainer.report_diverged(losses[[0, 1, 3]])
    assert capsys.readouterr().out == ""
    trainer.report_diverged(losses[[2, 4]])                 # all of them: said, with nothing to average
    assert "2 of 2 test tasks diverged" in capsys.readouterr().out


def test_polynomial_and_batch_norm_train(tmp_path):
    cfg = _cfg(tmp_path, datasource="polynomial", poly_order=2, norm="batch_norm", metatrain_iterations=12)
    out = trainer.run(cfg)
    assert out["exp_dir"].endswith("MTnetord2batchnorm") and np.isfinite(out["postloss"])
    tested = trainer.run(cfg.replace(train=False, num_test_tasks=3, test_num_updates=2))
    assert tested["results"].shape == (3, 3)


def _omniglot(root, alphabets=3, chars=4, images=3):
    rng = np.random.RandomState(0)
    for a in range(alphabets):
        for c in range(chars):
            folder = root / ("alphabet%d" % a) / ("character%02d" % c)
            folder.mkdir(parents=True)
            for i in range(images):
                pixels = (rng.rand(28, 28) > 0.5 + 0.04 * c).astype(np.uint8) * 255
                Image.fromarray(pixels, "L").save(str(folder / ("%d.png" % i)))
    return root


def _mini(root, classes=3, images=3):
    rng = np.random.RandomState(1)
    for split in ("train", "val", "test"):
        for c in range(classes):
            folder = root / split / ("n%08d" % c)
            folder.mkdir(parents=True)
            for i in range(images):
                Image.fromarray((rng.rand(84, 84, 3) * 255).astype(np.uint8)).save(str(folder / ("%d.jpg" % i)))
    return root


def test_omniglot_and_miniimagenet_from_generated_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(mtnet_model, "UNROLL_MAX_TASKS", 1)   # training (2 tasks) takes the map_fn path
    omni = _omniglot(tmp_path / "omniglot")
    cfg = _cfg(tmp_path, datasource="omniglot", data_path=str(omni), num_classes=3, update_batch_size=1,
               meta_batch_size=2, num_filters=4, norm="None", metatrain_iterations=6, update_lr=0.4,
               omniglot_train_chars=6, omniglot_test_chars=3, print_interval=3)
    out = trainer.run(cfg)
    assert out["end"] == 6 and np.isfinite(out["postloss"])
    tested = trainer.run(cfg.replace(train=False, num_test_tasks=4, test_set=True, test_num_updates=2))
    accuracy = tested["results"]
    assert accuracy.shape == (4, 3) and np.all((accuracy >= 0) & (accuracy <= 1))

    mini = _mini(tmp_path / "mini")
    cfg = _cfg(tmp_path, datasource="miniimagenet", data_path=str(mini), num_classes=2, update_batch_size=1,
               meta_batch_size=1, num_filters=4, max_pool=True, norm="None", metatrain_iterations=2,
               use_M=False, share_M=False)
    with pytest.raises(UserError, match="has 3 .* images; a task needs 16"):
        trainer.run(cfg)          # upstream draws 15 query images per class when training
    for folder in (mini / "train").iterdir():
        for i in range(3, 16):
            Image.open(str(folder / "0.jpg")).save(str(folder / ("%d.jpg" % i)))
    out = trainer.run(cfg)
    assert out["exp_dir"].endswith("cls_2.mbs_1.ubs_1.numstep1.updatelr0.01.temp1.0Tnethidden4maxpoolnonorm")
    assert np.isfinite(out["postloss"])


def test_image_tasks_train_and_test_in_a_looped_npu_session(tmp_path, fake_npu, capsys):
    """The (fake) adapter aborts a session with iterations_per_loop > 1 that runs a one-shot iterator, leaves a
    GetNext behind a tf.cond on the host (no data: OutOfRange), needs static shapes in a looped run and returns
    no fetched summaries: training, validation, summaries and test all pass its rules."""
    omni = _omniglot(tmp_path / "omniglot")
    cfg = _cfg(tmp_path, datasource="omniglot", data_path=str(omni), num_classes=3, update_batch_size=1,
               meta_batch_size=2, num_filters=4, norm="None", metatrain_iterations=12, update_lr=0.4,
               omniglot_train_chars=6, omniglot_test_chars=3, print_interval=1, log=True,
               npu=NpuOptions(iterations_per_loop=2))
    out = trainer.run(cfg)
    assert np.isfinite(out["postloss"])
    assert "Validation results: " in capsys.readouterr().out     # iteration 10
    events = [os.path.join(out["exp_dir"], f) for f in os.listdir(out["exp_dir"]) if "tfevents" in f]
    values = [v for path in events for e in tf.compat.v1.train.summary_iterator(path) for v in e.summary.value]
    tags = {v.tag for v in values}
    assert {"metatrain_pre_update_loss", "metatrain_post_update_accuracy_step1"} <= tags, tags
    assert any(v.HasField("histo") and v.histo.num > 0 for v in values), tags    # the weights' histograms
    tested = trainer.run(cfg.replace(train=False, num_test_tasks=2, test_set=True, test_num_updates=1))
    assert tested["results"].shape == (2, 2)
    assert [c["kwargs"] for c in fake_npu if c["name"] == "set_iteration_per_loop"] == [{"iterations_per_loop": 2}]


def test_launcher_on_the_npu_route_needs_no_job_id_from_the_user(tmp_path):
    """npu_common.py: NPUDistributedOptimizer reads the rank size through JOB_ID; the launcher provides it."""
    table = rank_table(tmp_path, [0, 1])
    proc = run([sys.executable, "-m", "common.launch", "--nproc", "2", "--route", "npu", "--rank_table", table,
                "--output_root", str(tmp_path / "out"), "--", sys.executable, "mtnet/main.py",
                "--metatrain_iterations=4", "--logdir=" + str(tmp_path / "logs{rank}"), "--log=False"],
               fake_npu=True, check=False, timeout=300)
    logs = "".join((tmp_path / "out" / str(r) / ("train_%d.log" % r)).read_text() for r in (0, 1))
    assert proc.returncode == 0, proc.stdout + logs
    assert "AttributeError" not in logs and logs.count("HCCL on Ascend") == 2


@pytest.mark.parametrize("change, message", [
    (dict(datasource="cifar"), "unknown datasource 'cifar'"),
    (dict(norm="group_norm"), "unknown norm"),
    (dict(temp=0.0), "temp must be > 0"),
    (dict(num_updates=0), "num_updates must be >= 1"),
    (dict(use_M=False, share_M=True), "share_M=True needs use_M=True"),
    (dict(train=True, test_iter=3), "test_iter applies to test mode"),
    (dict(train=False), "nothing to test: no checkpoint"),
    (dict(datasource="omniglot", data_path="/nonexistent/omniglot"), "is not a directory"),
    (dict(datasource="omniglot", data_path="EMPTY"), "no character folders"),
    (dict(datasource="omniglot", data_path="OMNI", num_classes=9, omniglot_train_chars=6), "fewer than num_classes"),
    (dict(datasource="miniimagenet", data_path="OMNI"), "missing folder"),
    (dict(baseline="random"), "unknown baseline 'random'"),
    (dict(datasource="polynomial", baseline="oracle"), "needs datasource=sinusoid"),
    (dict(pretrain_iterations=-1), "pretrain_iterations must be >= 0"),
    (dict(datasource="omniglot", data_path="OMNI", num_classes=3, num_train_classes=2), "fewer than num_classes=3"),
    (dict(datasource="omniglot", data_path="OMNI", num_classes=2, num_train_classes=7, omniglot_train_chars=6),
     "num_train_classes=7 but the omniglot training split has 6 classes"),
    (dict(datasource="omniglot", data_path="OMNI_ONE_BAD", num_classes=2, omniglot_train_chars=6, update_batch_size=1),
     r"image .*character03/2.png is 30x28; omniglot needs 28x28 images"),
])
def test_bad_input_is_one_clear_error(tmp_path, change, message):
    if change.get("data_path") == "OMNI_ONE_BAD":   # one image of another size, not the first
        root = _omniglot(tmp_path / "omni", alphabets=2, chars=4)
        Image.new("L", (30, 28)).save(str(root / "alphabet1" / "character03" / "2.png"))
        change = dict(change, data_path=str(root))
    if change.get("data_path") == "EMPTY":
        (tmp_path / "empty").mkdir()
        change = dict(change, data_path=str(tmp_path / "empty"))
    if change.get("data_path") == "OMNI":
        change = dict(change, data_path=str(_omniglot(tmp_path / "omni", alphabets=2, chars=4)))
    with pytest.raises(UserError, match=message):
        trainer.run(_cfg(tmp_path, metatrain_iterations=3, **change))


def test_corrupt_checkpoint_is_an_error_and_left_alone(tmp_path):
    cfg = _cfg(tmp_path, metatrain_iterations=10, use_T=False, use_M=False, share_M=False, norm="layer_norm")
    exp_dir = trainer.run(cfg)["exp_dir"]
    data = os.path.join(exp_dir, "model9.data-00000-of-00001")
    with open(data, "r+b") as f:
        f.seek(0)
        f.write(b"\xff" * 64)
    before = {name: os.path.getmtime(os.path.join(exp_dir, name)) for name in os.listdir(exp_dir)}
    with pytest.raises(UserError, match="cannot restore checkpoint"):
        trainer.run(cfg.replace(metatrain_iterations=20))
    after = {name: os.path.getmtime(os.path.join(exp_dir, name)) for name in os.listdir(exp_dir)}
    assert before == after


def test_lost_index_and_truncated_newest_checkpoint_resume_from_the_previous_one(tmp_path, capsys):
    cfg = _cfg(tmp_path, metatrain_iterations=30)
    exp_dir = trainer.run(cfg)["exp_dir"]
    os.remove(os.path.join(exp_dir, "checkpoint"))
    previous, newest = checkpoints.checkpoint_paths(exp_dir)[-2:]
    with open(newest + ".data-00000-of-00001", "r+b") as f:
        f.truncate(8)
    resumed = trainer.run(cfg.replace(metatrain_iterations=35))
    assert resumed["start"] == trainer.checkpoint_iteration(previous) + 1 and resumed["end"] == 35
    assert "%s is damaged" % newest in capsys.readouterr().out


def test_main_prints_one_error_line():
    bad = run_python([MAIN, "--datasource=imagenet"], check=False)
    assert bad.returncode == 2
    assert bad.stdout.strip().splitlines()[-1] == \
        "error: unknown datasource 'imagenet': choose one of sinusoid, polynomial, omniglot, miniimagenet"


def test_performance_wrapper_on_the_fake_npu(tmp_path):
    record = tmp_path / "calls.jsonl"
    proc = run(["bash", os.path.join(REPO, "mtnet", "test", "train_performance_1p.sh"), "--train_steps=60",
                "--loss_scale=1024"], OUTPUT_ROOT=str(tmp_path), fake_npu=True, record_file=record)
    assert "Final Performance tasks/sec : " in proc.stdout and "Iteration 54: " in proc.stdout
    case_log = (tmp_path / "0" / "MTnet_for_TensorFlow_bs4_1p_perf.log").read_text()
    assert "ActualLoss = " in case_log and "ActualLoss = None" not in case_log
    assert '"NPULossScaleOptimizer"' in record.read_text()


def test_a_diverging_run_on_the_npu_route_stops_although_the_loss_saturates(tmp_path):
    """The fake, like Ascend 910, saturates overflow: the diverged loss reached the host finite (3.4e38) and the
    run trained to its end; the NPU route's loss check reads saturation as the overflow it is."""
    proc = run_python([MAIN, "--metatrain_iterations=200", "--meta_lr=1e30", "--logdir=" + str(tmp_path)],
                      check=False, fake_npu=True)
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert "at or past float16's largest value 65504: the NPU saturates" in proc.stdout.strip().splitlines()[-1]


# ---- data parallel (issue 6) ------------------------------------------------------------------------------------
def _case_summary(path):
    return dict(line.split(" = ", 1) for line in path.read_text().splitlines())


def _iteration_lines(log):
    return [line for line in log.read_text().splitlines() if line.startswith("Iteration ")]


def test_8p_wrapper_trains_with_two_cpu_workers(tmp_path):
    out = tmp_path / "out"
    proc = run(["bash", os.path.join(REPO, "mtnet", "test", "train_full_8p.sh"), "--workers=2", "--train_steps=30"],
               OUTPUT_ROOT=out, timeout=500)
    assert "launch: all 2 workers finished" in proc.stdout
    logs = [out / str(rank) / ("train_%d.log" % rank) for rank in (0, 1)]
    for rank, log in enumerate(logs):
        assert "cluster: rank %d of 2 (MultiWorkerMirroredStrategy)" % rank in log.read_text()
    # one model trained by both: the losses (means over both ranks' tasks) agree line for line
    assert _iteration_lines(logs[0]) and _iteration_lines(logs[0]) == _iteration_lines(logs[1])
    summary = _case_summary(out / "0" / "MTnet_for_TensorFlow_bs4_2p_acc.log")
    assert summary["RankSize"] == "2" and float(summary["ActualFPS"]) > 0
    assert float(summary["TrainAccuracy"]) > 0          # test MSE after 10 steps, from rank 0's checkpoint
    exp_dir = out / "0" / "ckpt_8p" / "cls_5.mbs_4.ubs_10.numstep1.updatelr0.01.temp1.0MTnetnonorm"
    assert tf.train.latest_checkpoint(str(exp_dir)).endswith("model29")
    assert (exp_dir / "test_ubs10_stepsize0.01_testiter-1.csv").exists()
    assert sorted(os.listdir(str(out))) == ["0", "1"] and os.listdir(str(out / "1")) == ["train_1.log"]


def test_two_workers_equal_one_worker_on_the_combined_meta_batch(tmp_path):
    """Fixed tasks, masks pinned open (random masks differ between the setups): the same weights."""
    worker = os.path.join(REPO, "test", "mtnet_fixed_tasks.py")
    run_python([worker, "--out", tmp_path / "one", "--steps", "1"])          # model0: the common start
    start = tmp_path / "one" / "logs" / "cls_5.mbs_8.ubs_10.numstep1.updatelr0.01.temp1.0MTnetnonorm"
    two = tmp_path / "two" / "logs" / "cls_5.mbs_4.ubs_10.numstep1.updatelr0.01.temp1.0MTnetnonorm"
    two.mkdir(parents=True)
    for name in os.listdir(str(start)):
        if name.startswith("model0."):
            (two / name).write_bytes((start / name).read_bytes())
    (two / "checkpoint").write_text('model_checkpoint_path: "model0"\n')
    run_python(["-m", "common.launch", "--nproc", "2", "--output_root", tmp_path / "logs", "--",
                sys.executable, worker, "--out", tmp_path / "two"], timeout=300)
    run_python([worker, "--out", tmp_path / "one"])
    ranks = [np.load(str(tmp_path / "two" / ("weights_%d.npz" % r))) for r in (0, 1)]
    single = np.load(str(tmp_path / "one" / "weights_0.npz"))
    first = np.load(str(tmp_path / "two" / "weights_0.npz"))
    assert sorted(single.files) == sorted(first.files) and "w2_f" in single.files
    for key in single.files:
        assert np.array_equal(ranks[0][key], ranks[1][key]), key
        assert np.allclose(ranks[0][key], single[key], rtol=1e-5, atol=1e-7), key
    moved = [key for key in single.files if not key.endswith("_prob")]
    start_w = trainer_weights_at(start / "model0")
    assert all(np.abs(single[k] - start_w[k]).max() > 1e-4 for k in moved)   # 4 steps changed every weight


def trainer_weights_at(path):
    reader = tf.train.load_checkpoint(str(path))
    return {name.split("/")[-1]: reader.get_tensor(name) for name, _ in tf.train.list_variables(str(path))
            if name.startswith("model/") and "Adam" not in name}


def test_8p_wrapper_on_the_npu_route(tmp_path):
    table = rank_table(tmp_path, [0, 1])
    record = tmp_path / "npu_calls.jsonl"
    out = tmp_path / "out"
    run(["bash", os.path.join(REPO, "mtnet", "test", "train_full_8p.sh"), "--train_steps=12"], fake_npu=True,
        record_file=record, OUTPUT_ROOT=out, RANK_SIZE=2, RANK_TABLE_FILE=table, timeout=400)
    for rank in (0, 1):
        assert "cluster: rank %d of 2 (HCCL on Ascend), device %d" % (rank, rank) in \
            (out / str(rank) / ("train_%d.log" % rank)).read_text()
    calls = [json.loads(line)["name"] for line in record.read_text().splitlines()]
    assert calls.count("NPUDistributedOptimizer") == 2 and calls.count("hccl_ops.broadcast") >= 2 * 12
    assert (out / "0" / "MTnet_for_TensorFlow_bs4_2p_acc.log").exists()
    assert os.listdir(str(out / "1")) == ["train_1.log"]        # rank 1 saved nothing
    proc = run(["bash", os.path.join(REPO, "mtnet", "test", "train_full_8p.sh")], fake_npu=True, check=False,
               OUTPUT_ROOT=out, RANK_TABLE_FILE=tmp_path / "missing.json")
    assert proc.returncode == 2 and "set RANK_TABLE_FILE" in proc.stdout


def test_full_wrapper_on_a_finished_checkpoint_tests_and_reports_no_step_time(tmp_path):
    out = tmp_path / "out"
    cfg = _cfg(tmp_path, logdir=str(out / "0" / "ckpt"), metatrain_iterations=20, seed=1)
    trained = trainer.run(cfg)
    before = sorted(os.listdir(trained["exp_dir"]))
    proc = run(["bash", os.path.join(REPO, "mtnet", "test", "train_full_1p.sh"), "--train_steps=20"],
               OUTPUT_ROOT=out, timeout=300)
    assert "nothing to train: checkpoint model19 already reached metatrain_iterations=20" in proc.stdout
    assert "step_time_summary" not in proc.stdout and "Final Performance tasks/sec : None" in proc.stdout
    assert "update10: mean" in proc.stdout                      # the test mode ran on that checkpoint
    summary = _case_summary(out / "0" / "MTnet_for_TensorFlow_bs4_1p_acc.log")
    assert summary["ActualFPS"] == "None" and summary["TrainingTime"] == "None"
    assert float(summary["TrainAccuracy"]) > 0
    # The Ascend line keeps its name; the next line says what MT-net's number is.
    lines = proc.stdout.splitlines()
    accuracy_at = lines.index("Final Train Accuracy : " + summary["TrainAccuracy"])
    assert "test MSE after 10 inner steps" in lines[accuracy_at + 1] and "lower is better" in lines[accuracy_at + 1]
    after = sorted(os.listdir(trained["exp_dir"]))
    assert [n for n in after if not n.startswith("test_")] == before        # no new checkpoint or event file


# ---- upstream's pretrain_iterations, baseline, num_train_classes -------------------------------------------------
def _checkpoint_slots(exp_dir):
    path = tf.train.latest_checkpoint(exp_dir)
    reader = tf.train.load_checkpoint(path)
    slots = {}
    for name, _ in tf.train.list_variables(path):
        if name.startswith("model/w1/"):
            slots[name.split("/")[-1]] = np.abs(reader.get_tensor(name)).max()
    return slots


def test_pretrain_iterations_train_the_pre_update_loss_first(tmp_path, capsys):
    cfg = _cfg(tmp_path, pretrain_iterations=10, metatrain_iterations=0, print_interval=5, log=True)
    first = trainer.run(cfg)
    out = capsys.readouterr().out
    assert "Pretrain Iteration 5: " in out and "Pretrain Iteration 9: " in out and "\nIteration" not in out
    assert first["end"] == 10 and tf.train.latest_checkpoint(first["exp_dir"]).endswith("model9")
    slots = _checkpoint_slots(first["exp_dir"])       # PretrainAdam's moments moved, meta-training's did not
    assert slots["PretrainAdam"] > 0 and slots["Adam"] == 0
    second = trainer.run(cfg.replace(metatrain_iterations=6))
    out = capsys.readouterr().out
    assert second["start"] == 10 and second["end"] == 16
    assert "Iteration 5: " in out and "Pretrain Iteration" not in out   # numbered as upstream: meta-training only
    assert tf.train.latest_checkpoint(first["exp_dir"]).endswith("model15")
    assert _checkpoint_slots(first["exp_dir"])["Adam"] > 0


def test_oracle_baseline_gets_amplitude_and_phase_as_inputs(tmp_path, capsys):
    cfg = _cfg(tmp_path, baseline="oracle", use_T=False, use_M=False, share_M=False, metatrain_iterations=40)
    out = trainer.run(cfg)
    assert out["exp_dir"].endswith("cls_5.mbs_4.ubs_10.numstep1.updatelr0.01.temp1.0MAMLoraclenonorm")
    assert out["weights"]["w1"].shape == (3, 40)                 # x, amplitude, phase
    assert "Pretrain Iteration 39: " in capsys.readouterr().out  # upstream: all oracle iterations pretrain
    tested = trainer.run(cfg.replace(train=False, num_test_tasks=7, test_num_updates=2))
    assert tested["results"].shape == (7, 3) and len(tested["plots"]) == 5
    none = trainer.run(cfg.replace(baseline="None", metatrain_iterations=1))
    assert none["exp_dir"].endswith("MAMLnonorm") and none["weights"]["w1"].shape == (1, 40)


def test_num_train_classes_limits_the_training_classes(tmp_path):
    omni = _omniglot(tmp_path / "omniglot", alphabets=2, chars=5)
    cfg = _cfg(tmp_path, datasource="omniglot", data_path=str(omni), num_classes=2, update_batch_size=1,
               omniglot_train_chars=6, omniglot_test_chars=2, num_train_classes=3)
    assert trainer.exp_string(cfg).endswith("MTnetntc3nonorm")
    every = trainer._image_tasks(cfg.replace(num_train_classes=-1), "train", 2).files
    assert len(every) == 6                                        # -1: all (upstream's [:-1] dropped the last)
    assert trainer._image_tasks(cfg, "train", 2).files == every[:3]
    assert len(trainer._image_tasks(cfg, "eval", 2).files) == 2    # evaluation classes are not limited


def test_a_seeded_run_gives_the_losses_recorded_on_tensorflow_115(tmp_path):
    """Same seed, same run on either stack: TF 2.x gets TF 1.15's op-seed rule from common/tf_compat.py."""
    with open(os.path.join(REPO, "test", "data", "mtnet_seed_losses.json")) as f:
        reference = json.load(f)
    proc = run_python(["mtnet/main.py", "--logdir=" + str(tmp_path)] + reference["flags"])
    printed = {line.split()[1].rstrip(":"): [float(v.rstrip(",")) for v in line.split()[2:4]]
               for line in proc.stdout.splitlines() if line.startswith("Iteration ")}
    assert sorted(printed) == sorted(reference["iterations"])
    for iteration, losses in reference["iterations"].items():
        assert printed[iteration] == pytest.approx(losses, rel=1e-5), iteration


def test_a_checkpoint_written_on_tensorflow_115_restores_and_tests_the_same(tmp_path):
    """test/data/mtnet_tf115_checkpoint: the seeded run above, saved by TF 1.15.5; test mode on either stack."""
    with open(os.path.join(REPO, "test", "data", "mtnet_seed_losses.json")) as f:
        reference = json.load(f)
    exp_dir = tmp_path / "cls_5.mbs_4.ubs_10.numstep1.updatelr0.01.temp1.0MTnetnonorm"
    exp_dir.mkdir()
    for name in os.listdir(os.path.join(REPO, "test", "data", "mtnet_tf115_checkpoint")):
        shutil.copy(os.path.join(REPO, "test", "data", "mtnet_tf115_checkpoint", name), str(exp_dir))
    tf.compat.v1.train.update_checkpoint_state(str(exp_dir), str(exp_dir / "model299"))
    proc = run_python(["mtnet/main.py", "--logdir=" + str(tmp_path)] + reference["flags"]
                      + reference["test_mode"]["flags"])
    assert "Restoring model weights from " + str(exp_dir / "model299") in proc.stdout
    means = {line.split(":")[0]: float(line.split()[2]) for line in proc.stdout.splitlines()
             if line.startswith("update") and ": mean " in line}
    assert means == pytest.approx(reference["test_mode"]["means"], rel=1e-4)


@pytest.mark.parametrize("flag,message", [("--update_lr=abc", "--update_lr"), ("--bogus=1", "--bogus")])
def test_main_flag_errors_are_one_line_with_status_2(flag, message, tmp_path):
    proc = run_python(["mtnet/main.py", "--logdir=" + str(tmp_path), flag], check=False)
    assert proc.returncode == 2, proc.stdout[-2000:]
    errors = [line for line in proc.stdout.splitlines() if line.startswith("error: ")]   # TF 2.x logs more lines
    assert len(errors) == 1 and message in errors[0] and "FATAL" not in proc.stdout, proc.stdout[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == errors[0]


def test_main_help_exits_0_and_lists_the_flags():
    proc = run_python(["mtnet/main.py", "--help"], check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "--update_lr" in proc.stdout and "--precision_mode" in proc.stdout


def test_test_mode_prints_time_based_progress(tmp_path, capsys, monkeypatch):
    from common import progress
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)   # a line after every batch of tasks instead of 30 s
    cfg = _cfg(tmp_path, metatrain_iterations=2)
    trainer.run(cfg)
    capsys.readouterr()
    trainer.run(cfg.replace(train=False, num_test_tasks=250, test_num_updates=1))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("test: ")]
    assert [line.split(",")[0] for line in lines] == ["test: 100/250 tasks", "test: 200/250 tasks"]


def test_a_run_of_warm_up_steps_only_still_gets_its_summary_and_report(tmp_path):
    """--train_steps=1: the one step is a warm-up step, none timed; the wrapper exited 1 after training and test."""
    out = tmp_path / "out"
    proc = run(["bash", "mtnet/test/train_full_1p.sh", "--train_steps=1"], check=False, OUTPUT_ROOT=out)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "no step time measured: every step of this run (1) was a warm-up step" in proc.stdout
    assert "Final Performance tasks/sec : None" in proc.stdout
    assert "Final Train Accuracy : " in proc.stdout and (out / "0" / "report.html").exists()


# ---- --iterations_per_loop off Ascend: an in-graph loop with the NPU's semantics (issue 27) --------------------
def _printed(out):
    """{iteration: (preloss, postloss)} of the 'Iteration N:' lines."""
    return {int(line.split()[1].rstrip(":")): tuple(float(v.rstrip(",")) for v in line.split()[2:4])
            for line in out.splitlines() if line.startswith("Iteration ")}


@pytest.mark.parametrize("datasource", ["sinusoid", "omniglot"])
def test_a_looped_run_trains_the_same_as_one_step_per_call(tmp_path, capsys, datasource):
    """N=1 and N=50: the same losses at the logged steps (each call's last iteration) and the same weights."""
    extra = {}
    if datasource == "omniglot":
        extra = dict(datasource="omniglot", data_path=str(_omniglot(tmp_path / "omniglot")),
                     num_classes=2, update_batch_size=1, omniglot_train_chars=6, omniglot_test_chars=3,
                     num_filters=4, meta_batch_size=2, norm="None")
    results, printed = {}, {}
    for n in (1, 50):
        cfg = _cfg(tmp_path / str(n), metatrain_iterations=100, print_interval=1, save_interval=1000, **extra)
        results[n] = trainer.run(cfg.replace(npu=NpuOptions(iterations_per_loop=n)))
        printed[n] = _printed(capsys.readouterr().out)
    assert sorted(printed[50]) == [49, 99] and sorted(printed[1]) == list(range(1, 100))   # upstream skips 0
    for itr in (49, 99):
        assert printed[50][itr] == pytest.approx(printed[1][itr], rel=1e-6), itr
    for name, value in results[1]["weights"].items():
        assert np.allclose(results[50]["weights"][name], value, rtol=1e-5, atol=1e-7), name


def test_a_looped_run_says_so_saves_and_resumes_at_multiples_of_the_loop(tmp_path):
    options = NpuOptions(iterations_per_loop=20)
    cfg = _cfg(tmp_path, metatrain_iterations=100, save_interval=30, npu=options)
    first = trainer.run(cfg)
    assert "; looping: 20 training steps per session call (in-graph loop)" in npu_session.describe(options)
    kept = [os.path.basename(p) for p in checkpoints.checkpoint_paths(first["exp_dir"])]
    # the calls holding iterations 30, 60, 90 end at 39, 79, 99 (the last also the end of the run)
    assert kept == ["model39", "model79", "model99"]
    with pytest.raises(UserError, match="iterations_per_loop=20 must divide the iterations left to train "
                                        r"\(30, from iteration 100 to 130\)"):
        trainer.run(cfg.replace(metatrain_iterations=130, npu=NpuOptions(iterations_per_loop=20)))
    second = trainer.run(cfg.replace(metatrain_iterations=140, npu=NpuOptions(iterations_per_loop=20)))
    assert second["start"] == 100 and second["end"] == 140


def test_looping_is_refused_where_the_ops_change_between_iterations(tmp_path):
    with pytest.raises(UserError, match="use iterations_per_loop=1"):
        trainer.run(_cfg(tmp_path, metatrain_iterations=20, pretrain_iterations=20,
                         npu=NpuOptions(iterations_per_loop=10)))


def test_xla_compiles_the_looped_regression_step_and_trains_as_without(tmp_path):
    """Fixed tasks and masks pinned open (XLA draws its own random numbers): the same weights to rtol 1e-4."""
    from mtnet_fixed_tasks import fixed_tasks
    tasks = lambda b, n: fixed_tasks(0, b, b, n)      # noqa: E731
    # one common start: with XLA's resource variables the initializers draw other seeded values
    trainer.run(_cfg(tmp_path / "start", metatrain_iterations=1, logit_init=30.0), task_source=tasks)
    weights = {}
    for xla in (False, True):
        shutil.copytree(str(tmp_path / "start"), str(tmp_path / str(xla)))
        options = NpuOptions(iterations_per_loop=10)
        options.xla = xla
        cfg = _cfg(tmp_path / str(xla), metatrain_iterations=31, logit_init=30.0, npu=options)
        result = trainer.run(cfg, task_source=tasks)
        assert result["start"] == 1 and options.xla_whole_loop is xla
        if xla:
            assert "; XLA: on (the training loop compiled whole" in npu_session.describe(options)
        weights[xla] = result["weights"]
    for name, value in weights[False].items():
        assert np.allclose(weights[True][name], value, rtol=1e-4, atol=1e-6), name
