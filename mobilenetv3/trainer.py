"""Training loop for MobileNetV3 on an image folder: tf.data input, Adam, early stopping, checkpoints, history csv.

Fine-tuning (ImageNet weights from keras.applications, see weights.py) may train only the head and classifier
for the first epochs with the backbone's batch norm frozen; --recipe=paper trains as the paper (recipe.py).

Behaviour follows upstream train_cls.py (Adam lr 0.001, categorical cross-entropy, validation after every epoch,
early stopping on validation accuracy (--patience), best model kept, `hist.csv`), on a tf.Session so the same
loop runs on Ascend NPUs (common.npu_session) and on CPU/GPU.

Files under `save_dir`: checkpoints/model.ckpt-<step> (periodic, for resuming), best/model.ckpt-<step> (best
validation accuracy), hist.csv (one row per epoch), model.json (what eval/export/predict need to rebuild the net).
"""
import csv
import json
import math
import os
import time

import numpy as np

from common import checkpoints, distributed, npu_session, precision
from common.errors import UserError, require
from common.npu_session import NpuOptions
from common.progress import Progress
from common.scalar_events import ScalarEvents
from common.step_timer import StepTimer
from common.train_loop import Checkpoint, Hook, TrainLoop, crosses, repeat
from common.tf_compat import tf
from mobilenetv3 import data, log_lines, recipe, weights
from mobilenetv3.options import OPTIONS
from mobilenetv3.model import BN_MOMENTUM, INPUT_RANGES, get_spec, is_top, mobilenet_v3, network_variables

HISTORY_FIELDS = ("epoch", "steps", "loss", "acc", "val_loss", "val_acc")
MODEL_FILE = "model.json"


class TrainConfig(object):
    """Everything train() needs: the declared options (their defaults unless given), NPU options and cluster."""

    def __init__(self, **kwargs):
        for opt in OPTIONS:                 # mobilenetv3/options.py: the flags' declarations
            setattr(self, opt.name, opt.default)
        self.keep_checkpoints = 5
        self.shuffle = True             # training images in a new random order each pass (off: --deterministic)
        self.warmup_steps = 5           # steps left out of the throughput
        self.cluster = distributed.Cluster()   # data-parallel workers (common.distributed.cluster_from_env)
        self.npu = NpuOptions()
        for key, value in kwargs.items():
            if not hasattr(self, key):
                raise TypeError("unknown TrainConfig field %r" % key)
            setattr(self, key, value)

    def validate(self):
        get_spec(self.model, self.variant)
        for name in ("height", "width", "batch", "epochs"):
            require(isinstance(getattr(self, name), int) and getattr(self, name) > 0,
                    "%s must be a positive integer, got %r" % (name, getattr(self, name)))
        require(self.height >= 32 and self.width >= 32, "input size must be at least 32x32, got %dx%d"
                % (self.height, self.width))
        recipe.check_recipe(self.recipe)
        require(self.augmentation in ("",) + data.AUGMENTATIONS, "augmentation must be one of %s, got %r"
                % (", ".join(data.AUGMENTATIONS), self.augmentation))
        require(self.learning_rate is None or self.learning_rate > 0,
                "learning_rate must be positive, got %r" % self.learning_rate)
        require(self.weight_decay is None or self.weight_decay >= 0,
                "weight_decay must be >= 0, got %r" % self.weight_decay)
        require(self.input_range in ("",) + INPUT_RANGES, "input_range must be one of %s, got %r"
                % (", ".join(INPUT_RANGES), self.input_range))
        require(self.freeze_backbone_epochs >= 0, "freeze_backbone_epochs must be >= 0, got %r"
                % self.freeze_backbone_epochs)
        require(self.max_step >= 0, "max_step must be >= 0, got %r" % self.max_step)
        require(self.save_interval >= 0, "save_interval must be >= 0, got %r" % self.save_interval)
        require(self.patience >= 0, "patience must be >= 0, got %r" % self.patience)
        require(self.save_dir, "save_dir (--modeldir) must be given")

    def model_record(self, classes, input_range):
        """What eval, predict and export need to rebuild this network (and to read its averaged weights)."""
        return dict(model=self.model, variant=self.variant, height=self.height, width=self.width,
                    alpha=self.alpha, classes=list(classes), input_range=input_range,
                    weight_average=recipe.uses_weight_average(self.recipe))

    def augmentation_style(self):
        return self.augmentation or recipe.default_augmentation(self.recipe)

    def global_weight_decay(self):
        return recipe.default_weight_decay(self.recipe) if self.weight_decay is None else self.weight_decay


