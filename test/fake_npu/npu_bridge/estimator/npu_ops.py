import numbers


from common.tf_compat import tf
from npu_bridge import record


def dropout(x, keep_prob, noise_shape=None, seed=None, name=None):
    record("npu_ops.dropout", keep_prob=keep_prob)
    # npu_ops.py dropout: a floating x, keep_prob in (0, 1]; a float 1.0 returns x itself
    x = tf.convert_to_tensor(x, name="x")
    if not x.dtype.is_floating:
        raise ValueError("x must be a floating point tensor. Got a %s tensor instead." % x.dtype)
    if isinstance(keep_prob, numbers.Real) and not 0 < keep_prob <= 1.0:
        raise ValueError("keep_prob must be a float value or a scalar tensor in the range (0, 1], got %g" % keep_prob)
    if isinstance(keep_prob, float) and keep_prob == 1.0:
        return x
    return tf.nn.dropout(x, rate=1.0 - keep_prob, noise_shape=noise_shape, seed=seed, name=name)
