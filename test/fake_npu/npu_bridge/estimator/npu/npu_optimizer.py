import os


from common.tf_compat import tf
from npu_bridge import record
from npu_bridge.estimator.npu.npu_common import NPUBasics
from npu_bridge.hccl import hccl_ops


def allreduce(tensor, average=True):
    # npu_optimizer.py allreduce: the rank size comes from NPUBasics (JOB_ID), the sum from HCCL
    size = NPUBasics("").size()
    summed = hccl_ops.allreduce(tensor, "sum")
    return tf.div(summed, tf.cast(size, tensor.dtype)) if average else summed


class NPUDistributedOptimizer(tf.compat.v1.train.Optimizer):
    # npu_optimizer.py NPUDistributedOptimizer(optimizer, is_weight_update_sharding=False, name=None)
    def __init__(self, optimizer, is_weight_update_sharding=False, name=None):
        record("NPUDistributedOptimizer", optimizer=optimizer)
        self._optimizer = optimizer
        super(NPUDistributedOptimizer, self).__init__(name=name or "Distributed" + type(optimizer).__name__,
                                                      use_locking=False)

    def compute_gradients(self, *args, **kwargs):
        gradients = self._optimizer.compute_gradients(*args, **kwargs)
        rank_size = os.getenv("RANK_SIZE")   # r1.11.0; master: util.get_ranksize(), same values
        if rank_size is None or int(rank_size) <= 1:
            return gradients
        with tf.name_scope(self._name + "_Allreduce"):
            return [(allreduce(g, True) if g is not None else None, v) for g, v in gradients]

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        return self._optimizer.apply_gradients(grads_and_vars, global_step, name)

    def get_slot(self, *args, **kwargs):
        return self._optimizer.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._optimizer.get_slot_names(*args, **kwargs)

    def variables(self, *args, **kwargs):
        return self._optimizer.variables(*args, **kwargs)