def resolve_input_range(config):
    """The flag; else what the run being resumed recorded; else what the initial weights expect; else [0, 1]."""
    if config.input_range:
        return config.input_range
    if os.path.isfile(os.path.join(config.save_dir, MODEL_FILE)):
        return load_model_record(config.save_dir)["input_range"]
    return weights.input_range_for(config.weights) if config.weights else "0,1"


def find_eval_dir(data_path):
    """`<data_path>/validation`, or `<data_path>/eval` (the seed page's name) when only that exists."""
    for name in ("validation", "eval"):
        if os.path.isdir(os.path.join(data_path, name)):
            return os.path.join(data_path, name)
    return os.path.join(data_path, "validation")


def load_model_record(save_dir):
    path = os.path.join(save_dir, MODEL_FILE)
    if not os.path.isfile(path):
        raise UserError("%s not found: %s is not a model directory written by train_cls.py" % (path, save_dir))
    try:
        with open(path) as handle:
            record = json.load(handle)
    except ValueError as err:
        raise UserError("%s is not valid JSON: %s" % (path, err))
    record.setdefault("input_range", "0,1")          # written before the field existed
    record.setdefault("weight_average", False)
    return record


def _check_record(save_dir, record):
    """A save_dir already holding another model must not be resumed (or overwritten) by this one."""
    path = os.path.join(save_dir, MODEL_FILE)
    if not os.path.isfile(path):
        return
    old = load_model_record(save_dir)
    diffs = ["%s %r (saved) vs %r (now)" % (k, old.get(k), v) for k, v in record.items() if old.get(k) != v]
    if diffs:
        raise UserError("%s holds a different model: %s; use another --modeldir" % (save_dir, "; ".join(diffs)))


def _read_history(path):
    if not os.path.isfile(path):
        return []
    with open(path) as handle:
        return list(csv.DictReader(handle))


AUGMENTATION_TEXT = {"upstream": "upstream's (Keras affine warp and flip)",
                     "inception": "TF-slim's ImageNet (random-resized crop, flip, brightness and saturation)"}


