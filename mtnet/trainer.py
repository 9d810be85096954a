"""Meta-training and meta-testing loops for MAML / T-net / MT-net (graph build, session, checkpoints, results)."""
import contextlib
import csv
import os
import pickle
import re

import numpy as np

from common import checkpoints, distributed, npu_session, precision
from common.errors import require
from common.progress import Progress
from common.step_timer import StepTimer
from common.train_loop import Checkpoint, Hook, TrainLoop, crosses, repeat, resource_variables, xla_compiled
from common.tf_compat import tf
from mtnet import log_lines, tasks as T
from mtnet.model import NORMS, MetaLearner, ModelSpec
from mtnet.options import OPTIONS

tf1 = tf.compat.v1

SUMMARY_INTERVAL = 100
FINAL_WINDOW = 5000          # iterations averaged for the final postloss line
QUERY_POINTS = 10            # regression query points per task (upstream: "10 val samples", as Meta-SGD)
NUM_PLOTS = 5                # regression test mode: fitted tasks drawn as PNG
RANK_SEED_STRIDE = 1000      # data-parallel rank r seeds its graph (tasks, masks) with seed + 1000 * r


class Config(object):
    """Plain options (the flags' values); nothing below the entry script reads global flags."""

    def __init__(self, **values):
        self.__dict__.update(values)

    def replace(self, **values):
        return Config(**dict(self.__dict__, **values))


def default_config(**overrides):
    """The declared defaults (mtnet/options.py) and no NPU options; tests start from here."""
    values = {opt.name: opt.default for opt in OPTIONS}
    values["npu"] = npu_session.NpuOptions()
    values.update(overrides)
    return Config(**values)


def validate(cfg):
    """Reject what the model cannot honour, before anything is built or written."""
    require(cfg.datasource in T.DATASOURCES, "unknown datasource %r: choose one of %s"
            % (cfg.datasource, ", ".join(T.DATASOURCES)))
    T.parse_freq_range(getattr(cfg, "sine_freq", "0.8,1.2"))
    require(cfg.norm in NORMS, "unknown norm %r: choose batch_norm, layer_norm or None" % cfg.norm)
    for name in ("metatrain_iterations", "pretrain_iterations"):
        require(getattr(cfg, name) >= 0, "%s must be >= 0, got %r" % (name, getattr(cfg, name)))
    for name in ("meta_batch_size", "update_batch_size", "num_updates", "dim_hidden", "num_filters",
                 "save_interval"):
        require(getattr(cfg, name) >= 1, "%s must be >= 1, got %r" % (name, getattr(cfg, name)))
    require(cfg.use_M or not cfg.share_M, "share_M=True needs use_M=True (it shares mask bits; without masks "
                                          "there is nothing to share)")
    require(cfg.temp > 0, "temp must be > 0 (Gumbel-softmax temperature), got %r" % cfg.temp)
    require(cfg.meta_lr > 0, "meta_lr must be > 0, got %r" % cfg.meta_lr)
    require(cfg.update_lr > 0, "update_lr must be > 0, got %r" % cfg.update_lr)
    if cfg.datasource == "polynomial":
        require(0 <= cfg.poly_order <= 10, "poly_order must be in 0..10, got %r" % cfg.poly_order)
    if cfg.datasource in T.CLASSIFICATION:
        require(cfg.num_classes >= 2, "num_classes must be >= 2 for classification, got %r" % cfg.num_classes)
    require(cfg.test_iter == -1 or cfg.test_iter >= 0, "test_iter must be -1 (latest) or an iteration")
    require(cfg.test_iter == -1 or not cfg.train, "test_iter applies to test mode (--train=False) only")
    require(cfg.num_test_tasks == -1 or cfg.num_test_tasks >= 1, "num_test_tasks must be -1 or >= 1")
    require(cfg.test_num_updates >= 1, "test_num_updates must be >= 1, got %r" % cfg.test_num_updates)
    require(cfg.num_threads >= 0, "num_threads must be >= 0 (0: automatic)")
    require(cfg.print_interval >= 0, "print_interval must be >= 0 (0: upstream's)")
    require(baseline(cfg) in (None, "oracle"), "unknown baseline %r: choose oracle or None" % cfg.baseline)
    require(baseline(cfg) != "oracle" or cfg.datasource == "sinusoid",
            "baseline=oracle feeds the sinusoid's amplitude and phase as inputs: it needs datasource=sinusoid")
    require(cfg.num_train_classes == -1 or cfg.num_train_classes >= 1, "num_train_classes must be -1 (all) or >= 1")
    if cfg.datasource in T.CLASSIFICATION and cfg.num_train_classes != -1:
        require(cfg.num_train_classes >= cfg.num_classes, "num_train_classes=%d is fewer than num_classes=%d: a task "
                "needs num_classes training classes" % (cfg.num_train_classes, cfg.num_classes))


def baseline(cfg):
    """'oracle' or None ('None' and '' on the command line mean no baseline)."""
    return None if cfg.baseline in (None, "", "None") else cfg.baseline


