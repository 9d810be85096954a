import tensorflow as tf

from npu_bridge import record


def broadcast(tensor, root_rank, fusion=2, fusion_id=0):
    record("hccl_ops.broadcast", root_rank=root_rank, count=len(tensor))
    return [tf.identity(t) for t in tensor]
