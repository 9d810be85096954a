"""Initial weights: one of our checkpoints, a keras.applications MobileNetV3 .h5 (ImageNet), or an upstream
xiaochus/MobileNetV3 Keras .h5.

Both Keras models create their weights in the order model.py creates the matching variant's variables (kernel,
bias, then gamma, beta, moving mean, moving variance per batch norm), so their files map onto our variables one
to one; shapes are checked on the way. keras.applications' MobileNetV3Large/Small is the paper variant layer for
layer; it holds the SE, head and classifier layers as 1x1 convolutions where we hold dense [Cin, Cout] kernels.
"""
import collections
import json
import os

import numpy as np

from common.errors import UserError
from common.tf_compat import tf
from mobilenetv3.model import get_spec, is_top
from mobilenetv3.recipe import EMA_SUFFIX, average_name

# keras.applications names the bnecks expanded_conv, expanded_conv_1, ...: their count tells the model.
KERAS_BLOCKS = {15: "large", 11: "small"}
KERAS_HEAD, KERAS_LOGITS = "Conv_2", "Logits"     # the include_top=True layers after the global pool
IMAGENET_INPUT_RANGE = "-1,1"                      # keras's built-in Rescaling, slim's Inception preprocessing

Entry = collections.namedtuple("Entry", "layer weight value")


def load_initial(sess, path, model_vars, variant, model="small", alpha=1.0):
    """Assign initial values to `model_vars` (model.network_variables) from `path`; prints what was loaded."""
    if not is_h5(path):
        load_checkpoint_matching(sess, path, model_vars)
        return
    entries = read_h5(path)
    if is_keras_applications(entries):
        if variant != "paper":
            raise UserError("%s: %s, which fit the paper variant: drop --variant=upstream"
                            % (path, KerasFile(entries).describe()))
        load_keras_applications(sess, path, KerasFile(entries), model_vars, model, alpha)
        return
    if variant != "upstream":
        raise UserError("%s is an upstream (xiaochus) Keras .h5 file: its weights need --variant=upstream" % path)
    values = [entry.value for entry in entries]
    assign_in_order(sess, model_vars, values, path)
    print("loaded %d upstream Keras weight arrays from %s" % (len(values), path), flush=True)


def is_h5(path):
    return path.endswith(".h5") or path.endswith(".hdf5")


def input_range_for(path):
    """The input range the weights at `path` were trained with: ImageNet files [-1, 1], upstream's [0, 1], our
    checkpoints what their model.json says."""
    if is_h5(path):
        return IMAGENET_INPUT_RANGE if is_keras_applications(read_h5(path)) else "0,1"
    record = _model_record_near(path)
    return record.get("input_range", "0,1")


