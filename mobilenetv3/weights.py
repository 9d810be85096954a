"""Initial weights: one of our checkpoints, a keras.applications MobileNetV3 .h5 (ImageNet), or an upstream
xiaochus/MobileNetV3 Keras .h5.

Both Keras models create their weights in the order model.py creates the matching variant's variables (kernel,
bias, then gamma, beta, moving mean, moving variance per batch norm), so their files map onto our variables one
to one. Shapes are checked against the model before any array is read: a file may declare any size.
keras.applications' MobileNetV3Large/Small is the paper variant layer for layer; it holds the SE, head and
classifier layers as 1x1 convolutions where we hold dense [Cin, Cout] kernels.
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

Entry = collections.namedtuple("Entry", "layer weight shape")   # what the file declares; read_arrays reads


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
    assign_in_order(sess, model_vars, entries, path)
    print("loaded %d upstream Keras weight arrays from %s" % (len(entries), path), flush=True)


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
        last = [e.shape[-1] for e in entries if e.weight.startswith("Conv_1/kernel")]
        base = get_spec(self.model).last_conv if self.model in KERAS_BLOCKS.values() else 0
        self.alpha = round(float(last[0]) / base, 2) if last and base else None
        self.head = [e for e in entries if e.layer == KERAS_HEAD]
        self.logits = [e for e in entries if e.layer == KERAS_LOGITS]
        self.backbone = [e for e in entries if e.layer not in (KERAS_HEAD, KERAS_LOGITS)]

    @property
    def classes(self):
        return self.logits[-1].shape[-1] if self.logits else None

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
        if len(entries) == len(part) and all(_fits(e.shape, v) for e, v in zip(entries, part)):
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


def _fits(shape, var):
    wanted = var.shape.as_list()
    return list(shape) == wanted or (tuple(shape[:2]) == (1, 1) and list(shape[2:]) == wanted)


def _fit_all(variables, entries, source):
    """{variable: array} with 1x1-conv kernels [1, 1, Cin, Cout] reshaped onto our dense [Cin, Cout]; every shape
    is checked before the arrays are read."""
    for var, entry in zip(variables, entries):
        if not _fits(entry.shape, var):
            raise UserError("%s: %s %s does not fit %s %s: not a MobileNetV3 of this size"
                            % (source, entry.weight, list(entry.shape), var.op.name, var.shape.as_list()))
    values = read_arrays(source, entries)
    return {var: value.reshape(var.shape.as_list()) for var, value in zip(variables, values)}


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


def read_h5(path):
    """[Entry(layer, weight name, shape)] of a Keras .h5 (save_weights or full model.save), in layer order: what
    the file declares, no array read (read_arrays reads them once their shapes are known to fit)."""
    with _weight_group(path) as group:
        entries = []
        for layer, weight, dataset in _datasets(path, group):
            if getattr(dataset, "dtype", None) is None or dataset.dtype.kind not in "fiu":
                raise UserError("%s: %s is not an array of numbers: not a Keras weights file" % (path, weight))
            entries.append(Entry(layer, weight, tuple(dataset.shape)))
        return entries


def read_arrays(path, entries):
    """The float32 arrays of `entries` (from read_h5) of the file at `path`."""
    wanted = {(e.layer, e.weight) for e in entries}
    with _weight_group(path) as group:
        found = {(layer, weight): dataset for layer, weight, dataset in _datasets(path, group)
                 if (layer, weight) in wanted}
        try:
            return [np.asarray(found[(e.layer, e.weight)], dtype=np.float32) for e in entries]
        except (OSError, IOError, KeyError, ValueError, TypeError) as err:
            raise UserError("cannot read Keras weights %s (truncated or damaged?): %s" % (path, err))


class _weight_group(object):
    """with _weight_group(path) as group: the h5 group listing the layers (model_weights in a full model.save)."""

    def __init__(self, path):
        import h5py
        if not os.path.isfile(path):
            raise UserError("weights %s: no such file" % path)
        try:
            self.handle = h5py.File(path, "r")
        except (OSError, IOError) as err:
            raise UserError("cannot open Keras weights %s: %s" % (path, err))
        self.path = path

    def __enter__(self):
        group = self.handle["model_weights"] if "model_weights" in self.handle else self.handle
        if "layer_names" not in group.attrs:
            self.handle.close()
            raise UserError("%s has no Keras layer_names attribute: not a Keras weights file" % self.path)
        return group

    def __exit__(self, *exc_info):
        self.handle.close()
        return False


def _datasets(path, group):
    """(layer, weight name, h5py dataset) in layer order."""
    try:
        return [(_text(layer), _text(weight), group[_text(layer)][_text(weight)])
                for layer in group.attrs["layer_names"]
                for weight in group[_text(layer)].attrs.get("weight_names", [])]
    except (OSError, IOError, KeyError) as err:
        raise UserError("cannot read Keras weights %s (truncated or damaged?): %s" % (path, err))


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else value


def _size(shape):
    size = 1
    for dim in shape:   # Python ints: a declared 2^40 x 2^40 must not wrap around as numpy's int64 would
        size *= int(dim)
    return size


def assign_in_order(sess, model_vars, entries, source):
    """Assign the arrays of `entries` (read_h5 of the file `source`) to variables in creation order; 1x1-conv
    heads are reshaped onto our dense layers. Every shape is checked before any array is read."""
    if len(entries) != len(model_vars):
        raise UserError("%s holds %d weight arrays but the upstream-variant model has %d variables (another model "
                        "size, class count or width?)" % (source, len(entries), len(model_vars)))
    for var, entry in zip(model_vars, entries):
        shape = var.shape.as_list()
        if _size(entry.shape) != _size(shape):
            raise UserError("%s: weight of shape %s does not fit variable %s %s"
                            % (source, list(entry.shape), var.op.name, shape))
    values = read_arrays(source, entries)
    assign(sess, {var: value.reshape(var.shape.as_list()) for var, value in zip(model_vars, values)})


def assign(sess, feed):
    """{variable: array} in one run: plain variables through their initializers with the values fed in (no new
    ops); variables mirrored by a distribution strategy (initializer is a group without inputs) through assigns."""
    mirrored = {var: tf.compat.v1.placeholder(var.dtype.base_dtype, var.shape) for var in feed
                if not var.initializer.inputs}
    ops = [var.assign(mirrored[var]) if var in mirrored else var.initializer for var in feed]
    sess.run(ops, {mirrored[var] if var in mirrored else var.initializer.inputs[1]: value
                   for var, value in feed.items()})
