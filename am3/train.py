"""Training, validation and test loops for the AM3 family (ProtoNets++, TADAM, AM3-ProtoNets++, AM3-TADAM).

run(cfg) dispatches on cfg.mode. Layout of cfg.log_dir: train/ (checkpoints model.ckpt-N and training
summaries), eval/ (validation summaries), params.json (the flags of the last training run, a record only),
test_results.json (test mode).
"""
import contextlib
import json
import math
import os
import re
import time

import numpy as np

from am3 import log_lines, model as M
from am3.options import config_record, model_options_mismatch
from common import checkpoints, npu_session, precision
from common.errors import UserError, require
from common.progress import Progress
from common.step_timer import StepTimer
from common.stop import StopRequest
from common.tf_compat import plain_fn, tf
from common.train_loop import Checkpoint, Hook, TrainLoop, crosses, ordered_updates, repeat
from datasets import fewshot_data as fsd

v1 = tf.compat.v1
EVAL_SPLITS = ("target_tst", "target_val", "sources")


class Splits(object):
    """Loads each data split once, on first use."""

    def __init__(self, cfg):
        self.dir = fsd.resolve_data_dir(cfg.data_dir)
        self.with_embeddings = M.uses_word_embeddings(cfg.model)
        self._cache = {}

    def __getitem__(self, split):
        tag = fsd.split_tag(split)
        if tag not in self._cache:
            self._cache[tag] = fsd.load_split(self.dir, split, with_embeddings=self.with_embeddings)
        return self._cache[tag]


def _require_same_image_size(train_data, data):
    if data.images.shape[1:] != train_data.images.shape[1:]:
        raise UserError("%s holds %dx%d images but the training split %s holds %dx%d: build all splits with the "
                        "same --image_size" % (data.name, data.images.shape[1], data.images.shape[2],
                                               train_data.name, train_data.images.shape[1],
                                               train_data.images.shape[2]))


def _seed(cfg, offset):
    return None if cfg.seed is None else cfg.seed + offset


def _augment(images):
    """Upstream's augmentation in the graph: random horizontal flip, zero-pad by 1/8 and random crop back."""
    shape = tf.shape(images)
    flat = tf.reshape(images, tf.concat([[-1], shape[-3:]], axis=0))
    size = int(images.shape[-2])
    pad = int(0.125 * size)

    def one(image):
        image = tf.image.random_flip_left_right(image)
        image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        return tf.image.random_crop(image, [size, size, 3])

    return tf.reshape(tf.map_fn(one, flat), shape)


def _model_outputs(cfg, support, query, labels, classes, table, ways, shots, training, augment=False):
    support, query = tf.cast(support, tf.float32), tf.cast(query, tf.float32)
    if augment:
        support, query = _augment(support), _augment(query)
    embeddings = tf.gather(table, classes) if table is not None else None
    out = M.episode_logits(cfg.model, support, query, embeddings, ways, shots, training=training)
    logits = out["logits"]
    out["xent"] = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    correct = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels)
    out["accuracy"] = tf.reduce_mean(tf.cast(correct, tf.float32))
    out["lambda_mean"] = tf.reduce_mean(out["lambda"])
    return out


def _eval_sampler(cfg, splits, split, index):
    return fsd.EpisodeSampler(splits[split], cfg.num_classes_test, cfg.num_shots_test, cfg.eval_batch_size, tasks=1,
                              seed=_seed(cfg, 100 + index), what="evaluation on %s (--num_classes_test/"
                              "--num_shots_test/--eval_batch_size)" % split)


