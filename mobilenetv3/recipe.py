"""Training recipes: upstream's Adam, or the paper's RMSProp schedule with L2 weight decay and a weight average.

The paper (Howard et al. 2019, section 6.1): RMSProp with momentum 0.9, learning rate 0.1 for a batch of 4096
(scaled linearly here to the global batch), decayed by 0.01 (x 0.99) every 3 epochs, dropout 0.2, L2 weight decay
1e-5, and an exponential moving average of the weights with decay 0.9999, which evaluation and export use.
"""
from common.errors import UserError
from common.tf_compat import tf

RECIPES = ("adam", "paper")
ADAM_LEARNING_RATE = 0.001          # upstream train_cls.py
PAPER_LEARNING_RATE = 0.1           # per PAPER_BATCH images
PAPER_BATCH = 4096
PAPER_DECAY_EPOCHS = 3
PAPER_DECAY_RATE = 0.99             # "decay rate of 0.01 every 3 epochs": 1% less, staircase
PAPER_WEIGHT_DECAY = 1e-5
PAPER_EMA_DECAY = 0.9999
# Not in the paper: TF's RMSProp defaults decay 0.9 with epsilon 1e-10; TF-slim and the TPU MnasNet/EfficientNet
# trainers use 1e-3 (inside the square root; PyTorch's 0.0316 outside it), which keeps early steps bounded.
RMSPROP_DECAY = 0.9
RMSPROP_MOMENTUM = 0.9
RMSPROP_EPSILON = 1e-3
# tf.train.ExponentialMovingAverage's name for the averages: its variables_to_restore() reads our checkpoints.
EMA_SUFFIX = "ExponentialMovingAverage"


def check_recipe(name):
    if name not in RECIPES:
        raise UserError("unknown recipe %r: choose one of %s" % (name, ", ".join(RECIPES)))


def default_weight_decay(recipe):
    return PAPER_WEIGHT_DECAY if recipe == "paper" else 0.0


def default_augmentation(recipe):
    """The paper trained with TF-slim's ImageNet preprocessing (random-resized crop, flip, colour); upstream with
    Keras's affine warp and flip (mobilenetv3/data.py)."""
    return "inception" if recipe == "paper" else "upstream"


def uses_weight_average(recipe):
    return recipe == "paper"


def initial_learning_rate(recipe, given, global_batch):
    """`given` (a flag) overrides the recipe's rate; the paper's scales linearly with the global batch."""
    if given:
        return given
    return PAPER_LEARNING_RATE * global_batch / PAPER_BATCH if recipe == "paper" else ADAM_LEARNING_RATE


def learning_rate(recipe, initial, steps_per_epoch, global_step):
    """A constant for Adam; the paper's staircase decay (x 0.99 every 3 epochs) as a tensor."""
    if recipe != "paper":
        return initial
    return tf.compat.v1.train.exponential_decay(initial, global_step, PAPER_DECAY_EPOCHS * steps_per_epoch,
                                                PAPER_DECAY_RATE, staircase=True)


def describe(recipe, initial, weight_decay):
    if recipe != "paper":
        return "optimizer: Adam lr %g, weight decay %g" % (initial, weight_decay)
    return ("optimizer: RMSProp (paper recipe) lr %g x %g every %d epochs, weight decay %g, weight average %g"
            % (initial, PAPER_DECAY_RATE, PAPER_DECAY_EPOCHS, weight_decay, PAPER_EMA_DECAY))


def optimizer(recipe, rate):
    if recipe == "paper":
        return tf.compat.v1.train.RMSPropOptimizer(rate, decay=RMSPROP_DECAY, momentum=RMSPROP_MOMENTUM,
                                                   epsilon=RMSPROP_EPSILON)
    return tf.compat.v1.train.AdamOptimizer(rate)


def weight_decay_loss(variables, rate):
    """rate * sum(w^2) / 2 over convolution and dense kernels (slim's l2_regularizer; no depthwise, BN or bias)."""
    kernels = [v for v in variables if v.op.name.rsplit("/", 1)[-1] == "kernel"]
    if not rate or not kernels:
        return tf.constant(0.0)
    return rate * tf.add_n([tf.nn.l2_loss(v) for v in kernels])


class WeightAverage(object):
    """Exponential moving average of trainable weights, decay min(decay, (1 + step) / (10 + step)) as TF's with
    num_updates, so short fine-tuning runs average over their own steps rather than their starting point.

    The shadows are sync-on-read like batch-norm statistics: each replica updates its copy in its own step.
    """

    def __init__(self, variables, decay):
        self.decay = decay
        self.shadows = {}
        sync = dict(synchronization=tf.VariableSynchronization.ON_READ, aggregation=tf.VariableAggregation.MEAN)
        # made by the first training step, which may sit in an in-graph loop: the reset op runs outside it
        with tf.compat.v1.init_scope():
            for var in variables:
                self.shadows[var.name] = (var, tf.compat.v1.get_variable(
                    average_name(var), shape=var.shape, dtype=var.dtype.base_dtype, trainable=False,
                    initializer=tf.zeros_initializer(), **sync))
            self.reset_op = tf.group(*[s.assign(v) for v, s in self.shadows.values()], name="weight_average_reset")

    def update(self, step):
        """Ops moving every shadow towards its variable (build them after the train op)."""
        step = tf.cast(step, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + step) / (10.0 + step))
        return tf.group(*[s.assign_sub((1.0 - decay) * (s - v)) for v, s in self.shadows.values()])

    def getter(self, getter, *args, **kwargs):
        """A custom variable getter that returns the averaged weights (evaluation towers)."""
        var = getter(*args, **kwargs)
        return self.shadows[var.name][1] if var.name in self.shadows else var


def average_name(var):
    return "%s/%s" % (var.op.name, EMA_SUFFIX)


def restore_map(variables, weight_average):
    """Checkpoint names for a Saver restoring `variables`: the averages of trainable ones when the run kept them."""
    trainable = set(tf.compat.v1.trainable_variables())
    return {average_name(v) if weight_average and v in trainable else v.op.name: v for v in variables}
