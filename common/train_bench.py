"""Training-step throughput on a batch made in the graph (the step alone, no input pipeline), for benchmarks
that compare TensorFlow stacks and precisions on one machine."""
import time

import numpy as np

from common import npu_session
from common.tf_compat import tf


def images_per_second(build_loss, batch, options, steps=20, warmup=5, seed=0):
    """Median images/s of `steps` Adam steps after `warmup` ones; build_loss() builds the model's loss in the
    default graph. The session prints its device and precision line first."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        loss = build_loss()
        updates = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        with tf.control_dependencies(updates):
            train = tf.compat.v1.train.AdamOptimizer(1e-3).minimize(loss)
        with npu_session.new_session(options, graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            times = []
            for i in range(warmup + steps):
                start = time.perf_counter()
                sess.run(train)
                if i >= warmup:
                    times.append(time.perf_counter() - start)
    return batch / float(np.median(times))