def pretrain_until(cfg):
    """Iterations [0, pretrain_until) train the pre-update loss (upstream's pretrain_op), the rest meta-train.

    With baseline=oracle every iteration is pretraining, as upstream moves metatrain_iterations there.
    """
    total = cfg.pretrain_iterations + cfg.metatrain_iterations
    return total if baseline(cfg) == "oracle" else cfg.pretrain_iterations


def exp_string(cfg):
    """The experiment directory name, as upstream builds it (training-time update_batch_size/update_lr)."""
    ubs = cfg.update_batch_size if cfg.train_update_batch_size == -1 else cfg.train_update_batch_size
    lr = cfg.update_lr if cfg.train_update_lr == -1 else cfg.train_update_lr
    name = "cls_%d.mbs_%d.ubs_%d.numstep%d.updatelr%s.temp%s" % (
        cfg.num_classes, cfg.meta_batch_size, ubs, cfg.num_updates, float(lr), float(cfg.temp))
    if cfg.use_M:
        name += ("MTnet" if cfg.use_T else "Mnet") + ("" if cfg.share_M else "_noshare")
    else:
        name += "Tnet" if cfg.use_T else "MAML"
    if cfg.datasource == "polynomial":
        name += "ord%d" % cfg.poly_order
    freq = T.parse_freq_range(getattr(cfg, "sine_freq", "0.8,1.2"))
    if cfg.datasource == "sinusoid" and freq != T.SINE_FREQ:
        name += "freq%s-%s" % freq            # other tasks than upstream's: a checkpoint folder of their own
    if cfg.num_train_classes != -1:
        name += "ntc%d" % cfg.num_train_classes
    if cfg.num_filters != 64:
        name += "hidden%d" % cfg.num_filters
    if cfg.max_pool:
        name += "maxpool"
    if cfg.stop_grad:
        name += "stopgrad"
    if baseline(cfg):
        name += baseline(cfg)
    return name + {"batch_norm": "batchnorm", "layer_norm": "layernorm", "None": "nonorm"}[cfg.norm]


def model_spec(cfg, dim_input, dim_output):
    if cfg.datasource in T.REGRESSION:
        dim_input = 3 if baseline(cfg) == "oracle" else dim_input      # x, amplitude, phase
        return ModelSpec("fc", dim_input, dim_output, dim_hidden=[cfg.dim_hidden] * 2, norm=cfg.norm,
                         use_T=cfg.use_T, use_M=cfg.use_M, share_M=cfg.share_M, temp=cfg.temp,
                         logit_init=cfg.logit_init, update_lr=cfg.update_lr, stop_grad=cfg.stop_grad, loss="mse",
                         update_batch_size=cfg.update_batch_size)
    height, _, channels = T.IMAGE_SHAPES[cfg.datasource]
    return ModelSpec("conv" if cfg.conv else "fc", dim_input, dim_output, dim_hidden=[256, 128, 64, 64],
                     num_filters=cfg.num_filters, channels=channels, img_size=height, max_pool=cfg.max_pool,
                     flatten=cfg.datasource == "miniimagenet", norm=cfg.norm, use_T=cfg.use_T, use_M=cfg.use_M,
                     share_M=cfg.share_M, temp=cfg.temp, logit_init=cfg.logit_init, update_lr=cfg.update_lr,
                     stop_grad=cfg.stop_grad, loss="xent", update_batch_size=cfg.update_batch_size)


def checkpoint_iteration(path):
    match = re.search(r"model(\d+)$", path or "")
    return int(match.group(1)) if match else None


def find_checkpoint(cfg, exp_dir):
    """The checkpoint to restore (or None): test_iter's, else the newest in exp_dir."""
    if cfg.test_iter >= 0:
        path = os.path.join(exp_dir, "model%d" % cfg.test_iter)
        require(path in checkpoints.checkpoint_paths(exp_dir), "no checkpoint model%d in %s"
                % (cfg.test_iter, exp_dir))
        return path
    return checkpoints.latest_checkpoint(exp_dir)


# ---- graph ------------------------------------------------------------------------------------------------------
class Graph(object):
    """The tensors a loop needs: losses, optimizer op, summaries, inputs (for feeding plots)."""
    iterator_inits = ()    # image tasks: their iterators' initializers, run once after the variables
    pretrain_fetches = None


def _reduce(out, classification):
    g = Graph()
    g.preloss = tf.reduce_mean(out["lossa"])
    g.postlosses = [tf.reduce_mean(loss) for loss in out["lossesb"]]
    g.per_task = [out["lossa"]] + out["lossesb"]
    if classification:
        g.preacc = tf.reduce_mean(out["accuracya"])
        g.postaccs = [tf.reduce_mean(a) for a in out["accuraciesb"]]
        g.per_task_acc = [out["accuracya"]] + out["accuraciesb"]
    g.out = out
    return g