class EvalGraph(object):
    """The evaluation model (one task per episode, moving BN statistics) once per split, each fed by its own
    initializable iterator read directly by its GetNext: the Ascend adapter sinks only such a GetNext to the
    device; one reached through a string handle stays on the host and finds the dataset empty (OutOfRange).
    Class ids are offset into one table holding every split's embeddings."""

    def __init__(self, cfg, splits, names):
        datasets, tables, offset = {}, [], 0
        for i, split in enumerate(names):
            data = splits[split]
            sampler = _eval_sampler(cfg, splits, split, i)
            datasets[split] = fsd.episode_dataset(sampler).map(plain_fn(
                lambda s, q, lab, c, off=offset: (s, q, lab, c + off)))
            if data.embeddings is not None:
                tables.append(data.embeddings)
            offset += data.num_classes
        # Initializable, not one-shot: the Ascend adapter aborts a session holding a one-shot iterator when
        # iterations_per_loop > 1, and this graph shares the training session.
        self.iterators = {split: v1.data.make_initializable_iterator(ds) for split, ds in datasets.items()}
        self._started = set()
        table = None
        if M.uses_word_embeddings(cfg.model):
            table = tf.constant(np.concatenate(tables, axis=0), name="eval_word_embeddings")
        self._outputs = {}
        for split in names:
            support, query, labels, classes = self.iterators[split].get_next()
            self._outputs[split] = _model_outputs(cfg, support, query, labels, classes, table, cfg.num_classes_test,
                                                  cfg.num_shots_test, training=False)
        self.names = list(names)

    def outputs(self, sess, split):
        """The split's model outputs; its endless episode stream starts at its first use."""
        if split not in self._started:
            sess.run(self.iterators[split].initializer)
            self._started.add(split)
        return self._outputs[split]


class EpisodesStopped(Exception):
    """A stop request (common.stop) came during evaluation episodes: `done` of them ran."""

    def __init__(self, done):
        super(EpisodesStopped, self).__init__(done)
        self.done = done


def run_episodes(sess, graph, split, episodes, phase="validation", stop=None):
    """Accuracy per episode over `episodes` episodes -> (mean, 95% CI half-width, mean xent, mean lambda).
    A stop request (`stop`, a common.stop.StopRequest) ends it between two episodes: EpisodesStopped."""
    accs, xents, lams = [], [], []
    out = graph.outputs(sess, split)
    fetches = [out["accuracy"], out["xent"], out["lambda_mean"]]
    progress = Progress("%s on %s" % (phase, split), episodes, "episodes")   # ~5 s an episode on a CPU
    for done in range(1, episodes + 1):
        if stop is not None and stop.requested:
            raise EpisodesStopped(done - 1)
        acc, xent, lam = sess.run(fetches)
        accs.append(acc)
        xents.append(xent)
        lams.append(lam)
        progress.update(done)
    accs = np.asarray(accs, np.float64)
    ci95 = 1.96 * accs.std(ddof=1) / math.sqrt(len(accs)) if len(accs) > 1 else 0.0
    return float(accs.mean()), float(ci95), float(np.mean(xents)), float(np.mean(lams))


def _episodes(cfg, cases):
    return max(1, cases // cfg.eval_batch_size)


def evaluate_splits(sess, graph, cfg, step, writer=None, stop=None):
    """Validation as upstream: accuracy on test, val and train splits; prints the line the wrappers grep. A stop
    request ends it between two episodes (the three splits take ~13 min at the seed configuration on a CPU, past a
    scheduler's grace period): one line says so, nothing is reported, and None is returned."""
    results = {}
    for split in graph.names:
        episodes = _episodes(cfg, cfg.num_cases_val)
        try:
            acc, ci, xent, lam = run_episodes(sess, graph, split, episodes, stop=stop)
        except EpisodesStopped as cut:
            print("validation at step %d cut short by the stop request after %d of %d episodes on %s: not reported"
                  % (step, cut.done, episodes, split), flush=True)
            return None
        results.update({"accuracy_" + split: acc, "ci95_" + split: ci, "loss_" + split: xent,
                        "lambda_" + split: lam})
    print(log_lines.VALIDATION.format(step=step, accuracies=[(s, results["accuracy_" + s]) for s in graph.names]),
          flush=True)
    if writer is not None:
        summary = v1.Summary(value=[v1.Summary.Value(tag=k, simple_value=v) for k, v in sorted(results.items())])
        writer.add_summary(summary, step)
        writer.flush()
    return results


class AuxEval(object):
    """Held-out evaluation of the auxiliary all-classes task (as upstream's eval_pretrain): accuracy of the
    auxiliary classifier (moving BN statistics) on the images of the training split it never trains on, and on
    as many of the images it trains on, each capped at num_cases_val images."""

    def __init__(self, cfg, data, train_idx, held_idx):
        rng = np.random.RandomState(1)
        cap = cfg.num_cases_val
        self.sets = {"test": rng.permutation(held_idx)[:cap], "train": rng.permutation(train_idx)[:cap]}
        # one initializable iterator per set, read directly by its GetNext (sunk to the device on Ascend),
        # re-initialised per evaluation; fixed-size batches, the last one padded and masked
        self.iterators = {k: v1.data.make_initializable_iterator(fsd.sequential_dataset(data, idx,
                                                                                        cfg.eval_batch_size))
                          for k, idx in self.sets.items()}
        self.counts = {}
        for k in sorted(self.sets):
            images, labels, valid = self.iterators[k].get_next()
            logits = M.auxiliary_logits(cfg.model, tf.cast(images, tf.float32), cfg.num_classes_pretrain,
                                        training=False)
            hit = tf.logical_and(valid, tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels))
            self.counts[k] = [tf.reduce_sum(tf.cast(hit, tf.int32)), tf.reduce_sum(tf.cast(valid, tf.int32))]
        self.data_name = data.name

    def accuracy(self, sess, which):
        sess.run(self.iterators[which].initializer)
        correct = count = 0
        while True:
            try:
                c, n = sess.run(self.counts[which])
            except tf.errors.OutOfRangeError:
                break
            correct += int(c)
            count += int(n)
        return correct / float(max(count, 1))

    def evaluate(self, sess, step, writer=None):
        results = {"pretrain/accuracy_test": self.accuracy(sess, "test"),
                   "pretrain/accuracy_train": self.accuracy(sess, "train")}
        print("step %d, pretrain_accuracy_test: %.4f, pretrain_accuracy_train: %.4f (auxiliary task on %d held-out "
              "and %d training images of %s)" % (step, results["pretrain/accuracy_test"],
                                                 results["pretrain/accuracy_train"], len(self.sets["test"]),
                                                 len(self.sets["train"]), self.data_name), flush=True)
        if writer is not None:
            writer.add_summary(v1.Summary(value=[v1.Summary.Value(tag=k, simple_value=v)
                                                 for k, v in sorted(results.items())]), step)
            writer.flush()
        return results


