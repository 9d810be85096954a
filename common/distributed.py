"""Data-parallel training over several devices or processes, on one of two existing engines.

- Ascend: one process per NPU, rank and size from RANK_ID / RANK_SIZE, the cluster from RANK_TABLE_FILE;
  gradients are all-reduced by NPUDistributedOptimizer (npu_session.wrap_optimizer(distributed=True)) and
  the starting weights broadcast from rank 0 with HCCL.
- CPU/GPU: TensorFlow's MultiWorkerMirroredStrategy (collective all-reduce over gRPC), configured by
  TF_CONFIG; it all-reduces gradients and starts every replica from the chief's initial values.

Both routes shard the input per rank and let rank 0 alone write checkpoints and summaries.
"""
import json
import os

from common import npu_session, tf_compat
from common.errors import UserError


class Cluster(object):
    """Where this process sits: `rank` of `size` workers, on route 'npu', 'collective' or 'single'."""

    def __init__(self, rank=0, size=1, route="single", device_id=0, workers=()):
        self.rank = rank
        self.size = size
        self.route = route
        self.device_id = device_id
        self.workers = tuple(workers)

    @property
    def is_chief(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.size > 1

    def shard(self, dataset):
        """Give each rank a disjoint 1/size of a tf.data dataset (shard before shuffling and batching)."""
        return dataset.shard(self.size, self.rank) if self.distributed else dataset

    def dataset_batch_size(self, per_worker_batch):
        """Batch size to give this rank's dataset so that each worker trains on per_worker_batch examples.

        Keras under TF 1.15's MultiWorkerMirroredStrategy takes a dataset's batch as the global batch and
        splits it across the replicas, so the collective route batches by per_worker_batch * size.
        """
        return per_worker_batch * self.size if self.route == "collective" else per_worker_batch

    def strategy(self):
        """MultiWorkerMirroredStrategy on the collective route, None otherwise (build the model under it)."""
        if self.route != "collective":
            return None
        from common.tf_compat import tf
        return tf.distribute.experimental.MultiWorkerMirroredStrategy(
            tf.distribute.experimental.CollectiveCommunication.RING)

    def describe(self):
        if not self.distributed:
            return "cluster: single process"
        engine = "HCCL on Ascend" if self.route == "npu" else "MultiWorkerMirroredStrategy"
        device = ", device %d" % self.device_id if self.route == "npu" else ""
        return "cluster: rank %d of %d (%s)%s" % (self.rank, self.size, engine, device)

    def __repr__(self):
        return "Cluster(rank=%d, size=%d, route=%r)" % (self.rank, self.size, self.route)


class DataParallel(object):
    """How a tf.Session training loop runs one step on this cluster.

        dp = DataParallel(cluster, npu_session.session_config(options, cluster.distributed))
        with dp.scope():
            loss = dp.run_step(step_fn, images, labels)   # step_fn builds loss and train op, returns the loss
        sess = dp.session(graph)

    step_fn must minimize `loss * dp.gradient_scale`: MultiWorkerMirroredStrategy sums the replicas' gradients,
    while NPUDistributedOptimizer (wrap_optimizer(distributed=True)) already averages them. One replica per
    process (one device per worker, as the launcher starts them).
    """

    def __init__(self, cluster, session_config):
        self.cluster = cluster
        self.config = session_config
        self.strategy = None
        self.target = ""
        if cluster.route == "collective":
            from common.tf_compat import tf
            self.strategy = cluster.strategy()
            self.strategy.configure(session_config=self.config, cluster_spec={"worker": list(cluster.workers)},
                                    task_type="worker", task_id=cluster.rank)
            self.config = self.strategy.update_config_proto(self.config)
            self._server = tf.distribute.Server(tf.train.ClusterSpec({"worker": list(cluster.workers)}),
                                                job_name="worker", task_index=cluster.rank, config=self.config,
                                                start=True)
            self.target = self._server.target

    @property
    def gradient_scale(self):
        return 1.0 / self.cluster.size if self.strategy is not None else 1.0

    def scope(self):
        """Build the model, optimizer and step inside this scope (variables mirrored on the collective route)."""
        if self.strategy is not None:
            return self.strategy.scope()
        import contextlib
        return contextlib.suppress()

    def run_step(self, step_fn, *inputs):
        """Call step_fn(*inputs) on every replica; returns its output (a tensor or a tuple of scalars)
        averaged over the replicas."""
        if self.strategy is None:
            return step_fn(*inputs)
        from common.tf_compat import tf
        per_replica = tf_compat.run_on_replicas(self.strategy, step_fn, inputs)
        return tf.nest.map_structure(
            lambda value: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None), per_replica)

    def session(self, graph=None):
        from common.tf_compat import tf
        return tf.compat.v1.Session(target=self.target, graph=graph, config=self.config)