def build_regression(cfg, learner, batch, num_points, num_steps, task_source=None):
    """Regression tasks drawn in the graph (or by task_source(batch, num_points), e.g. fixed tasks in tests)."""
    sampled = (task_source or _sample_tasks(cfg))(batch, num_points)
    x = tf1.placeholder_with_default(sampled.x, [batch, None, 1], name="x")
    y = tf1.placeholder_with_default(sampled.y, [batch, None, 1], name="y")
    features, params = x, sampled.params
    if baseline(cfg) == "oracle":
        # upstream's oracle: the task's amplitude and phase join x as inputs (not its frequency, as upstream)
        params = {k: tf1.placeholder_with_default(v, [batch, 1, 1], name="oracle_" + k) for k, v in params.items()}
        ones = tf.ones_like(x)
        features = tf.concat([x, params["amp"] * ones, params["phase"] * ones], axis=-1)
    inputa, labela, inputb, labelb = T.split_support_query(features, y, cfg.update_batch_size)
    g = _reduce(learner.build(inputa, labela, inputb, labelb, num_steps), classification=False)
    g.x, g.y, g.params = x, y, params
    g.inputa, g.inputb = inputa, inputb
    return g


def _sample_tasks(cfg):
    freq = T.parse_freq_range(getattr(cfg, "sine_freq", "0.8,1.2"))
    return lambda batch, num_points: T.regression_tasks(cfg.datasource, batch, num_points, cfg.poly_order, freq)


def build_images(cfg, learner, dataset, num_steps, seed_compat=True):
    """Image tasks from `dataset`, read by a GetNext of its own initializable iterator: the Ascend adapter sinks
    only a GetNext reading its iterator directly (one behind a tf.cond stays on the host and finds no data)."""
    if seed_compat:
        # Not fed any more; built first as before so that a seed gives the op-level seeds (numbered by the ops
        # built before them), hence the masks and the test numbers, of earlier versions.
        tf1.placeholder_with_default(False, [], name="use_val")
    # Initializable iterators (run g.iterator_inits once): the Ascend adapter aborts with one-shot iterators
    # when iterations_per_loop > 1. An in-graph training loop passes its iterator, made outside the loop.
    made = not hasattr(dataset, "get_next")
    iterator = tf1.data.make_initializable_iterator(dataset) if made else dataset
    images, labels = iterator.get_next()
    support = cfg.num_classes * cfg.update_batch_size
    g = _reduce(learner.build(images[:, :support], labels[:, :support], images[:, support:], labels[:, support:],
                              num_steps), classification=True)
    g.iterator_inits = [iterator.initializer] if made else []
    return g


def histogram_value(tag, values, bins=30):
    """A TensorBoard histogram of a numpy array, built on the host."""
    values = np.asarray(values, np.float64).ravel()
    if values.min() < values.max():
        counts, edges = np.histogram(values, bins=bins)
    else:   # one value: numpy widens it by +-0.5, lost at large magnitudes (saturated weights), then fails
        counts, edges = np.array([values.size]), np.array([values.min(), values.max()])
    histo = tf1.HistogramProto(min=float(values.min()), max=float(values.max()), num=float(values.size),
                               sum=float(values.sum()), sum_squares=float(np.square(values).sum()),
                               bucket_limit=[float(e) for e in edges[1:]], bucket=[float(c) for c in counts])
    return tf1.Summary.Value(tag=tag, histo=histo)


def write_summaries(writer, step, learner, g, probs, weights, prefix, num_steps):
    """Upstream's training summaries from fetched values (g: view() of the metrics as numbers): on Ascend a
    fetched summary op returns nothing in sess.run mode."""
    scalars = {prefix + "pre_update_loss": g.preloss}
    for j in range(num_steps):
        scalars[prefix + "post_update_loss_step%d" % (j + 1)] = g.postlosses[j]
    if learner.classification:
        scalars[prefix + "pre_update_accuracy"] = g.preacc
        for j in range(num_steps):
            scalars[prefix + "post_update_accuracy_step%d" % (j + 1)] = g.postaccs[j]
    for key, prob in probs.items():
        scalars[prefix + "mask_keep_prob_" + key] = prob
    values = [tf1.Summary.Value(tag=tag, simple_value=float(v)) for tag, v in scalars.items()]
    values += [histogram_value(key, var) for key, var in sorted(weights.items())]
    writer.add_summary(tf1.Summary(value=values), step)