class _Graph(object):
    """The training and validation graphs, sharing variables; the training step runs on every worker of dp."""

    def __init__(self, config, train_folder, val_folder, spec, dp, steps_per_epoch, input_range, in_graph_loop=0):
        cluster = config.cluster
        self.train_iter = tf.compat.v1.data.make_initializable_iterator(data.train_dataset(
            train_folder, config.batch, config.height, config.width, augmentation=config.augment, seed=config.seed,
            shuffle=config.shuffle,
            shard=(cluster.size, cluster.rank), style=config.augmentation_style()))
        self.global_step = tf.compat.v1.train.get_or_create_global_step()
        self.average = None    # recipe.WeightAverage once the first step has created the weights
        step = self._step_builder(config, spec, len(train_folder.classes), dp, steps_per_epoch, input_range)
        self._build_steps(config, dp, step, in_graph_loop)
        self._build_validation(config, val_folder, spec, len(train_folder.classes), input_range)
        model_vars = network_variables()
        self.model_vars = model_vars
        self.saver = tf.compat.v1.train.Saver(max_to_keep=config.keep_checkpoints, save_relative_paths=True)
        self.best_saver = tf.compat.v1.train.Saver(max_to_keep=1, save_relative_paths=True)
        self.init = tf.compat.v1.global_variables_initializer()
        # Ascend ranks start from rank 0's weights; MultiWorkerMirroredStrategy does this by itself.
        self.broadcast = npu_session.broadcast_variables_op(model_vars) if cluster.route == "npu" else tf.no_op()

    def _step_builder(self, config, spec, n, dp, steps_per_epoch, input_range):
        """step(images, labels, frozen) -> (loss, acc, rate) tensors read after the step's update."""
        initial = recipe.initial_learning_rate(config.recipe, config.learning_rate, config.batch * config.cluster.size)
        used = {}

        def rate():   # the rate tensor of the step being built: in an in-graph loop every iteration its own
            return used["rate"]
        optimizer = npu_session.wrap_optimizer(recipe.optimizer(config.recipe, rate), config.npu,
                                               distributed=config.cluster.distributed)

        def step(images, labels, frozen=False):
            # one rate tensor per step, read by its optimizer update and fetched with it (the rate that step used)
            used["rate"] = tf.convert_to_tensor(recipe.learning_rate(config.recipe, initial, steps_per_epoch,
                                                                     self.global_step), tf.float32)
            update_ops_before = set(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS))
            logits = mobilenet_v3(images, spec, n, alpha=config.alpha, dropout=config.dropout, training=True,
                                  input_range=input_range, bn_training=not frozen)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
            acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), labels), tf.float32))
            trainable = set(tf.compat.v1.trainable_variables())
            trained = [v for v in network_variables() if v in trainable and (is_top(v) or not frozen)]
            penalty = recipe.weight_decay_loss(trained, config.global_weight_decay())
            update_ops = [op for op in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
                          if op not in update_ops_before]
            with tf.control_dependencies(update_ops):
                train_op = optimizer.minimize((loss + penalty) * dp.gradient_scale, global_step=self.global_step,
                                              var_list=trained)
            done = [train_op]
            if recipe.uses_weight_average(config.recipe):
                self.average = self.average or recipe.WeightAverage(
                    [v for v in network_variables() if v in trainable], recipe.PAPER_EMA_DECAY)
                with tf.control_dependencies(done):
                    done = [self.average.update(self.global_step)]
            with tf.control_dependencies(done):
                return tf.identity(loss), tf.identity(acc), tf.identity(used["rate"])
        return step

    def _build_validation(self, config, val_folder, spec, n, input_range):
        """Sums of loss, right answers and images over a fixed number of batches, then all-masked padding: an
        OutOfRangeError in a session run would abort the collective executor of the multi-worker route and hang
        the next all-reduce."""
        self.val_batches = -(-len(val_folder) // config.batch)
        padding = tf.data.Dataset.from_tensors((tf.zeros([config.batch, config.height, config.width, 3]),
                                                tf.zeros([config.batch], tf.int32), tf.zeros([config.batch])))
        self.val_iter = tf.compat.v1.data.make_initializable_iterator(data.eval_dataset(
            val_folder.files, val_folder.labels, config.batch, config.height, config.width).concatenate(
                padding.repeat()))
        v_images, v_labels, mask = self.val_iter.get_next()
        v_logits = mobilenet_v3(v_images, spec, n, alpha=config.alpha, training=False, input_range=input_range,
                                getter=self.average.getter if self.average else None)   # evaluated as exported
        v_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=v_labels, logits=v_logits)
        v_right = tf.cast(tf.equal(tf.argmax(v_logits, 1, output_type=tf.int32), v_labels), tf.float32)
        self.val_images = len(val_folder)
        self.val_sums = (tf.reduce_sum(v_loss * mask), tf.reduce_sum(v_right * mask), tf.reduce_sum(mask))

    def _build_steps(self, config, dp, step, in_graph_loop):
        """Fetching loss and acc runs the step (and its gradient all-reduce on the multi-worker route); in
        fine-tuning's first epochs the frozen step over the same batch trains the top alone."""
        self.frozen_loss = self.frozen_acc = self.frozen_train_op = self.frozen_learning_rate = None
        if in_graph_loop:   # off Ascend: that many steps per session call, each drawing its own batch inside
            def looped(frozen):
                return repeat(in_graph_loop, lambda: list(dp.run_step(
                    lambda *inputs: step(*inputs, frozen=frozen), *self.train_iter.get_next())), [tf.zeros([])] * 3)
            self.loss, self.acc, self.learning_rate = looped(False)
            if config.freeze_backbone_epochs:
                self.frozen_loss, self.frozen_acc, self.frozen_learning_rate = looped(True)
        else:
            batch = self.train_iter.get_next()
            self.loss, self.acc, self.learning_rate = dp.run_step(step, *batch)
            if config.freeze_backbone_epochs:
                self.frozen_loss, self.frozen_acc, self.frozen_learning_rate = dp.run_step(
                    lambda *inputs: step(*inputs, frozen=True), *batch)
        self.train_op = self.loss.op
        if self.frozen_loss is not None:
            self.frozen_train_op = self.frozen_loss.op

    def validate(self, sess):
        sess.run(self.val_iter.initializer)
        loss = right = count = 0.0
        progress = Progress("validation", self.val_batches, "batches")   # a line every 30 s of a long pass
        for done in range(1, self.val_batches + 1):   # unreadable images only leave masked padding at the end
            batch_loss, batch_right, batch_count = sess.run(self.val_sums)
            loss, right, count = loss + batch_loss, right + batch_right, count + batch_count
            progress.update(done)
        require(count > 0, "no validation image could be decoded")
        return loss / count, right / count, int(count)


