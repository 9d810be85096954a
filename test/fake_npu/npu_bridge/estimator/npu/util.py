
from common.tf_compat import tf
from npu_bridge import record
from npu_bridge.estimator.npu.npu_config import check_positive_integer


def create_or_get_var(var_name):
    # util.py create_or_get_var: an int64 resource variable in the default graph (which must not be finalized)
    graph = tf.compat.v1.get_default_graph()
    collection = "npu_runconfig_" + var_name
    existing = graph.get_collection(collection)
    if len(existing) > 1:
        raise RuntimeError("Multiple var in collection.")
    if existing:
        return existing[0]
    with tf.compat.v1.variable_scope("npu_runconfig", reuse=tf.compat.v1.AUTO_REUSE):
        return tf.compat.v1.get_variable(var_name, initializer=tf.zeros_initializer(), shape=[], dtype=tf.int64,
                                         trainable=False, use_resource=True,
                                         collections=[collection, tf.compat.v1.GraphKeys.LOCAL_VARIABLES])


def set_iteration_per_loop(sess, train_op, iterations_per_loop=1):
    record("set_iteration_per_loop", iterations_per_loop=iterations_per_loop)
    # util.py set_iteration_per_loop: an Operation (the message reads train_op.dtype: AttributeError otherwise)
    if not isinstance(train_op, tf.Operation):
        raise ValueError("The incoming 'train_op' type is '%s', and the need type is 'Operation'"
                         % train_op.dtype.name)
    check_positive_integer(iterations_per_loop, "iterations_per_loop")
    if iterations_per_loop == 1:
        return train_op
    # util.py: four variables created, then Variable.load(..., session=sess): a live session on this graph
    values = {"iterations_per_loop": iterations_per_loop - 1, "loop_cond": 0, "zero": 0, "one": 1}
    for name, value in values.items():
        create_or_get_var(name).load(value, session=sess)
    return tf.group(train_op, name="IterationOp")
