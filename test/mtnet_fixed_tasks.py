"""Worker for test_mtnet.py: MT-net meta-training on fixed sinusoid tasks, alone or as one rank of several.

    python test/mtnet_fixed_tasks.py --out DIR --tasks 8 [--steps 5]   # alone, or under common.launch:
                                                                       # rank r trains on its 8/size tasks
Resumes from DIR/logs (copy one starting checkpoint there so that runs start from the same weights: a graph
built under MultiWorkerMirroredStrategy draws other initial values than a single process's for the same seed).
Every rank (or the single process, on all tasks) writes its final weights to DIR/weights_<rank>.npz.
"""
import argparse
import os

import numpy as np

from common import distributed
from common.tf_compat import tf
from mtnet import tasks as T
from mtnet import trainer


def fixed_tasks(first, count, total, num_points):
    """Tasks first..first+count-1 of one fixed set of `total` tasks (the same on every rank)."""
    rng = np.random.RandomState(0)
    amp = rng.uniform(0.1, 5.0, [total, 1, 1])
    phase = rng.uniform(0, np.pi, [total, 1, 1])
    x = rng.uniform(-5, 5, [total, num_points, 1])
    y = amp * np.sin(x - phase)
    pick = slice(first, first + count)
    return T.RegressionTasks(tf.constant(x[pick], tf.float32), tf.constant(y[pick], tf.float32),
                             {"amp": tf.constant(amp[pick]), "phase": tf.constant(phase[pick])})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--tasks", type=int, default=8, help="tasks of one meta-update, over all ranks")
    parser.add_argument("--steps", type=int, default=5, help="train until this iteration (resuming from --out)")
    parser.add_argument("--logit_init", type=float, default=30.0, help="30: masks are all ones (deterministic)")
    args = parser.parse_args()
    cluster = distributed.cluster_from_env()
    per_rank = args.tasks // cluster.size
    cfg = trainer.default_config(
        datasource="sinusoid", meta_batch_size=per_rank, update_lr=0.01, norm="None", update_batch_size=10,
        use_T=True, use_M=True, share_M=True, logit_init=args.logit_init, metatrain_iterations=args.steps,
        log=False, print_interval=1, save_interval=1000, logdir=os.path.join(args.out, "logs"))

    def source(batch, num_points):
        assert batch == per_rank
        return fixed_tasks(cluster.rank * per_rank, per_rank, args.tasks, num_points)

    result = trainer.run(cfg, cluster, task_source=source)
    np.savez(os.path.join(args.out, "weights_%d.npz" % cluster.rank), **result["weights"])


if __name__ == "__main__":
    main()