def learning_rate(cfg, global_step):
    lr = cfg.init_learning_rate
    if cfg.lr_anneal == "const":
        return tf.constant(lr)
    if cfg.lr_anneal == "pwc":
        half = cfg.number_of_steps // 2
        bounds = [np.int64(half + k * cfg.num_steps_decay_pwc) for k in range(3)]
        return v1.train.piecewise_constant(global_step, bounds, [lr, lr * 0.1, lr * 0.01, lr * 0.001])
    if cfg.lr_anneal == "cos":
        progress = tf.cast(global_step, tf.float32) / float(max(cfg.number_of_steps, 1))
        return 0.5 * lr * (1.0 + tf.cos(math.pi * progress))
    decay_steps = max(cfg.number_of_steps // max(cfg.n_lr_decay, 1), 1)
    return v1.train.exponential_decay(lr, global_step, decay_steps, 1.0 / cfg.lr_decay_rate, staircase=True)


def _optimizer(cfg, lr, name):
    if cfg.optimizer == "sgd":
        opt = v1.train.MomentumOptimizer(lr, momentum=0.9, name=name)
    else:
        opt = v1.train.AdamOptimizer(lr, name=name + "Adam")
    return npu_session.wrap_optimizer(opt, cfg.npu)


def _train_op(opt, loss, var_list, global_step, update_ops, clip):
    """Per-variable gradient clipping, as slim.learning.create_train_op(clip_gradient_norm=...) does."""
    grads = opt.compute_gradients(loss, var_list=var_list)
    if clip > 0:
        grads = [(tf.clip_by_norm(g, clip) if g is not None else None, v) for g, v in grads]
    ordered_updates(update_ops)     # the encoder's passes update batch norm's statistics in a fixed order
    with tf.control_dependencies(update_ops):
        return opt.apply_gradients([(g, v) for g, v in grads if g is not None], global_step=global_step)


def _new_update_ops(before):
    return [op for op in v1.get_collection(v1.GraphKeys.UPDATE_OPS) if op not in before]


VALUES = ("loss", "accuracy", "lambda", "lr")   # what a training step's session call returns


def _episode_step(cfg, data, iterator, sampler, global_step):
    """One episodic training step on the episodes of `iterator`'s GetNext -> (train_op, VALUES, regularization)."""
    before = set(v1.get_collection(v1.GraphKeys.UPDATE_OPS))
    support, query, labels, classes = iterator.get_next()
    table = tf.constant(data.embeddings, name="word_embeddings") if M.uses_word_embeddings(cfg.model) else None
    out = _model_outputs(cfg, support, query, labels, classes, table, sampler.ways, sampler.shots,
                         training=True, augment=cfg.augment)
    update_ops = _new_update_ops(before)
    regularization = v1.losses.get_regularization_losses()
    loss = tf.add_n([out["xent"]] + regularization, name="total_loss")
    lr = learning_rate(cfg, global_step)
    model_vars = v1.trainable_variables()
    if cfg.feat_extract_pretrain == "freeze":
        model_vars = [v for v in model_vars if "feature_extractor" not in v.name]
    train_op = _train_op(_optimizer(cfg, lr, "Momentum"), loss, model_vars, global_step, update_ops,
                         cfg.clip_gradient_norm)
    return train_op, {"loss": loss, "accuracy": out["accuracy"], "lambda": out["lambda_mean"], "lr": lr}, \
        regularization


def _in_graph_loop(cfg):
    """Off Ascend the episodic step runs inside an in-graph loop, at N=1 too (one graph: the same seeded draws
    for every N); the auxiliary task picks its train op or the episodic one at each step in Python, so it keeps
    one step per session call. On Ascend the adapter loops the plain step on the device."""
    return not npu_session.on_npu() and not cfg.feat_extract_pretrain


class _Training(object):
    """The training graph and the handles the loop runs."""


def _build_training(cfg, train_data, splits, eval_on, in_graph):
    b = _Training()
    b.graph = tf.Graph()
    with b.graph.as_default(), _fresh_reads(in_graph):
        if cfg.seed is not None:
            v1.set_random_seed(cfg.seed)
        b.global_step = v1.train.get_or_create_global_step()
        b.global_step_aux = v1.Variable(0, trainable=False, name="global_step_pretrain", dtype=tf.int64)
        b.sampler = fsd.EpisodeSampler(train_data, cfg.num_classes_train, cfg.num_shots_train, cfg.train_batch_size,
                                       cfg.num_tasks_per_batch, seed=_seed(cfg, 0), what="training (--num_classes_"
                                       "train/--num_shots_train/--train_batch_size)")
        # initializable, as iterations_per_loop on Ascend needs; made outside the in-graph loop that reads it
        iterator = v1.data.make_initializable_iterator(fsd.episode_dataset(b.sampler))
        b.iterators = [iterator]

        def step():
            return _episode_step(cfg, train_data, iterator, b.sampler, b.global_step)
        if in_graph:
            b.per_run = cfg.npu.iterations_per_loop
            looped = repeat(b.per_run, lambda: _after_update(*step()[:2]), [tf.zeros([]) for _ in VALUES])
            b.fetches, regularization = dict(zip(VALUES, looped)), None   # fetching them trains
        else:
            b.per_run = npu_session.steps_per_run(cfg.npu)
            train_op, b.fetches, regularization = step()
            b.fetches["train"] = train_op
        b.aux = _auxiliary_task(cfg, train_data, regularization, b) if cfg.feat_extract_pretrain else None
        b.eval_graph = EvalGraph(cfg, splits, EVAL_SPLITS) if eval_on else None
        if b.aux is not None and eval_on:
            b.aux["eval"] = AuxEval(cfg, train_data, *b.aux["split"])
        b.saver = v1.train.Saver(max_to_keep=cfg.keep_checkpoint_max, save_relative_paths=True)
        b.init = v1.global_variables_initializer()
    return b


@contextlib.contextmanager
def _fresh_reads(in_graph):
    """Inside an in-graph loop every iteration must read the weights as the previous one left them. A resource
    variable is read where it is used. With ref variables, the tf.layers weights of this step were read inside
    the loop through their 'read' snapshot from before it (Enter of .../kernel/read in the graph): iterations
    2..N trained on the call's first weights and N=4 drifted from N=1. Checkpoints are the same either way."""
    if not in_graph:
        yield
        return
    with v1.variable_scope(v1.get_variable_scope(), use_resource=True):
        yield


def _after_update(train_op, values):
    """The step's values, read once its update has run (the next iteration of the loop starts after it)."""
    with tf.control_dependencies([train_op]):
        return [tf.identity(values[k]) for k in VALUES]


def _auxiliary_task(cfg, train_data, regularization, b):
    """Upstream's auxiliary all-classes task on 90% of the training split's images (its own optimizer and step)."""
    if cfg.num_classes_pretrain < train_data.num_classes:
        raise UserError("--num_classes_pretrain=%d but %s has %d classes" % (
            cfg.num_classes_pretrain, train_data.name, train_data.num_classes))
    aux_train_idx, aux_held_idx = fsd.holdout_split(train_data)   # upstream: 90% / 10%
    aux_sampler = fsd.BatchSampler(train_data, cfg.pre_train_batch_size, seed=_seed(cfg, 1), indices=aux_train_idx)
    aux_iterator = v1.data.make_initializable_iterator(fsd.batch_dataset(aux_sampler))
    images, labels = aux_iterator.get_next()
    images = tf.cast(images, tf.float32)
    if cfg.augment:
        images = _augment(images)
    before = set(v1.get_collection(v1.GraphKeys.UPDATE_OPS))
    logits = M.auxiliary_logits(cfg.model, images, cfg.num_classes_pretrain, training=True)
    aux_updates = _new_update_ops(before)
    aux_reg = [r for r in regularization if "feature_extractor_encoder" in r.name]
    aux_xent = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    aux_loss = tf.add_n([aux_xent] + aux_reg)
    aux_vars = [v for v in v1.trainable_variables() if "feature_extractor_encoder" in v.name
                or "pretrain_logits" in v.name]
    aux_op = _train_op(_optimizer(cfg, learning_rate(cfg, b.global_step), "PretrainOptimizer"), aux_loss,
                       aux_vars, b.global_step_aux, aux_updates, cfg.clip_gradient_norm)
    aux_acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32))
    b.iterators.append(aux_iterator)
    return {"train": aux_op, "loss": aux_loss, "accuracy": aux_acc, "split": (aux_train_idx, aux_held_idx)}


