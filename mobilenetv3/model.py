"""MobileNetV3-Large and -Small (Howard et al., "Searching for MobileNetV3", ICCV 2019) as spec tables for one builder.

The paper variants follow Tables 1 and 2: SE squeezes to 1/4 of the expanded channels (rounded to a multiple of 8)
with a hard-sigmoid gate ReLU6(x+3)/6, heads 960->1280 (Large) and 576->1024 (Small). The "upstream" variants
reproduce the layer shapes of xiaochus/MobileNetV3 (SE without squeeze, Keras hard_sigmoid 0.2x+0.5, biases on
every convolution, a 1280 head in both sizes) so that its Keras weights can be loaded (see weights.py).

This module only builds layers: no flags, no session, no I/O. Input images are float32 NHWC in [0, 1]; the network
rescales them to the range its weights expect (`input_range`), as keras.applications' built-in Rescaling layer does.
"""
import collections


from common import npu_session
from common.errors import UserError
from common.tf_compat import tf

# One bottleneck row of the paper's tables.
Bneck = collections.namedtuple("Bneck", "kernel exp out se act stride")

# kernel, expansion size, output channels, squeeze-and-excite, activation (RE: ReLU, HS: hard-swish), stride
LARGE_BLOCKS = (
    Bneck(3, 16, 16, False, "RE", 1),
    Bneck(3, 64, 24, False, "RE", 2),
    Bneck(3, 72, 24, False, "RE", 1),
    Bneck(5, 72, 40, True, "RE", 2),
    Bneck(5, 120, 40, True, "RE", 1),
    Bneck(5, 120, 40, True, "RE", 1),
    Bneck(3, 240, 80, False, "HS", 2),
    Bneck(3, 200, 80, False, "HS", 1),
    Bneck(3, 184, 80, False, "HS", 1),
    Bneck(3, 184, 80, False, "HS", 1),
    Bneck(3, 480, 112, True, "HS", 1),
    Bneck(3, 672, 112, True, "HS", 1),
    Bneck(5, 672, 160, True, "HS", 2),
    Bneck(5, 960, 160, True, "HS", 1),
    Bneck(5, 960, 160, True, "HS", 1),
)

SMALL_BLOCKS = (
    Bneck(3, 16, 16, True, "RE", 2),
    Bneck(3, 72, 24, False, "RE", 2),
    Bneck(3, 88, 24, False, "RE", 1),
    Bneck(5, 96, 40, True, "HS", 2),
    Bneck(5, 240, 40, True, "HS", 1),
    Bneck(5, 240, 40, True, "HS", 1),
    Bneck(5, 120, 48, True, "HS", 1),
    Bneck(5, 144, 48, True, "HS", 1),
    Bneck(5, 288, 96, True, "HS", 2),
    Bneck(5, 576, 96, True, "HS", 1),
    Bneck(5, 576, 96, True, "HS", 1),
)

# A whole network: stem channels, bneck rows, last 1x1 conv, head width, and how the variant builds its parts.
Spec = collections.namedtuple("Spec", [
    "name", "stem", "blocks", "last_conv", "head",
    "se_ratio",        # SE bottleneck width as a fraction of the expanded channels (1.0 = no squeeze)
    "relu",            # the "RE" activation: "relu" (paper) or "relu6" (upstream's K.relu(x, max_value=6))
    "gate",            # SE gate: "hard_sigmoid" = ReLU6(x+3)/6 (paper), "keras_hard_sigmoid" = clip(0.2x+0.5)
    "conv_bias",       # biases on the convolutions that are followed by batch norm (upstream Keras default)
    "skip_identity_expansion",  # no 1x1 expansion when the expansion size equals the input channels (paper)
    "width_rule",      # "paper": every width * alpha rounded to a multiple of 8; "upstream": only bneck outputs
    "default_dropout",  # dropout rate before the classifier when the user gives none
])

_PAPER = dict(stem=16, se_ratio=0.25, relu="relu", gate="hard_sigmoid", conv_bias=False,
              skip_identity_expansion=True, width_rule="paper", default_dropout=0.2)
_UPSTREAM = dict(stem=16, se_ratio=1.0, relu="relu6", gate="keras_hard_sigmoid", conv_bias=True,
                 skip_identity_expansion=False, width_rule="upstream", default_dropout=0.0)
SPECS = {
    ("large", "paper"): Spec(name="large", blocks=LARGE_BLOCKS, last_conv=960, head=1280, **_PAPER),
    ("small", "paper"): Spec(name="small", blocks=SMALL_BLOCKS, last_conv=576, head=1024, **_PAPER),
    ("large", "upstream"): Spec(name="large", blocks=LARGE_BLOCKS, last_conv=960, head=1280, **_UPSTREAM),
    ("small", "upstream"): Spec(name="small", blocks=SMALL_BLOCKS, last_conv=576, head=1280, **_UPSTREAM),
}
MODEL_NAMES = ("large", "small")
VARIANTS = ("paper", "upstream")