# ---- entry ------------------------------------------------------------------------------------------------------
def run(cfg, cluster=None, task_source=None):
    """Train (cfg.train) or test one configuration; returns a dict of results for callers and tests.

    cfg.npu: the Ascend options (common.npu_session.NpuOptions). cluster (common.distributed.Cluster, default
    single process): data-parallel meta-training, meta_batch_size tasks per rank. task_source(batch, num_points)
    -> tasks.RegressionTasks replaces the in-graph sampler (tests use it to train on fixed tasks).
    """
    cluster = cluster or distributed.Cluster()
    validate(cfg)
    require(cfg.train or not cluster.distributed, "test mode runs in one process, but the environment describes "
                                                  "rank %d of %d workers: run --train=False without the launcher"
            % (cluster.rank, cluster.size))
    if cfg.datasource in T.CLASSIFICATION and not cfg.data_path:
        cfg = cfg.replace(data_path="./data/omniglot_resized" if cfg.datasource == "omniglot"
                          else "./data/miniImagenet")
    exp = exp_string(cfg)
    exp_dir = os.path.join(cfg.logdir, exp)
    checkpoint = find_checkpoint(cfg, exp_dir) if (cfg.resume or not cfg.train) else None
    if not cfg.train:
        require(checkpoint is not None, "nothing to test: no checkpoint in %s (train first, or check the flags "
                                        "that name the experiment directory)" % exp_dir)
    print(exp, flush=True)
    if cluster.distributed:
        print(cluster.describe(), flush=True)
    if cfg.train and not cfg.resume and checkpoints.checkpoint_paths(exp_dir) \
            and cluster.is_chief:
        print("warning: --resume=False: training from scratch; the checkpoints in %s will be replaced as this run "
              "saves its own" % exp_dir, flush=True)
    graph = tf.Graph()
    with graph.as_default():
        # Each rank draws its own tasks and masks: graph seed + RANK_SEED_STRIDE * rank (rank 0 = the 1p run's).
        # The initial weights still agree: MultiWorkerMirroredStrategy starts every replica from rank 0's
        # values, and on Ascend they are broadcast from rank 0.
        tf1.set_random_seed(cfg.seed + RANK_SEED_STRIDE * cluster.rank)
        if cfg.train:
            return _train(cfg, cfg.npu, exp_dir, checkpoint, cluster, task_source)
        return _test(cfg, cfg.npu, exp_dir, checkpoint)


def _image_tasks(cfg, which, samples_per_class):
    folders = T.image_class_folders(cfg.datasource, cfg.data_path, cfg.test_set, cfg.omniglot_train_chars,
                                    cfg.omniglot_test_chars)
    name = "train" if which == "train" else folders["eval_name"]
    chosen = folders[which]
    if which == "train" and cfg.num_train_classes != -1:
        # the first num_train_classes training classes (upstream: -1 slices off the last class; here -1 is all)
        require(cfg.num_train_classes <= len(chosen), "num_train_classes=%d but the %s training split has %d "
                "classes" % (cfg.num_train_classes, cfg.datasource, len(chosen)))
        chosen = chosen[:cfg.num_train_classes]
    return T.ImageTasks(cfg.datasource, chosen, cfg.num_classes, samples_per_class, name)


def _session_config(cfg, options, distributed=False):
    config = npu_session.session_config(options, distributed)
    threads = cfg.num_threads if cfg.num_threads > 0 else (1 if cfg.datasource in T.REGRESSION else 0)
    if threads and not npu_session.on_npu():
        # The regression net's ops are tiny: one thread avoids the pool's hand-offs, which cost most when other
        # processes keep the cores busy (then several times slower per step than one thread).
        config.intra_op_parallelism_threads = threads
    return config


def _init_session(sess, saver, checkpoint, fall_back=True):
    sess.run(tf1.global_variables_initializer())
    start = 0
    if checkpoint is not None:
        print("Restoring model weights from " + checkpoint, flush=True)
        checkpoint = checkpoints.restore(saver, sess, checkpoint, fall_back)
        done = checkpoint_iteration(checkpoint)     # model0 holds iteration 0: resume at 1
        start = 0 if done is None else done + 1
    return start


def _open_session(cfg, options, saver, checkpoint):
    sess = tf1.Session(config=_session_config(cfg, options))
    return sess, _init_session(sess, saver, checkpoint, fall_back=cfg.test_iter < 0)   # test_iter: that one