def train(config):
    """Train, validate every epoch, stop early, keep the best model; returns the history rows (list of dicts)."""
    config.validate()
    spec = get_spec(config.model, config.variant)
    train_folder, val_folder, steps_per_epoch = _check_data(config)
    in_graph, per_run = _steps_per_call(config, steps_per_epoch)
    input_range = resolve_input_range(config)
    record = config.model_record(train_folder.classes, input_range)
    _check_record(config.save_dir, record)
    _say_settings(config, train_folder, val_folder, steps_per_epoch, input_range)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(config.seed)   # same initial weights on every rank
        config.npu.in_graph_loop = in_graph    # said on the device line
        dp = distributed.DataParallel(config.cluster, npu_session.session_config(config.npu,
                                                                                 config.cluster.distributed))
        with dp.scope():
            g = _Graph(config, train_folder, val_folder, spec, dp, steps_per_epoch, input_range,
                       in_graph_loop=per_run if in_graph else 0)
        sess = dp.session(graph)
        with sess:
            restored = _start(config, sess, g)
            train_op = npu_session.set_iterations_per_loop(sess, g.train_op, config.npu)
            steps = {False: (train_op, g.loss, g.acc, g.learning_rate),
                     True: (g.frozen_train_op, g.frozen_loss, g.frozen_acc, g.frozen_learning_rate)}
            graph.finalize()
            save_dirs = _prepare_save_dirs(config, record)
            return _loop(config, sess, g, steps, steps_per_epoch, per_run, config.cluster.is_chief, save_dirs,
                         os.path.join(config.save_dir, "hist.csv"), restored)


def _check_data(config):
    """The training and validation folders, checked -> (train_folder, val_folder, steps per epoch)."""
    train_folder = data.ImageFolder(config.train_dir, "training")
    val_folder = data.ImageFolder(config.eval_dir, "validation")
    data.check_same_classes(train_folder, val_folder)
    empty = train_folder.empty_classes()
    require(not empty, "training class folders without images under %s: %s" % (config.train_dir, ", ".join(empty)))
    classes = train_folder.classes
    if config.class_number is not None:
        require(config.class_number == len(classes), "class_number is %d but %s has %d class folders (%s)"
                % (config.class_number, config.train_dir, len(classes), ", ".join(classes[:10])))
    cluster = config.cluster
    per_rank = len(train_folder) // cluster.size
    require(config.batch <= per_rank, "batch %d is larger than the %d training images%s under %s" % (
        config.batch, per_rank, " per device" if cluster.distributed else "", config.train_dir))
    return train_folder, val_folder, per_rank // config.batch