def train(cfg):
    """Episodic training with periodic validation; resumes from the newest checkpoint in LOG_DIR/train."""
    require(cfg.npu.iterations_per_loop == 1 or not cfg.feat_extract_pretrain or npu_session.on_npu(),
            "--feat_extract_pretrain=%s picks the auxiliary or the episodic train op at each step in Python: "
            "off Ascend it takes --iterations_per_loop=1" % cfg.feat_extract_pretrain)
    splits = Splits(cfg)
    train_data = splits["sources"]
    train_dir = os.path.join(cfg.log_dir, "train")
    params_path = os.path.join(cfg.log_dir, "params.json")
    resume_from = checkpoints.latest_checkpoint(train_dir)
    if resume_from:
        mismatch = model_options_mismatch(cfg, params_path)
        if mismatch:
            raise UserError("%s holds a checkpoint of a different model: %s; use another --log_dir or the same "
                            "flags" % (train_dir, "; ".join(mismatch)))
    eval_on = cfg.eval_interval_steps > 0 or cfg.eval_interval_fine_steps > 0
    if eval_on:   # fail on impossible evaluation settings before building anything, not at the first validation
        for i, split in enumerate(EVAL_SPLITS):
            _eval_sampler(cfg, splits, split, i)
            _require_same_image_size(train_data, splits[split])
    cfg.npu.in_graph_loop = _in_graph_loop(cfg)    # said on the device line
    b = _build_training(cfg, train_data, splits, eval_on, cfg.npu.in_graph_loop)
    checkpoints.require_writable(train_dir)
    with open(params_path, "w") as f:
        json.dump(config_record(cfg), f, indent=1, sort_keys=True)
    sess = npu_session.new_session(cfg.npu, graph=b.graph)
    with sess:
        sess.run(b.init)
        if resume_from:
            resume_from = checkpoints.restore(b.saver, sess, resume_from)
            print("resumed from %s" % resume_from, flush=True)
        sess.run([it.initializer for it in b.iterators])
        if "train" in b.fetches:   # the Ascend route: the adapter runs per_run steps of it on the device
            b.fetches["train"] = npu_session.set_iterations_per_loop(sess, b.fetches["train"], cfg.npu)
        _train_loop(cfg, sess, b, train_dir)


