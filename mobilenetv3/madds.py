"""Multiply-adds per image counted from a built graph, the way the paper counts them (convolutions and FC only)."""
import numpy as np
from common.tf_compat import tf


def _static(shape):
    dims = shape.as_list()
    if any(d is None for d in dims[1:]):
        raise ValueError("need static shapes to count multiply-adds, got %s" % (dims,))
    return dims


def count_madds(graph, scope=""):
    """Multiply-adds for one input image over the Conv2D, DepthwiseConv2dNative and MatMul ops under `scope`.

    Batch norm, activations, SE scaling and residual additions are left out, as in the paper's numbers.
    """
    total = 0
    for op in graph.get_operations():
        if not op.name.startswith(scope):
            continue
        if op.type == "Conv2D":
            out = _static(op.outputs[0].shape)
            kh, kw, cin, _ = _static(op.inputs[1].shape)
            total += int(np.prod(out[1:])) * kh * kw * cin
        elif op.type == "DepthwiseConv2dNative":
            out = _static(op.outputs[0].shape)
            kh, kw, _, _ = _static(op.inputs[1].shape)
            total += int(np.prod(out[1:])) * kh * kw
        elif op.type == "MatMul":
            rows, cols = _static(op.inputs[1].shape)
            total += rows * cols
    return total


def model_madds(model, variant="paper", size=224, num_classes=1000, alpha=1.0):
    """Build the network on a 1-image placeholder in a fresh graph and count its multiply-adds."""
    from mobilenetv3.model import get_spec, mobilenet_v3
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [1, size, size, 3])
        mobilenet_v3(images, get_spec(model, variant), num_classes, alpha=alpha, training=False)
    return count_madds(graph, "MobilenetV3")