def _say_settings(config, train_folder, val_folder, steps_per_epoch, input_range):
    classes, cluster = train_folder.classes, config.cluster
    print("data: %d training images (%d per device), %d validation images, %d classes: %s"
          % (len(train_folder), len(train_folder) // cluster.size, len(val_folder), len(classes),
             ", ".join(classes[:10])), flush=True)
    print("model: MobileNetV3-%s (%s variant), input %dx%d in [%s], alpha %g; %d steps per epoch of batch %d"
          % (config.model.capitalize(), config.variant, config.height, config.width, input_range, config.alpha,
             steps_per_epoch, config.batch), flush=True)
    print(recipe.describe(config.recipe, recipe.initial_learning_rate(
        config.recipe, config.learning_rate, config.batch * cluster.size), config.global_weight_decay()), flush=True)
    print("augmentation: %s" % (AUGMENTATION_TEXT[config.augmentation_style()] if config.augment else "off"),
          flush=True)
    print(cluster.describe(), flush=True)


def _start(config, sess, g):
    """Initialise, then resume the latest checkpoint or load --weights; all ranks start from rank 0's weights.
    Returns whether a checkpoint was restored."""
    sess.run(g.init)
    restored = checkpoints.restore_latest(g.saver, sess, os.path.join(config.save_dir, "checkpoints"))
    if restored:
        print("resumed from %s" % restored, flush=True)
    elif config.weights:
        weights.load_initial(sess, config.weights, g.model_vars, config.variant, config.model, config.alpha)
    sess.run(g.broadcast)
    if g.average and not restored:
        sess.run(g.average.reset_op)   # average from the starting weights, not from zero
    return bool(restored)


def _prepare_save_dirs(config, record):
    """The chief writes the model record; every rank runs the saves (see distributed.save_dir), only rank 0's
    land in save_dir. Returns [checkpoints dir, best dir]."""
    if config.cluster.is_chief:
        os.makedirs(os.path.join(config.save_dir, "checkpoints"), exist_ok=True)
        with open(os.path.join(config.save_dir, MODEL_FILE), "w") as handle:
            json.dump(record, handle, indent=1)
    save_root = distributed.save_dir(config.cluster, config.save_dir)
    save_dirs = [os.path.join(save_root, name) for name in ("checkpoints", "best")]
    for directory in save_dirs:
        checkpoints.require_writable(directory)
    return save_dirs


def _steps_per_call(config, steps_per_epoch):
    """(in-graph loop?, steps per session call). Off Ascend the step always runs in an in-graph loop (N=1 too: one
    graph, so a seed draws the same numbers for every N); on Ascend the adapter loops the plain step."""
    cluster = config.cluster
    in_graph = not npu_session.on_npu() and not cluster.distributed
    per_run = config.npu.iterations_per_loop if in_graph else npu_session.steps_per_run(config.npu)
    require(config.npu.iterations_per_loop == 1 or not cluster.distributed or cluster.route == "npu",
            "iterations_per_loop > 1 runs one process's in-graph loop: the multi-worker CPU/GPU route takes 1")
    require(steps_per_epoch % per_run == 0, "iterations_per_loop=%d must divide the %d steps of an epoch"
            % (per_run, steps_per_epoch))
    require(per_run == 1 or not config.freeze_backbone_epochs,
            "freeze_backbone_epochs needs iterations_per_loop=1 (two train ops cannot share the device loop)")
    return in_graph, per_run