def _train_loop(cfg, sess, b, train_dir):
    finetune = cfg.feat_extract_pretrain in ("finetune", "freeze")
    aux_steps = cfg.feat_extract_pretrain_offset if finetune else 0
    done_main, done_aux = sess.run([b.global_step, b.global_step_aux])
    start = int(done_main) + (int(done_aux) if finetune else 0)
    total = cfg.number_of_steps + aux_steps
    writer = v1.summary.FileWriter(train_dir, graph=b.graph if start == 0 else None)
    eval_writer = v1.summary.FileWriter(os.path.join(cfg.log_dir, "eval")) if b.eval_graph else None
    sampler = b.sampler
    images_per_step = sampler.tasks * (sampler.ways * sampler.shots + sampler.queries)
    main_left = total - max(start, aux_steps)
    timer = StepTimer(images_per_step, warmup_steps=min(5, max(main_left, 0) // 2), unit="images")
    print("training %s from step %d to %d: %d tasks x (%d-way %d-shot + %d queries) = %d images per step"
          % (cfg.variant, start, total, sampler.tasks, sampler.ways, sampler.shots, sampler.queries,
             images_per_step), flush=True)
    # a rerun on a finished checkpoint trains nothing and prints no step time (the wrappers then report none)
    nothing = "the checkpoint in %s is at step %d of %d" % (train_dir, start, total)
    save = Checkpoint(b.saver, sess, train_dir, every=cfg.save_checkpoint_steps, since_last=True,
                      global_step=b.global_step)   # model.ckpt-<episodic steps>, as before
    hooks = [_LossLine(cfg, writer), _Evaluation(cfg, sess, b, aux_steps, eval_writer), _EarlyStop(cfg, aux_steps)]
    TrainLoop(_runner(cfg, sess, b, aux_steps, writer), start, total, per_run=b.per_run, checkpoint=save,
              timer=timer, hooks=hooks, nothing_to_train=nothing, timed=lambda step: step >= aux_steps).train()


def _runner(cfg, sess, b, aux_steps, writer):
    """run(step): the session call from step `step`, the episodic step's values; the auxiliary task's steps come
    first (finetune/freeze: the first aux_steps steps are its alone, values None) or ride along (multitask)."""
    dump = precision.StepDump.from_options(cfg.npu)   # --reference_dump: every op output of one step
    aux = _AuxiliarySteps(cfg, sess, b.aux, writer, dump) if b.aux is not None else None

    def run(step):
        if step < aux_steps:
            for aux_step in range(step, step + b.per_run):
                aux.run(aux_step)
            return None
        if aux is not None and cfg.feat_extract_pretrain == "multitask":
            aux.maybe(step)
        values = dump.run(sess, b.fetches, step, loss=b.fetches["loss"], per_run=b.per_run)
        npu_session.check_loss(values["loss"], step + b.per_run - 1)
        return values
    return run


class _AuxiliarySteps(object):
    """The auxiliary task's training steps and their 'pretrain loss' line."""

    def __init__(self, cfg, sess, aux, writer, dump):
        self.cfg, self.sess, self.aux, self.writer, self.dump = cfg, sess, aux, writer, dump
        self.rng = np.random.RandomState(_seed(cfg, 2))
        self.decay_every = max(cfg.number_of_steps // max(cfg.feat_extract_pretrain_decay_n, 1), 1)

    def maybe(self, step):
        """multitask: an auxiliary step before the episodic one with a probability decaying over training."""
        if self.rng.uniform() < self.cfg.feat_extract_pretrain_decay_rate ** (step // self.decay_every + 1):
            self.run(step)

    def run(self, step):
        fetched = self.dump.run(self.sess, [self.aux["loss"], self.aux["accuracy"], self.aux["train"]], step,
                                loss=self.aux["loss"])
        npu_session.check_loss(fetched[0], step, "auxiliary loss")
        if step % self.cfg.log_interval_steps == 0:
            _write_scalars(self.writer, step, {"pretrain/loss": fetched[0],
                                               "pretrain/misclassification": 1.0 - fetched[1]})
            print("step %d, pretrain loss : %.4g, pretrain accuracy: %.4f" % (step, fetched[0], fetched[1]),
                  flush=True)


class _LossLine(Hook):
    """'step N, loss : X, dt: Ys, ...' (N the last step of the call, whose values it shows) and the training
    scalars, at the calls holding a multiple of log_interval_steps and at the last call."""

    def __init__(self, cfg, writer):
        self.every, self.writer = cfg.log_interval_steps, writer

    def after_run(self, loop):
        out = loop.values
        if out is None or not (crosses(loop.step - loop.per_run, loop.per_run, self.every, count_zero=True)
                               or loop.step >= loop.total):
            return
        _write_scalars(self.writer, loop.last, {"loss": out["loss"], "misclassification": 1.0 - out["accuracy"],
                                                "learning_rate": out["lr"], "lambda": out["lambda"]})
        self.writer.flush()
        print(log_lines.LOSS.format(step=loop.last, loss=out["loss"], dt=loop.seconds / loop.per_run,
                                    accuracy=out["accuracy"], lam=out["lambda"]), flush=True)

    def after_train(self, loop):
        self.writer.close()


class _Evaluation(Hook):
    """Validation on the three splits (evaluate_splits) every eval_interval_steps episodic steps
    (eval_interval_fine_steps in the second half; none at the last step), then the auxiliary task's held-out
    accuracy; during finetune/freeze's auxiliary-only steps that accuracy every eval_interval_steps."""

    def __init__(self, cfg, sess, b, aux_steps, writer):
        self.cfg, self.sess, self.graph, self.aux_steps, self.writer = cfg, sess, b.eval_graph, aux_steps, writer
        self.aux_eval = b.aux.get("eval") if b.aux is not None else None

    def after_run(self, loop):
        cfg, first = self.cfg, loop.step - loop.per_run
        if loop.values is None:
            if self.aux_eval and cfg.eval_interval_steps > 0 and crosses(first + 1, loop.per_run,
                                                                         cfg.eval_interval_steps):
                self.aux_eval.evaluate(self.sess, loop.step, self.writer)
            return
        main_step = loop.step - self.aux_steps
        interval = cfg.eval_interval_fine_steps if main_step > 0.5 * cfg.number_of_steps else cfg.eval_interval_steps
        if self.graph and interval > 0 and (main_step - loop.per_run) // interval != main_step // interval \
                and loop.step < loop.total:
            evaluate_splits(self.sess, self.graph, cfg, main_step, self.writer, stop=loop.stop_request)
            if self.aux_eval and not loop.stop_request.requested:
                self.aux_eval.evaluate(self.sess, loop.step, self.writer)

    def after_train(self, loop):
        if self.writer is not None:
            self.writer.close()


class _EarlyStop(Hook):
    """Ends training number_of_steps_to_early_stop episodic steps past half of number_of_steps."""

    def __init__(self, cfg, aux_steps):
        self.after, self.aux_steps = 0.5 * cfg.number_of_steps + cfg.number_of_steps_to_early_stop, aux_steps

    def after_run(self, loop):
        if loop.values is not None and loop.step - self.aux_steps > self.after:
            print("early stop at step %d" % loop.step, flush=True)
            loop.finish()


def _write_scalars(writer, step, scalars):
    """Training scalars from fetched values: on Ascend a fetched summary op returns nothing in sess.run mode."""
    writer.add_summary(v1.Summary(value=[v1.Summary.Value(tag=k, simple_value=float(v))
                                         for k, v in sorted(scalars.items())]), step)


def _checkpoint_dir(cfg):
    return cfg.pretrained_model_dir or os.path.join(cfg.log_dir, "train")


def _restore_graph(cfg, splits, names, aux_eval=False):
    graph = tf.Graph()
    with graph.as_default():
        if cfg.seed is not None:
            v1.set_random_seed(cfg.seed)
        eval_graph = EvalGraph(cfg, splits, names)
        if aux_eval:
            eval_graph.aux = AuxEval(cfg, splits["sources"], *fsd.holdout_split(splits["sources"]))
        saver = v1.train.Saver(v1.global_variables())
    return graph, eval_graph, saver


def _require_checkpoint(cfg):
    directory = _checkpoint_dir(cfg)
    path = checkpoints.latest_checkpoint(directory)
    if path is None:
        raise UserError("no checkpoint in %s: train first (--mode=train with the same --log_dir) or point "
                        "--pretrained_model_dir at a checkpoint folder" % directory)
    return path


def _restore(cfg, saver, sess, path):
    mismatch = model_options_mismatch(cfg, os.path.join(cfg.log_dir, "params.json"))
    if mismatch:
        raise UserError("the checkpoint in %s was trained with other model flags: %s" % (
            os.path.dirname(path), "; ".join(mismatch)))
    path = checkpoints.restore(saver, sess, path)   # a damaged newest one gives way to the previous one
    return path, int(path.rsplit("-", 1)[1])


def evaluate(cfg):
    """eval mode: accuracy of the newest checkpoint on the three splits; waits for newer checkpoints
    (every eval_interval_secs) until max_number_of_evaluations evaluations are done."""
    splits = Splits(cfg)
    _require_checkpoint(cfg)
    graph, eval_graph, saver = _restore_graph(cfg, splits, EVAL_SPLITS, aux_eval=bool(cfg.feat_extract_pretrain))
    writer = v1.summary.FileWriter(os.path.join(cfg.log_dir, "eval"))
    done, last_step, results = 0, -1, None
    with npu_session.new_session(cfg.npu, graph=graph) as sess:
        while True:
            path = _require_checkpoint(cfg)
            path, step = _restore(cfg, saver, sess, path)
            if step > last_step:
                results = evaluate_splits(sess, eval_graph, cfg, step, writer)
                if cfg.feat_extract_pretrain:
                    results.update(eval_graph.aux.evaluate(sess, step, writer))
                last_step = step
                done += 1
            if done >= cfg.max_number_of_evaluations:
                break
            time.sleep(max(cfg.eval_interval_secs, 1))
    writer.close()
    return results


# Upstream's evaluation restores slim.get_model_variables('Model') only: the FiLM output multipliers
# (cbn_params/*_weight*) and the metric scale polynomial_metric/power_weight1 stay at their initial values.
UPSTREAM_EVAL_VARIABLES = re.compile(r"(^|/)cbn_params/(gamma|beta)_weight\d+_\d+(/|:)"
                                     r"|(^|/)polynomial_metric/power_weight1:")
UPSTREAM_EVAL_NOTE = " [upstream's evaluation: FiLM multipliers and power_weight1 at their initial values]"


def upstream_evaluation(sess):
    """Put back the initial values of the variables upstream's evaluation never restored; returns their names."""
    names = [v for v in v1.global_variables() if UPSTREAM_EVAL_VARIABLES.search(v.name)]
    sess.run(v1.variables_initializer(names))
    print("upstream evaluation: %d variables at their initial values (%s)"
          % (len(names), ", ".join(sorted(v.op.name for v in names)) or "none in this variant"), flush=True)
    return [v.op.name for v in names]


def test(cfg):
    """test mode: mean accuracy with a 95% confidence interval over num_cases_test / eval_batch_size episodes."""
    split = cfg.data_split or "target_tst"
    splits = Splits(cfg)
    path = _require_checkpoint(cfg)
    graph, eval_graph, saver = _restore_graph(cfg, splits, [split])
    episodes = _episodes(cfg, cfg.num_cases_test)
    with npu_session.new_session(cfg.npu, graph=graph) as sess, StopRequest() as stop:
        path, step = _restore(cfg, saver, sess, path)
        print("test mode: checkpoint %s (step %d), %d episodes on %s" % (path, step, episodes, split), flush=True)
        if cfg.upstream_eval:
            upstream_evaluation(sess)
        t0 = time.time()
        try:
            acc, ci, xent, lam = run_episodes(sess, eval_graph, split, episodes, phase="test", stop=stop)
        except EpisodesStopped as cut:
            stop.stop_unsaved("test episode %d of %d" % (cut.done, episodes),
                              "test mode saves nothing (checkpoint %s unchanged)" % path,
                              "rerun the same command to test again")
        seconds = time.time() - t0
    results = {"split": split, "checkpoint": path, "step": step, "episodes": episodes,
               "ways": cfg.num_classes_test, "shots": cfg.num_shots_test, "queries": cfg.eval_batch_size,
               "accuracy": acc, "ci95": ci, "loss": xent, "lambda": lam, "seconds_per_episode": seconds / episodes}
    print(log_lines.TEST.format(split=split, accuracy=acc, ci95=ci, ways=cfg.num_classes_test,
                                shots=cfg.num_shots_test, episodes=episodes, queries=cfg.eval_batch_size, step=step,
                                seconds=seconds / episodes, lam=lam,
                                note=UPSTREAM_EVAL_NOTE if cfg.upstream_eval else ""), flush=True)
    os.makedirs(cfg.log_dir, exist_ok=True)
    with open(os.path.join(cfg.log_dir, "test_results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    return results


def run(cfg):
    if cfg.mode == "train":
        return train(cfg)
    if cfg.mode == "eval":
        return evaluate(cfg)
    return test(cfg)