def _model_record_near(path):
    """model.json of the training directory holding a checkpoint (given as the directory, best/ or a prefix)."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    for candidate in (folder, os.path.dirname(os.path.normpath(folder))):
        try:
            with open(os.path.join(candidate, "model.json")) as handle:
                return json.load(handle)
        except (IOError, OSError, ValueError):
            continue
    return {}


class KerasFile(object):
    """What a keras.applications MobileNetV3 weight file holds: model, alpha, and which top layers."""

    def __init__(self, entries):
        self.entries = entries
        blocks = {e.layer.split("/")[0] for e in entries if e.layer.startswith("expanded_conv")}
        self.model = KERAS_BLOCKS.get(len(blocks), "%d-block" % len(blocks))
        self.minimalistic = not any("squeeze_excite" in e.layer for e in entries)
        last = [e.value.shape[-1] for e in entries if e.weight.startswith("Conv_1/kernel")]
        base = get_spec(self.model).last_conv if self.model in KERAS_BLOCKS.values() else 0
        self.alpha = round(float(last[0]) / base, 2) if last and base else None
        self.head = [e for e in entries if e.layer == KERAS_HEAD]
        self.logits = [e for e in entries if e.layer == KERAS_LOGITS]
        self.backbone = [e for e in entries if e.layer not in (KERAS_HEAD, KERAS_LOGITS)]

    @property
    def classes(self):
        return self.logits[-1].value.shape[-1] if self.logits else None

    def describe(self):
        top = "with top (%d classes)" % self.classes if self.logits else "without top (include_top=False)"
        return "keras.applications MobileNetV3%s%s weights, alpha %s, %s, %d arrays" % (
            self.model.capitalize(), " minimalistic" if self.minimalistic else "", self.alpha, top,
            len(self.entries))


def load_keras_applications(sess, path, keras, model_vars, model, alpha):
    """Backbone in creation order; head and classifier when the file has them and their shapes fit, else the
    head stays as initialised and the classifier starts at zero."""
    wanted = "MobileNetV3-%s at alpha %g (paper variant)" % (model.capitalize(), alpha)
    if keras.model != model or keras.minimalistic or keras.alpha is None or abs(keras.alpha - alpha) > 1e-6:
        raise UserError("%s: %s; this run builds %s: choose --model and --alpha to match the file"
                        % (path, keras.describe(), wanted))
    backbone = [v for v in model_vars if not is_top(v)]
    head = [v for v in model_vars if is_top(v) and v.op.name.split("/")[1] == "head"]
    logits = [v for v in model_vars if is_top(v) and v.op.name.split("/")[1] == "logits"]
    if len(keras.backbone) != len(backbone):
        raise UserError("%s: %s, but its backbone holds %d arrays where %s has %d"
                        % (path, keras.describe(), len(keras.backbone), wanted, len(backbone)))
    feed = _fit_all(backbone, keras.backbone, path)
    fresh = []
    for part, entries, what in ((head, keras.head, "head"), (logits, keras.logits, "classifier")):
        if len(entries) == len(part) and all(_fits(e.value, v) for e, v in zip(entries, part)):
            feed.update(_fit_all(part, entries, path))
        else:
            fresh.append(what)
    loaded = len(feed)
    if "classifier" in fresh:
        # A new classifier starts at zero (BiT's fine-tuning practice): random logits on ImageNet features of
        # large magnitude start with a loss spike that the first epochs spend undoing.
        feed.update({var: np.zeros(var.shape.as_list(), np.float32) for var in logits})
    assign(sess, feed)
    note = ""
    if "classifier" in fresh and keras.logits:
        note = "; its %d-class classifier is left out: %d classes here" % (keras.classes, logits[0].shape[-1])
    print("loaded %d arrays of %s from %s%s%s" % (loaded, keras.describe(), path, note,
                                                  "; fresh: " + ", ".join(fresh) if fresh else ""), flush=True)


def _fits(value, var):
    shape = var.shape.as_list()
    return list(value.shape) == shape or (value.shape[:2] == (1, 1) and list(value.shape[2:]) == shape)


def _fit_all(variables, entries, source):
    """{variable: array} with 1x1-conv kernels [1, 1, Cin, Cout] reshaped onto our dense [Cin, Cout]."""
    feed = {}
    for var, entry in zip(variables, entries):
        if not _fits(entry.value, var):
            raise UserError("%s: %s %s does not fit %s %s: not a MobileNetV3 of this size"
                            % (source, entry.weight, list(entry.value.shape), var.op.name, var.shape.as_list()))
        feed[var] = entry.value.reshape(var.shape.as_list())
    return feed


def _checkpoint_path(path):
    if os.path.isdir(path):
        found = tf.train.latest_checkpoint(path) or tf.train.latest_checkpoint(os.path.join(path, "best"))
        if not found:
            raise UserError("no checkpoint in %s" % path)
        return found
    if not tf.io.gfile.exists(path + ".index"):
        raise UserError("weights %s: no such checkpoint (expected a directory, a checkpoint prefix or an .h5)"
                        % path)
    return path


def load_checkpoint_matching(sess, path, model_vars):
    """Restore every variable whose name and shape match the checkpoint (a new class count skips the logits)."""
    path = _checkpoint_path(path)
    try:
        saved = dict(tf.train.list_variables(path))
    except (tf.errors.OpError, ValueError) as err:
        raise UserError("cannot read checkpoint %s: %s" % (path, str(err).splitlines()[0]))
    matched, skipped = {}, []
    for var in model_vars:
        # A run that kept weight averages (--recipe=paper) is continued from the averages, as it was evaluated.
        names = (average_name(var), var.op.name)
        source = next((n for n in names if n in saved and list(saved[n]) == var.shape.as_list()), None)
        if source:
            matched[source] = var
        else:
            skipped.append(var.op.name)
    if not matched:
        raise UserError("checkpoint %s shares no variable with this model (another model or variant?)" % path)
    tf.compat.v1.train.Saver(var_list=matched).restore(sess, path)
    averaged = " (weight averages)" if any(n.endswith(EMA_SUFFIX) for n in matched) else ""
    print("initialised %d variables from %s%s%s" % (len(matched), path, averaged, "; kept fresh: " + ", ".join(skipped)
                                                    if skipped else ""), flush=True)


def is_keras_applications(entries):
    return any(entry.layer.startswith("expanded_conv") for entry in entries)


def keras_h5_weights(path):
    """The weight arrays of a Keras .h5 (save_weights or full model.save), in layer order."""
    return [entry.value for entry in read_h5(path)]


def read_h5(path):
    """[Entry(layer, weight name, array)] of a Keras .h5 (save_weights or full model.save), in layer order."""
    import h5py
    if not os.path.isfile(path):
        raise UserError("weights %s: no such file" % path)
    try:
        handle = h5py.File(path, "r")
    except (OSError, IOError) as err:
        raise UserError("cannot open Keras weights %s: %s" % (path, err))
    with handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        if "layer_names" not in group.attrs:
            raise UserError("%s has no Keras layer_names attribute: not a Keras weights file" % path)
        try:
            return [Entry(_text(layer), _text(weight), np.asarray(group[_text(layer)][_text(weight)]))
                    for layer in group.attrs["layer_names"]
                    for weight in group[_text(layer)].attrs.get("weight_names", [])]
        except (OSError, IOError, KeyError) as err:
            raise UserError("cannot read Keras weights %s (truncated or damaged?): %s" % (path, err))


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else value


def assign_in_order(sess, model_vars, values, source):
    """Assign arrays to variables in creation order; 1x1-conv heads are reshaped onto our dense layers."""
    if len(values) != len(model_vars):
        raise UserError("%s holds %d weight arrays but the upstream-variant model has %d variables (another model "
                        "size, class count or width?)" % (source, len(values), len(model_vars)))
    feed = {}
    for var, value in zip(model_vars, values):
        shape = var.shape.as_list()
        if list(value.shape) != shape:
            if value.size != int(np.prod(shape)):
                raise UserError("%s: weight of shape %s does not fit variable %s %s"
                                % (source, list(value.shape), var.op.name, shape))
            value = value.reshape(shape)
        feed[var] = value
    assign(sess, feed)


def assign(sess, feed):
    """{variable: array} in one run: plain variables through their initializers with the values fed in (no new
    ops); variables mirrored by a distribution strategy (initializer is a group without inputs) through assigns."""
    mirrored = {var: tf.compat.v1.placeholder(var.dtype.base_dtype, var.shape) for var in feed
                if not var.initializer.inputs}
    ops = [var.assign(mirrored[var]) if var in mirrored else var.initializer for var in feed]
    sess.run(ops, {mirrored[var] if var in mirrored else var.initializer.inputs[1]: value
                   for var, value in feed.items()})
