import tensorflow as tf

from npu_bridge import record


def dropout(x, keep_prob, noise_shape=None, seed=None, name=None):
    record("npu_ops.dropout", keep_prob=keep_prob)
    return tf.nn.dropout(x, rate=1.0 - keep_prob, noise_shape=noise_shape, seed=seed, name=name)
