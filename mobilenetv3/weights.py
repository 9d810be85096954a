"""Initial weights: from one of our checkpoints (fine-tuning) or from an upstream xiaochus/MobileNetV3 Keras .h5.

Upstream's Keras model creates its weights in the same order as model.py's upstream variant creates variables
(kernel, bias, then gamma, beta, moving mean, moving variance per batch norm), so an .h5 written by its
`model.save_weights` / ModelCheckpoint maps onto our variables one to one; shapes are checked on the way.
"""
import os

import numpy as np

from common.errors import UserError
from common.tf_compat import tf


def load_initial(sess, path, model_vars, variant):
    """Assign initial values to `model_vars` from `path`; prints what was loaded."""
    if path.endswith(".h5") or path.endswith(".hdf5"):
        if variant != "upstream":
            raise UserError("%s is a Keras .h5 file: upstream weights need --variant=upstream" % path)
        values = keras_h5_weights(path)
        assign_in_order(sess, model_vars, values, path)
        print("loaded %d upstream Keras weight arrays from %s" % (len(values), path), flush=True)
        return
    load_checkpoint_matching(sess, path, model_vars)


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
        name = var.op.name
        if name in saved and list(saved[name]) == var.shape.as_list():
            matched[name] = var
        else:
            skipped.append(name)
    if not matched:
        raise UserError("checkpoint %s shares no variable with this model (another model or variant?)" % path)
    tf.compat.v1.train.Saver(var_list=matched).restore(sess, path)
    print("initialised %d variables from %s%s" % (len(matched), path, "; kept fresh: " + ", ".join(skipped)
                                                  if skipped else ""), flush=True)


def keras_h5_weights(path):
    """The weight arrays of a Keras .h5 (save_weights or full model.save), in layer order."""
    import h5py
    try:
        handle = h5py.File(path, "r")
    except (OSError, IOError) as err:
        raise UserError("cannot open Keras weights %s: %s" % (path, err))
    with handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        if "layer_names" not in group.attrs:
            raise UserError("%s has no Keras layer_names attribute: not a Keras weights file" % path)
        values = []
        for layer in group.attrs["layer_names"]:
            layer_group = group[_text(layer)]
            for weight in layer_group.attrs.get("weight_names", []):
                values.append(np.asarray(layer_group[_text(weight)]))
    return values


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
    # One run of the variables' initializers with the values fed in: no new ops, one executor.
    sess.run([var.initializer for var in feed], {var.initializer.inputs[1]: value for var, value in feed.items()})
