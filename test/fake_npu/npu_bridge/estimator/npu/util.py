from npu_bridge import record


def set_iteration_per_loop(sess, train_op, iterations_per_loop=1):
    record("set_iteration_per_loop", iterations_per_loop=iterations_per_loop)
    return train_op