def _int_env(env, name, default):
    text = env.get(name, "")
    if text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise UserError("%s must be an integer, got %r" % (name, text))


def cluster_from_env(env=None):
    """Read the cluster from the environment: RANK_* on Ascend, TF_CONFIG elsewhere, else single process."""
    env = os.environ if env is None else env
    if npu_session.on_npu():
        size = _int_env(env, "RANK_SIZE", 1)
        rank = _int_env(env, "RANK_ID", 0)
        device = _int_env(env, "ASCEND_DEVICE_ID", rank)
        if size < 1 or not 0 <= rank < size:
            raise UserError("RANK_ID=%d is not within RANK_SIZE=%d" % (rank, size))
        if size > 1:
            table = env.get("RANK_TABLE_FILE", "")
            devices = read_rank_table(table)
            if len(devices) != size:
                raise UserError("RANK_SIZE=%d but rank table %s lists %d devices" % (size, table, len(devices)))
        return Cluster(rank, size, "npu" if size > 1 else "single", device)
    if env.get("TF_CONFIG"):
        try:
            config = json.loads(env["TF_CONFIG"])
            workers = config["cluster"]["worker"]
            rank = int(config["task"]["index"])
            task_type = config["task"]["type"]
        except (ValueError, KeyError, TypeError):
            raise UserError("TF_CONFIG is not of the form {\"cluster\": {\"worker\": [...]}, \"task\": "
                            "{\"type\": \"worker\", \"index\": N}}: %s" % env["TF_CONFIG"][:200])
        if task_type != "worker" or not 0 <= rank < len(workers):
            raise UserError("TF_CONFIG task %s %d is not one of the %d workers" % (task_type, rank, len(workers)))
        return Cluster(rank, len(workers), "collective" if len(workers) > 1 else "single", workers=workers)
    return Cluster()


def read_rank_table(path):
    """Device ids listed in an Ascend rank table (format 1.0 `server_list`, or the older `group_list`)."""
    if not path:
        raise UserError("RANK_TABLE_FILE is not set: multi-device Ascend training needs a rank table")
    try:
        with open(path) as f:
            table = json.load(f)
    except (IOError, OSError) as err:
        raise UserError("cannot read rank table %s: %s" % (path, err.strerror or err))
    except ValueError as err:
        raise UserError("rank table %s is not valid JSON: %s" % (path, err))
    try:
        if "server_list" in table:
            devices = [d["device_id"] for server in table["server_list"] for d in server["device"]]
        else:
            devices = [d["device_id"] for group in table["group_list"] for inst in group["instance_list"]
                       for d in inst["devices"]]
    except (KeyError, TypeError):
        raise UserError("rank table %s has neither server_list[].device[].device_id nor "
                        "group_list[].instance_list[].devices[].device_id" % path)
    if not devices:
        raise UserError("rank table %s lists no devices" % path)
    return [int(d) for d in devices]


def save_dir(cluster, model_dir):
    """Where this rank saves checkpoints: model_dir on rank 0, a private scratch directory elsewhere.

    Under MultiWorkerMirroredStrategy every rank must run each save: reading the batch-norm moving statistics
    (sync-on-read variables) is an all-reduce, and a save run by rank 0 alone waits forever for the others.
    On Ascend a rank may skip saving; if it saves, it must not write into rank 0's directory either.
    The scratch copies are deleted when the process exits; only rank 0's checkpoints are kept.
    """
    if cluster.is_chief:
        return model_dir
    import atexit
    import shutil
    import tempfile
    scratch = tempfile.mkdtemp(prefix="rank%d_scratch_" % cluster.rank)
    atexit.register(shutil.rmtree, scratch, True)
    return os.path.join(scratch, os.path.basename(os.path.normpath(model_dir)))
