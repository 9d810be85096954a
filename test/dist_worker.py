"""A tiny data-parallel training job for the distributed tests (run by common.launch, one per rank).

Trains a linear model with tf.keras under common.distributed's strategy on this rank's shard of a fixed
data set, saves the final weights to <out>/weights_<rank>.npy, and (rank 0 only) a checkpoint.
--combine K trains one process on the batches that K workers would see together.
"""
import argparse
import os

import numpy as np

from common import distributed, npu_session, tf_compat
from common.errors import main_guard
from common.tf_compat import tf

DATA = np.random.RandomState(0).randn(256, 4).astype(np.float32)
TARGET = (DATA @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)).astype(np.float32)


def dataset(rank, size, batch):
    ds = tf.data.Dataset.from_tensor_slices((DATA, TARGET)).shard(size, rank)
    return ds.batch(batch, drop_remainder=True).repeat()


def train_session_loop(args, cluster, ds):
    """The same training in a tf.Session loop through common.distributed.DataParallel."""
    dp = distributed.DataParallel(cluster, npu_session.session_config(npu_session.NpuOptions()))
    with dp.scope():
        inputs, targets = tf.compat.v1.data.make_one_shot_iterator(ds).get_next()
        # Each rank starts elsewhere; the strategy must start all from rank 0's values.
        start = np.full((4, 1), 0.25 + args.init_offset, np.float32)
        weights = tf.compat.v1.get_variable("w", initializer=tf.constant(start))
        optimizer = tf.compat.v1.train.GradientDescentOptimizer(args.lr)

        def step(x, y):
            loss = tf.reduce_mean(tf.square(tf.matmul(x, weights) - y))
            with tf.control_dependencies([optimizer.minimize(loss * dp.gradient_scale)]):
                return tf.identity(loss)
        loss = dp.run_step(step, inputs, targets)
        init = tf.compat.v1.global_variables_initializer()
    with dp.session() as sess:
        sess.run(init)
        for _ in range(args.steps):
            sess.run(loss)
        return sess.run(weights)


@main_guard
def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8, help="per-worker batch")
    parser.add_argument("--combine", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--loop", choices=("keras", "session"), default="keras")
    parser.add_argument("--init_offset", type=float, default=0.0, help="session loop: shift of the initial weights")
    parser.add_argument("--die_at_step", type=int, default=-1, help="rank 1 exits abruptly at this step")
    args = parser.parse_args()
    cluster = distributed.cluster_from_env()
    print(cluster.describe(), flush=True)
    if args.combine:
        parts = [dataset(r, args.combine, args.batch) for r in range(args.combine)]
        ds = tf.data.Dataset.zip(tuple(parts)).map(
            lambda *pairs: (tf.concat([p[0] for p in pairs], 0), tf.concat([p[1] for p in pairs], 0)))
    else:
        batch = cluster.dataset_batch_size(args.batch) if args.loop == "keras" else args.batch
        ds = dataset(cluster.rank, cluster.size, batch)
        ds = tf_compat.without_auto_shard(ds)   # sharded explicitly above
    if args.loop == "session":
        save(args, cluster, train_session_loop(args, cluster, ds), None)
        return
    strategy = cluster.strategy()
    scope = strategy.scope() if strategy else tf.name_scope("")
    with scope:
        model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(4,), kernel_initializer="zeros")])
        model.compile(tf.keras.optimizers.SGD(args.lr), "mse")
    callbacks = []
    if cluster.rank == 1 and args.die_at_step >= 0:
        def die(batch, logs):
            if batch >= args.die_at_step:
                print("error: rank 1 dies at step %d" % batch, flush=True)
                os._exit(3)
        callbacks.append(tf.keras.callbacks.LambdaCallback(on_batch_end=die))
    model.fit(ds, epochs=1, steps_per_epoch=args.steps, verbose=0, callbacks=callbacks)
    save(args, cluster, model.get_weights()[0], model)


def save(args, cluster, weights, model):
    os.makedirs(args.out, exist_ok=True)
    np.save(os.path.join(args.out, "weights_%d.npy" % cluster.rank), weights)
    ckpt_dir = distributed.save_dir(cluster, os.path.join(args.out, "ckpt"))
    if model is not None:
        os.makedirs(ckpt_dir, exist_ok=True)
        model.save_weights(os.path.join(ckpt_dir, "model.ckpt"))
    print("done", flush=True)


if __name__ == "__main__":
    main()