BN_MOMENTUM = 0.99   # Keras default, as upstream trains with
BN_EPSILON = 1e-3

# What the first convolution sees: "0,1" (upstream's rescale=1/255) or "-1,1" (keras.applications' and TF-slim's
# ImageNet weights: Inception preprocessing).
INPUT_RANGES = ("0,1", "-1,1")
# Scopes after the global pool: the classifier ("top") that a fine-tuning run trains first, as keras's include_top.
TOP_SCOPES = ("head", "logits")
# The last name component of every variable the builder creates (optimizer slots and averages end otherwise).
_WEIGHT_NAMES = ("kernel", "depthwise_kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")


def get_spec(model, variant="paper"):
    """The spec table for a model name ('large'/'small') and variant ('paper'/'upstream'); UserError otherwise."""
    if model not in MODEL_NAMES:
        raise UserError("unknown model %r: choose one of %s" % (model, ", ".join(MODEL_NAMES)))
    if variant not in VARIANTS:
        raise UserError("unknown variant %r: choose one of %s" % (variant, ", ".join(VARIANTS)))
    return SPECS[(model, variant)]


def make_divisible(value, divisor=8, min_value=None):
    """Round a channel count to a multiple of `divisor` staying within 10% of it (the paper's rule)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def hard_swish(x):
    """x * ReLU6(x + 3) / 6."""
    return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def hard_sigmoid(x):
    """ReLU6(x + 3) / 6, the paper's piecewise-linear sigmoid."""
    return tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def keras_hard_sigmoid(x):
    """clip(0.2 x + 0.5, 0, 1): Keras's hard_sigmoid, used by the upstream SE gate."""
    return tf.clip_by_value(0.2 * x + 0.5, 0.0, 1.0)


_ACTIVATIONS = {"relu": tf.nn.relu, "relu6": tf.nn.relu6, "HS": hard_swish}
_GATES = {"hard_sigmoid": hard_sigmoid, "keras_hard_sigmoid": keras_hard_sigmoid}


class _Builder(object):
    """Creates the variables in the order Keras creates the upstream model's weights (kernel, bias, BN)."""

    def __init__(self, spec, training, bn_training):
        self.spec = spec
        self.training = bn_training
        self.init = tf.compat.v1.glorot_uniform_initializer()

    def conv(self, x, filters, kernel, stride, bias):
        w = tf.compat.v1.get_variable("kernel", [kernel, kernel, int(x.shape[-1]), filters], initializer=self.init)
        y = tf.nn.conv2d(x, w, [1, stride, stride, 1], "SAME")
        if bias:
            y = tf.nn.bias_add(y, tf.compat.v1.get_variable("bias", [filters], initializer=tf.zeros_initializer()))
        return y

    def depthwise(self, x, kernel, stride, bias):
        channels = int(x.shape[-1])
        w = tf.compat.v1.get_variable("depthwise_kernel", [kernel, kernel, channels, 1], initializer=self.init)
        y = tf.nn.depthwise_conv2d(x, w, [1, stride, stride, 1], "SAME")
        if bias:
            y = tf.nn.bias_add(y, tf.compat.v1.get_variable("bias", [channels], initializer=tf.zeros_initializer()))
        return y

    def dense(self, x, units, name):
        with tf.compat.v1.variable_scope(name):
            w = tf.compat.v1.get_variable("kernel", [int(x.shape[-1]), units], initializer=self.init)
            b = tf.compat.v1.get_variable("bias", [units], initializer=tf.zeros_initializer())
            return tf.nn.bias_add(tf.matmul(x, w), b)

    def bn(self, x):
        return tf.compat.v1.layers.batch_normalization(x, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                                       training=self.training, fused=True, name="bn")

    def act(self, x, kind):
        return _ACTIVATIONS[self.spec.relu if kind == "RE" else kind](x)

    def conv_bn(self, x, filters, kernel, stride, act, name):
        with tf.compat.v1.variable_scope(name):
            x = self.conv(x, filters, kernel, stride, self.spec.conv_bias)
            return self.act(self.bn(x), act)

    def squeeze_excite(self, x, name):
        channels = int(x.shape[-1])
        squeeze = channels if self.spec.se_ratio == 1.0 else make_divisible(channels * self.spec.se_ratio)
        with tf.compat.v1.variable_scope(name):
            s = tf.reduce_mean(x, axis=[1, 2])
            s = tf.nn.relu(self.dense(s, squeeze, "reduce"))
            s = _GATES[self.spec.gate](self.dense(s, channels, "expand"))
            return x * s[:, None, None, :]

    def bneck(self, x, exp, out, row):
        inputs = x
        if not (self.spec.skip_identity_expansion and exp == int(x.shape[-1])):
            x = self.conv_bn(x, exp, 1, 1, row.act, "expand")
        with tf.compat.v1.variable_scope("depthwise"):
            x = self.depthwise(x, row.kernel, row.stride, self.spec.conv_bias)
            x = self.act(self.bn(x), row.act)
        if row.se:
            x = self.squeeze_excite(x, "se")
        with tf.compat.v1.variable_scope("project"):
            x = self.bn(self.conv(x, out, 1, 1, self.spec.conv_bias))
        if row.stride == 1 and int(inputs.shape[-1]) == out:
            x = x + inputs
        return x