def _loop(config, sess, g, steps, steps_per_epoch, per_run, chief, save_dirs, hist_path, resumed):
    """Epochs of steps through the common loop: it stops, saves, times; the hooks log, validate, stop early."""
    start = int(sess.run(g.global_step))
    max_step = config.max_step or config.epochs * steps_per_epoch
    total = min(max_step, config.epochs * steps_per_epoch)
    epochs = _Epochs(config, sess, g, steps_per_epoch, total, _read_history(hist_path) if resumed else [],
                     hist_path if chief else None, save_dirs[1])
    nothing = "checkpoint at step %d, epochs %d, max_step %d" % (start, config.epochs, max_step)
    if config.patience and epochs.wait >= config.patience and start >= BN_SETTLE_STEPS:
        nothing = "early stopping already reached in %s (no better val_acc for %d epochs)" % (hist_path, epochs.wait)
        total = start
    require(start >= total or start % per_run == 0, "iterations_per_loop=%d: the checkpoint's step %d is not a "
            "multiple of it (epochs end at multiples of it); resume with the run's own iterations_per_loop"
            % (per_run, start))
    timer = StepTimer(config.batch, warmup_steps=config.warmup_steps, log_every=max(config.log_every, 100))
    loop = TrainLoop(_runner(config, sess, steps, steps_per_epoch, per_run, chief), start, total, per_run=per_run,
                     checkpoint=_SavePolicy(g.saver, sess, save_dirs[0], config.save_interval, epochs.ends, start),
                     timer=timer, hooks=[_TrainLines(config, epochs), epochs],
                     stop_enabled=not config.cluster.distributed, nothing_to_train=nothing,
                     where=lambda step: "step %d (epoch %d)" % (step, step // steps_per_epoch + 1))
    if start < total:
        sess.run(g.train_iter.initializer)
        epochs.events = ScalarEvents(config.save_dir if chief else None)   # TensorBoard: loss, accuracy, rate
    loop.train()
    return epochs.history


def _runner(config, sess, steps, steps_per_epoch, per_run, chief):
    """run(step): the session call starting at step; the frozen-backbone step in fine-tuning's first epochs."""
    dump = precision.StepDump.from_options(config.npu, chief)   # --reference_dump: every op output of one step
    announced = set()

    def run(step):
        epoch = step // steps_per_epoch + 1
        fetches = steps[epoch <= config.freeze_backbone_epochs]
        if config.freeze_backbone_epochs and epoch in (1, config.freeze_backbone_epochs + 1) \
                and epoch not in announced:
            announced.add(epoch)
            print("epoch %d: %s" % (epoch, "backbone frozen (head and classifier train, batch norm statistics kept)"
                                    if fetches is steps[True] else "the whole network trains"), flush=True)
        return dump.run(sess, fetches, step, loss=fetches[1], per_run=per_run)[1:]
    return run


class _SavePolicy(Checkpoint):
    """model.ckpt-<step> every save_interval steps since the last save, else at the end of every epoch."""

    def __init__(self, saver, sess, directory, interval, epoch_ends, start):
        super(_SavePolicy, self).__init__(saver, sess, directory)
        self.interval, self.epoch_ends, self.last_saved = interval, epoch_ends, start

    def save(self, steps_done):
        self.last_saved = steps_done
        return super(_SavePolicy, self).save(steps_done)

    def due(self, loop):
        if self.interval:
            return loop.step - self.last_saved >= self.interval
        return self.epoch_ends(loop.step) and loop.step > self.last_saved


class _TrainLines(Hook):
    """Upstream's 'train step=N epoch=E loss=X acc=Y' lines (each session call's last step), the finite check
    and the loss and accuracy events; the epoch's values go to its history row."""

    def __init__(self, config, epochs):
        self.log_every, self.epochs = config.log_every, epochs

    def after_run(self, loop):
        # Counted by the loop: a global_step fetched beside the train op may be read before its increment, and
        # workers that disagree on the step count stop pairing their all-reduces.
        loss, acc, self.epochs.rate = loop.values      # the rate the call's last step used
        step = loop.step
        npu_session.check_loss(loss, step)
        self.epochs.losses.append(loss)
        self.epochs.accs.append(acc)
        self.epochs.events.add(step, {"loss": loss, "accuracy": acc})
        if crosses(step - loop.per_run + 1, loop.per_run, self.log_every) or self.epochs.ends(step):
            print(log_lines.LOSS.format(step=step, epoch=self.epochs.of(step), loss=loss, acc=acc), flush=True)


class _Epochs(Hook):
    """At the end of every epoch: validation, the 'epoch N/M:' line, the best checkpoint, hist.csv, the
    validation events and early stopping; the 'final:' line."""

    def __init__(self, config, sess, g, steps_per_epoch, total, history, hist_path, best_dir):
        self.config, self.sess, self.g, self.steps_per_epoch, self.total = config, sess, g, steps_per_epoch, total
        self.history, self.hist_path, self.best_dir = history, hist_path, best_dir
        self.best_acc, self.wait, self.rate = -1.0, 0, None
        for row in history:   # rebuild the early-stopping state of a resumed run
            acc = float(row["val_acc"])
            self.best_acc, self.wait = (acc, 0) if acc > self.best_acc else (self.best_acc, self.wait + 1)
        self.losses, self.accs, self.events, self.warned = [], [], None, False

    def ends(self, step):
        return step % self.steps_per_epoch == 0 or step == self.total

    def of(self, step):
        """The epoch (from 1) that steps done = `step` ends in."""
        return (step - 1) // self.steps_per_epoch + 1

    def before_train(self, loop):
        self.started = time.time()

    def after_run(self, loop):
        if not self.ends(loop.step):
            return
        step, epoch = loop.step, self.of(loop.step)
        val_loss, val_acc, n_val = self.g.validate(self.sess)
        if n_val < self.g.val_images and not self.warned:
            data.warn("%d of %d validation images could not be decoded and are left out"
                      % (self.g.val_images - n_val, self.g.val_images))
            self.warned = True
        improved = val_acc > self.best_acc
        self.best_acc, self.wait = (val_acc, 0) if improved else (self.best_acc, self.wait + 1)
        row = dict(epoch=epoch, steps=step, loss="%.6f" % np.mean(self.losses), acc="%.6f" % np.mean(self.accs),
                   val_loss="%.6f" % val_loss, val_acc="%.6f" % val_acc)
        self.history.append(row)
        self.events.add(step, {"val_loss": val_loss, "val_accuracy": val_acc,
                               "learning_rate": self.rate})
        self.events.flush()
        print(log_lines.EPOCH.format(epoch=epoch, epochs=self.config.epochs, loss=row["loss"], acc=row["acc"],
                                     val_loss=row["val_loss"], val_acc=row["val_acc"], images=n_val,
                                     seconds=time.time() - self.started, best=improved), flush=True)
        if improved:
            checkpoints.save(self.g.best_saver, self.sess, os.path.join(self.best_dir, "model.ckpt"),
                             global_step=step, latest_filename="checkpoint")
        if self.hist_path:
            _write_history(self.hist_path, self.history)
        if _early_stop(self.config, self.wait, self.best_acc, step):
            loop.finish()
        self.losses, self.accs, self.started = [], [], time.time()

    def after_train(self, loop):
        if loop.trained:
            self.events.close()
            print("final: step=%d best_val_acc=%.4f val_acc=%s"
                  % (loop.step, self.best_acc, self.history[-1]["val_acc"]), flush=True)


# Validation runs in inference mode on the BN moving statistics, which start at mean 0 / variance 1 and keep
# momentum^n of that after n steps. Until they have forgotten 95% of it, val_acc says little (a small folder gave
# 0.50 in inference mode where training mode gave 1.00), so early stopping waits for this many steps.
BN_SETTLE_STEPS = int(math.ceil(math.log(0.05) / math.log(BN_MOMENTUM)))   # 299 for momentum 0.99


def _early_stop(config, wait, best_acc, step):
    """True when val_acc has not improved for `patience` epochs and the BN statistics have settled."""
    if not config.patience or wait < config.patience:
        return False
    if step < BN_SETTLE_STEPS:
        if wait == config.patience:
            print("early stopping waits for step %d: the batch-norm moving statistics (momentum %g) are not "
                  "settled at step %d" % (BN_SETTLE_STEPS, BN_MOMENTUM, step), flush=True)
        return False
    print("early stopping: val_acc has not improved for %d epochs (best %.4f)" % (wait, best_acc), flush=True)
    return True


def _write_history(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