def _train(cfg, options, exp_dir, checkpoint, cluster, task_source=None):
    options.in_graph_loop = _in_graph_loop(cfg, cluster)    # said on the device line
    options.xla_whole_loop = options.in_graph_loop and getattr(options, "xla", False) \
        and cfg.datasource in T.REGRESSION
    dp = distributed.DataParallel(cluster, _session_config(cfg, options, cluster.distributed))
    built = _build_training(cfg, options, cluster, dp, task_source)
    saver = tf1.train.Saver(tf1.global_variables(), max_to_keep=3, save_relative_paths=True)
    # Ascend ranks start from rank 0's weights; MultiWorkerMirroredStrategy does this by itself.
    broadcast = npu_session.broadcast_variables_op(tf1.global_variables("model")) \
        if cluster.route == "npu" else None
    sess = dp.session(tf1.get_default_graph())
    start = _init_session(sess, saver, checkpoint)
    sess.run(built.iterator_inits)
    if broadcast is not None:
        sess.run(broadcast)
    built.train_op = npu_session.set_iterations_per_loop(sess, built.train_op, options)
    built.fetches[0] = built.train_op      # on Ascend the looped op the adapter returns
    # Rank 0 keeps checkpoints and summaries. On the multi-worker route every rank must run each save (see
    # distributed.save_dir), the others into scratch directories; on Ascend the other ranks do not save.
    saves = cluster.is_chief or cluster.route == "collective"
    save = Checkpoint(saver, sess, distributed.save_dir(cluster, exp_dir), name="model%d", every=cfg.save_interval,
                      enabled=saves)
    writer = tf1.summary.FileWriter(exp_dir, sess.graph) if cfg.log and cluster.is_chief and start < built.total \
        else None
    print_interval = cfg.print_interval or (1000 if built.regression else 100)
    timer = StepTimer(cfg.meta_batch_size, warmup_steps=min(50, max(1, built.total // 10)),
                      unit="tasks", log_every=print_interval * 5)
    log = _LossLines(cfg, built, print_interval)
    loop = TrainLoop(_runner(cfg, options, sess, built, writer, cluster.is_chief), start, built.total,
                     per_run=built.per_run, unit="iteration", checkpoint=save, timer=timer,
                     hooks=[log, _Validation(sess, built.val, cfg.num_updates, print_interval)],
                     stop_enabled=not cluster.distributed, nothing_to_train=_nothing_to_train(built, start))
    if start < built.total:
        print("Done initializing, starting training.", flush=True)
    loop.train()
    if writer is not None:
        writer.close()
    results = dict(log.final, exp_dir=exp_dir, start=start, end=loop.step, weights=sess.run(built.learner.weights))
    sess.close()
    return results


def _nothing_to_train(built, start):
    what = "metatrain_iterations" if not built.pretrain_end else "pretrain_iterations + metatrain_iterations"
    reached = "checkpoint model%d already reached" % (start - 1) if start else "no iterations:"
    return "%s %s=%d (raise it to train on)" % (reached, what, built.total)


def _build_training(cfg, options, cluster, dp, task_source):
    """The meta-training graph: `per_run` meta-updates per session call (in-graph loop off Ascend)."""
    b = Graph()
    b.regression = cfg.datasource in T.REGRESSION
    # upstream also builds (for its summaries) post-update losses up to 5 steps; without summaries skip them
    b.eval_steps = max(5 if b.regression and cfg.log else 1, cfg.num_updates)
    b.pretrain_end = pretrain_until(cfg)
    b.total = cfg.pretrain_iterations + cfg.metatrain_iterations
    # Off Ascend the step always runs inside an in-graph loop (N=1 too: one graph, the same seeded draws at
    # every step for every N); on Ascend the adapter loops the plain step on the device.
    in_graph = _in_graph_loop(cfg, cluster)
    b.per_run = options.iterations_per_loop if in_graph else npu_session.steps_per_run(options)
    # --xla: regression tasks are drawn in the graph, so the whole loop compiles as one XLA computation; image
    # tasks come from a GetNext, which XLA cannot hold: they get XLA's auto-clustering (session config) only
    b.compiled = options.xla_whole_loop
    require(not b.pretrain_end or options.iterations_per_loop == 1,
            "pretraining (pretrain_iterations, baseline=oracle) switches ops between iterations: use "
            "iterations_per_loop=1")
    require(options.iterations_per_loop == 1 or not cluster.distributed or cluster.route == "npu",
            "iterations_per_loop > 1 runs one process's in-graph loop: the multi-worker CPU/GPU route takes 1")
    with dp.scope():
        with resource_variables() if b.compiled else contextlib.suppress():
            b.learner, train_data, val_data = _learner_and_data(cfg, cluster)
        graphs = []
        if in_graph and train_data is not None:   # made outside the loop whose every iteration reads it
            train_data = tf1.data.make_initializable_iterator(train_data)
            graphs.append(Graph())
            graphs[-1].iterator_inits = [train_data.initializer]
        step = _step_builder(cfg, options, cluster, dp, b, graphs, train_data, task_source)
        if in_graph:
            n_metrics = 1 + b.eval_steps + ((1 + b.eval_steps) if b.learner.classification else 0)

            def loop():
                return repeat(b.per_run, lambda: [dp.run_step(step)[0]], [tf.zeros([n_metrics])])
            if b.compiled:
                with resource_variables():
                    trained, = xla_compiled(loop)
            else:
                trained, = loop()
            outputs = (trained, trained)
        else:
            outputs = dp.run_step(step)
        if not b.regression:   # validation tasks: a graph and GetNext of their own, outside the loop
            v = build_images(cfg, b.learner, val_data, b.eval_steps, seed_compat=False)
            graphs.append(v)
            validated = tf.stack([v.preloss] + v.postlosses + [v.preacc] + v.postaccs)
    b.iterator_inits = [init for built in graphs for init in built.iterator_inits]
    b.train_op = outputs[0].op
    b.view = _viewer(b.learner.classification, 1 + b.eval_steps)
    b.g = b.view(tf.unstack(outputs[0]))              # fetching these trains
    b.val = b.view(tf.unstack(validated)) if not b.regression else None     # these do not train
    # untied values: fetched beside either update (meta-training or pretraining), they add no training step
    b.summary_fetches = [outputs[1], b.learner.mask_keep_probability(), b.learner.weights] if cfg.log else None
    b.fetches = [b.train_op, b.g.preloss, b.g.postlosses[cfg.num_updates - 1]] + _accuracies(cfg, b.g)
    if b.pretrain_end:   # the same quantities, tied to the pretraining update instead
        pretrained = b.view(tf.unstack(outputs[2]))
        b.pretrain_fetches = [outputs[2].op, pretrained.preloss, pretrained.postlosses[cfg.num_updates - 1]] \
            + _accuracies(cfg, pretrained)
    return b


def _in_graph_loop(cfg, cluster):
    return not npu_session.on_npu() and not pretrain_until(cfg) and not cluster.distributed


def _accuracies(cfg, g):
    return [g.preacc, g.postaccs[cfg.num_updates - 1]] if hasattr(g, "preacc") else []


def _viewer(classification, n_loss):
    def view(values):
        """preloss, postlosses (and accuracies) from one metrics vector."""
        out = Graph()
        out.preloss, out.postlosses = values[0], list(values[1:n_loss])
        if classification:
            out.preacc, out.postaccs = values[n_loss], list(values[n_loss + 1:])
        return out
    return view


def _learner_and_data(cfg, cluster):
    if cfg.datasource in T.REGRESSION:
        return MetaLearner(model_spec(cfg, 1, 1)), None, None
    query = 15 if cfg.datasource == "miniimagenet" else cfg.update_batch_size   # per class, as upstream
    train_tasks = _image_tasks(cfg, "train", cfg.update_batch_size + query)
    val_tasks = _image_tasks(cfg, "eval", 2 * cfg.update_batch_size)
    learner = MetaLearner(model_spec(cfg, train_tasks.dim_input, cfg.num_classes))
    train_data = train_tasks.dataset(cfg.meta_batch_size, cfg.seed + RANK_SEED_STRIDE * cluster.rank)
    return learner, train_data, val_tasks.dataset(cfg.meta_batch_size, 6)


def _step_builder(cfg, options, cluster, dp, b, graphs, train_data, task_source):
    def step():
        """One meta-update on this rank's tasks; returns its metrics, each tied to the update and not."""
        if b.regression:
            g = build_regression(cfg, b.learner, cfg.meta_batch_size, cfg.update_batch_size + QUERY_POINTS,
                                 b.eval_steps, task_source)
        else:
            g = build_images(cfg, b.learner, train_data, b.eval_steps)
        graphs.append(g)
        global_step = tf1.train.get_or_create_global_step()
        train_op = _minimize(cfg, options, cluster, dp, g.postlosses[cfg.num_updates - 1], global_step,
                             clip=cfg.datasource == "miniimagenet")
        metrics = [g.preloss] + g.postlosses
        if b.learner.classification:
            metrics += [g.preacc] + g.postaccs
        metrics = tf.stack(metrics)     # one vector: one all-reduce for all of them
        with tf.control_dependencies([train_op]):
            trained = tf.identity(metrics)
        if not b.pretrain_end:
            return trained, metrics
        # upstream's pretrain_op: its own Adam on the pre-update loss (no inner step in the gradient)
        pretrain_op = _minimize(cfg, options, cluster, dp, g.preloss, global_step, name="PretrainAdam")
        with tf.control_dependencies([pretrain_op]):
            pretrained = tf.identity(metrics)
        return trained, metrics, pretrained
    return step


def _minimize(cfg, options, cluster, dp, loss, global_step, name="Adam", clip=False):
    optimizer = npu_session.wrap_optimizer(tf1.train.AdamOptimizer(cfg.meta_lr, name=name), options,
                                           distributed=cluster.distributed)
    scaled = loss * dp.gradient_scale if dp.gradient_scale != 1.0 else loss
    grads_and_vars = optimizer.compute_gradients(scaled)
    if clip:
        grads_and_vars = [(tf.clip_by_value(gr, -10, 10), v) for gr, v in grads_and_vars if gr is not None]
    return optimizer.apply_gradients(grads_and_vars, global_step=global_step)


def _runner(cfg, options, sess, b, writer, chief):
    """run(itr): the session call starting at iteration itr; summaries ride along at their interval."""
    dump = precision.StepDump.from_options(options, chief)   # --reference_dump: one step's op outputs
    # Off Ascend the plain calls go through callables made once: Session.run parses its fetch list in Python on
    # every call, a quarter of a regression step (on Ascend every call goes through the adapter's session run).
    made = {} if npu_session.on_npu() else {id(f): sess.make_callable(f) for f in (b.fetches, b.pretrain_fetches)
                                            if f is not None}

    def run(itr):
        step_fetches = b.pretrain_fetches if itr < b.pretrain_end else b.fetches
        # every rank fetches the summaries (their rank means are all-reduces); rank 0 alone writes them
        want_summary = b.summary_fetches is not None and crosses(itr, b.per_run, SUMMARY_INTERVAL, count_zero=True)
        if not want_summary and id(step_fetches) in made and not dump.due(itr, b.per_run):
            result = made[id(step_fetches)]()
        else:
            result = dump.run(sess, step_fetches + ([b.summary_fetches] if want_summary else []), itr,
                              loss=step_fetches[2], per_run=b.per_run)
        npu_session.check_loss(result[2], itr + b.per_run - 1, "postloss")
        if want_summary and writer is not None:
            values, probs, weights = result[-1]
            write_summaries(writer, itr + b.per_run - 1, b.learner, b.view(values), probs, weights, "metatrain_",
                            b.eval_steps)
        return result[1:len(step_fetches)]
    return run


class _LossLines(Hook):
    """Upstream's 'Iteration N: preloss, postloss' lines (means since the last line) and the final window."""

    def __init__(self, cfg, built, print_interval):
        self.cfg, self.built, self.print_interval = cfg, built, print_interval
        self.pre, self.post, self.accs, self.window_pre, self.window_post = [], [], [], [], []

    def after_run(self, loop):
        values = loop.values
        self.pre.append(values[0])
        self.post.append(values[1])
        if len(values) > 2:
            self.accs.append(values[2:4])
        itr, last = loop.step - loop.per_run, loop.last
        if crosses(itr, loop.per_run, self.print_interval) or last == loop.total - 1:
            # upstream numbers meta-training iterations alone
            kind, number = ((log_lines.PRETRAIN_LOSS, last) if last < self.built.pretrain_end else
                            (log_lines.LOSS, last - self.cfg.pretrain_iterations))
            print(kind.format(iteration=number, preloss=np.mean(self.pre), postloss=np.mean(self.post),
                              accuracies=np.mean(self.accs, 0) if self.accs else None), flush=True)
            self._flush()

    def _flush(self):
        self.window_pre.extend(self.pre)
        self.window_post.extend(self.post)
        self.pre, self.post, self.accs = [], [], []

    def after_train(self, loop):
        """The 'final:' line, before the step-time summary: mean of the last FINAL_WINDOW iterations' losses."""
        self._flush()
        self.final = {}
        if self.window_post:
            tail = max(1, FINAL_WINDOW // loop.per_run)
            self.final = {"preloss": float(np.mean(self.window_pre[-tail:])),
                          "postloss": float(np.mean(self.window_post[-tail:]))}
            print("final: preloss %.6f postloss %.6f (mean of the last %s)"
                  % (self.final["preloss"], self.final["postloss"], _counted(min(tail, len(self.window_post)),
                                                                             loop.per_run)), flush=True)


def _counted(calls, per_run):
    if per_run == 1:
        return "%d iterations" % calls
    return "%d session calls' losses, each that of the last of its %d iterations" % (calls, per_run)


class _Validation(Hook):
    """Image tasks: 'Validation results: pre, post' every 5 * print_interval iterations."""

    def __init__(self, sess, val, num_updates, print_interval):
        self.sess, self.val, self.num_updates, self.every = sess, val, num_updates, 5 * print_interval

    def after_run(self, loop):
        if self.val is not None and crosses(loop.step - loop.per_run, loop.per_run, self.every):
            vals = self.sess.run([self.val.preacc, self.val.postaccs[self.num_updates - 1]])
            print("Validation results: %s, %s" % tuple(vals), flush=True)


def _test(cfg, options, exp_dir, checkpoint):
    regression = cfg.datasource in T.REGRESSION
    num_steps = cfg.test_num_updates     # upstream: 10
    if regression:
        default_tasks = 20 if cfg.datasource == "polynomial" else 600
        num_tasks = cfg.num_test_tasks if cfg.num_test_tasks > 0 else default_tasks
        chunk = min(num_tasks, 100)
        query = 4000 - cfg.update_batch_size if cfg.datasource == "polynomial" else QUERY_POINTS
        learner = MetaLearner(model_spec(cfg, 1, 1))
        g = build_regression(cfg, learner, chunk, cfg.update_batch_size + query, num_steps)
        runs = -(-num_tasks // chunk)
    else:
        num_tasks = cfg.num_test_tasks if cfg.num_test_tasks > 0 else 600
        tasks = _image_tasks(cfg, "eval", 2 * cfg.update_batch_size)
        learner = MetaLearner(model_spec(cfg, tasks.dim_input, cfg.num_classes))
        g = build_images(cfg, learner, tasks.dataset(1, cfg.seed + 5, num_tasks), num_steps)
        runs = num_tasks
    saver = tf1.train.Saver(tf1.global_variables(), max_to_keep=3, save_relative_paths=True)
    sess, _ = _open_session(cfg, options, saver, checkpoint)
    sess.run(list(g.iterator_inits))
    fetch = g.per_task_acc if learner.classification else g.per_task
    rows = []
    plot_batch = None
    progress = Progress("test", num_tasks, "tasks")     # image tasks run one per call: minutes on a CPU
    for r in range(runs):
        values = sess.run(fetch + ([g.x, g.y, g.params] if regression and r == 0 else []))
        if regression and r == 0:
            plot_batch = values[len(fetch):]
        rows.append(np.stack([np.reshape(v, [-1]) for v in values[:len(fetch)]], axis=1))
        progress.update(min(num_tasks, sum(len(row) for row in rows)))
    results = np.concatenate(rows, 0)[:num_tasks]
    means, stds, ci95 = task_statistics(results)
    print("Mean validation accuracy/loss, stddev, and confidence intervals")
    print((means, stds, ci95))
    for j in range(len(means)):
        print(log_lines.TEST.format(update=j, mean=means[j], std=stds[j], ci95=ci95[j]))
    if regression:
        report_diverged(results)
    name = "test_ubs%d_stepsize%s_testiter%d" % (cfg.update_batch_size, cfg.update_lr, cfg.test_iter)
    base = os.path.join(exp_dir, name)
    with open(base + ".pkl", "wb") as f:
        pickle.dump({"mses": results}, f)
    with open(base + ".csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["update%d" % i for i in range(len(means))])
        writer.writerow(means)
        writer.writerow(stds)
        writer.writerow(ci95)
    print("wrote %s.csv and .pkl" % base, flush=True)
    plots = []
    if regression:
        plots = _plot_tasks(cfg, sess, g, plot_batch, exp_dir, num_steps)
    sess.close()
    return {"results": results, "means": means, "stds": stds, "ci95": ci95, "csv": base + ".csv",
            "pkl": base + ".pkl", "plots": plots}


def task_statistics(results):
    """Mean, std and 95% confidence interval over the tasks (rows), as upstream's test mode computes them."""
    means, stds = results.mean(0), results.std(0)
    return means, stds, 1.96 * stds / np.sqrt(len(results))


def diverged_tasks(losses):
    """Tasks whose inner loop blew up: last-step loss not finite or above 10x the loss before adaptation.

    Ten inner steps of the training step size extrapolate past the one step the model was trained for, and for
    a rare task/mask draw the loss grows without bound; one such task turns the mean into inf or nonsense.
    """
    last, before = losses[:, -1], losses[:, 0]
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(last) | (last > 10.0 * before)


def report_diverged(losses):
    """Say which tasks diverged and the statistics over the others (the csv keeps upstream's plain means)."""
    bad = diverged_tasks(losses)
    if not bad.any():
        return
    last = losses.shape[1] - 1
    which = ", ".join(str(i) for i in np.flatnonzero(bad)[:10]) + (", ..." if bad.sum() > 10 else "")
    head = ("warning: %d of %d test tasks diverged in the inner loop (loss after %d steps not finite or above 10x "
            "the loss before adaptation): task %s" % (bad.sum(), len(losses), last, which))
    if bad.all():
        print(head, flush=True)
        return
    means, _, ci95 = task_statistics(losses[~bad])
    print("%s; over the other %d tasks update%d: mean %.6f ci95 %.6f"
          % (head, (~bad).sum(), last, means[last], ci95[last]), flush=True)


def _plot_tasks(cfg, sess, g, batch, exp_dir, num_steps):
    """Support points, truth, predictions before adaptation and after 1 and num_steps inner steps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x, y, params = batch
    lo, hi = T.regression_x_range(cfg.datasource)
    grid = np.linspace(lo, hi, 200, dtype=np.float32)
    k = cfg.update_batch_size
    xs = np.concatenate([x[:, :k], np.tile(grid[None, :, None], [x.shape[0], 1, 1])], 1)
    ys = np.concatenate([y[:, :k], np.zeros([x.shape[0], len(grid), 1], np.float32)], 1)
    feed = {g.x: xs, g.y: ys}
    if baseline(cfg) == "oracle":
        feed.update({g.params[k]: params[k] for k in g.params})
    pre, post1, post_n = sess.run([g.out["outputb_pre"], g.out["outputbs"][0], g.out["outputbs"][num_steps - 1]],
                                  feed)
    paths = []
    for t in range(min(NUM_PLOTS, x.shape[0])):
        fig, ax = plt.subplots(figsize=(8, 5))
        ax.plot(grid, T.regression_truth(cfg.datasource, params, t, grid), "r-", label="truth")
        ax.plot(x[t, :k, 0], y[t, :k, 0], "ro", label="support (K=%d)" % k)
        ax.plot(grid, pre[t, :, 0], color="#bfbfbf", label="before adaptation")
        ax.plot(grid, post1[t, :, 0], color="#666666", label="after 1 step")
        ax.plot(grid, post_n[t, :, 0], color="#000000", label="after %d steps" % num_steps)
        ax.set_xlim([lo, hi])
        title = "sinusoid" if cfg.datasource == "sinusoid" else "polynomial order %d" % cfg.poly_order
        ax.set_title("%s, test task %d" % (title, t))
        ax.legend(loc="upper right", fontsize="small")
        path = os.path.join(exp_dir, "test_task%d.png" % t)
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