def widths(spec, alpha=1.0):
    """Channel widths (stem, [(expansion, output) per bneck], last conv, head) for a width multiplier."""
    if spec.width_rule == "upstream":
        # Upstream multiplies only the bneck outputs, truncating: int(alpha * filters).
        return spec.stem, [(row.exp, int(alpha * row.out)) for row in spec.blocks], spec.last_conv, spec.head
    stem = make_divisible(spec.stem * alpha)
    blocks, channels, in_paper = [], stem, spec.stem
    for row in spec.blocks:
        out = make_divisible(row.out * alpha)
        exp = make_divisible(channels * row.exp / float(in_paper))   # keep the paper's expansion ratio
        blocks.append((exp, out))
        channels, in_paper = out, row.out
    last = make_divisible(spec.last_conv * alpha)
    head = make_divisible(spec.head * alpha) if alpha > 1.0 else spec.head
    return stem, blocks, last, head


def network_variables(scope="MobilenetV3"):
    """The network's own variables in creation order (no optimizer slots, no weight averages)."""
    return [v for v in tf.compat.v1.global_variables(scope) if v.op.name.rsplit("/", 1)[-1] in _WEIGHT_NAMES]


def is_top(variable, scope="MobilenetV3"):
    """True for the head and classifier variables (TOP_SCOPES), False for the backbone."""
    parts = variable.op.name.split("/")
    return len(parts) > 2 and parts[0] == scope and parts[1] in TOP_SCOPES


def rescale_input(images, input_range):
    """Images in [0, 1] -> the range the weights were trained on."""
    if input_range not in INPUT_RANGES:
        raise UserError("unknown input range %r: choose one of %s" % (input_range, ", ".join(INPUT_RANGES)))
    return images * 2.0 - 1.0 if input_range == "-1,1" else images


def mobilenet_v3(images, spec, num_classes, alpha=1.0, dropout=None, training=False, scope="MobilenetV3",
                 input_range="0,1", bn_training=None, getter=None):
    """Logits [batch, num_classes] for float images [batch, H, W, 3] in [0, 1].

    spec: a Spec (get_spec); alpha: width multiplier; dropout: rate before the classifier (None: the variant's
    default); training: Python bool or bool tensor (batch statistics and dropout on); input_range: what the
    first layer sees (INPUT_RANGES); bn_training: batch norm's own switch (None: `training`), False keeps a
    frozen backbone's statistics while dropout still trains; getter: a custom variable getter (weight averages).
    """
    if num_classes < 2:
        raise UserError("need at least 2 classes, got %d" % num_classes)
    if not alpha > 0:
        raise UserError("width multiplier (alpha) must be positive, got %r" % alpha)
    dropout = spec.default_dropout if dropout is None else dropout
    if not 0.0 <= dropout < 1.0:
        raise UserError("dropout rate must be in [0, 1), got %r" % dropout)
    build = _Builder(spec, training, training if bn_training is None else bn_training)
    stem, blocks, last, head = widths(spec, alpha)
    with tf.compat.v1.variable_scope(scope, reuse=tf.compat.v1.AUTO_REUSE, custom_getter=getter):
        x = build.conv_bn(rescale_input(images, input_range), stem, 3, 2, "HS", "stem")
        for i, (row, (exp, out)) in enumerate(zip(spec.blocks, blocks)):
            with tf.compat.v1.variable_scope("bneck%d" % (i + 1)):
                x = build.bneck(x, exp, out, row)
        x = build.conv_bn(x, last, 1, 1, "HS", "last_conv")
        x = tf.reduce_mean(x, axis=[1, 2])
        x = hard_swish(build.dense(x, head, "head"))
        if dropout > 0 and training is not False:
            if training is True:
                x = npu_session.dropout(x, 1.0 - dropout)
            else:
                x = tf.cond(training, lambda: npu_session.dropout(x, 1.0 - dropout), lambda: x)
        return build.dense(x, num_classes, "logits")
