import os


from common.tf_compat import tf
from npu_bridge import record


def allreduce(tensor, reduction, fusion=1, fusion_id=-1, group="hccl_world_group"):
    # hccl_ops.py allreduce -> HcomAllReduce (reduction in min/max/prod/sum)
    if reduction not in ("min", "max", "prod", "sum"):
        raise ValueError("Attr 'reduction' of 'HcomAllReduce' Op passed string '%s' not in: 'min', 'max', 'prod', "
                         "'sum'." % reduction)
    record("hccl_ops.allreduce", reduction=reduction)
    # One process stands for every rank: as if each rank held the same tensor, a sum is size times it.
    size = int(os.getenv("RANK_SIZE", "1")) if reduction == "sum" else 1
    return tensor * tf.cast(size, tensor.dtype) if size > 1 else tf.identity(tensor)


def broadcast(tensor, root_rank, fusion=2, fusion_id=0, group="hccl_world_group"):
    # hccl_ops.py broadcast -> HcomBroadcast, whose input is list(type): a list of tensors in, a list out
    if not isinstance(tensor, (list, tuple)):
        raise TypeError("Expected list for 'input' argument to 'HcomBroadcast' Op, not %r." % (tensor,))
    record("hccl_ops.broadcast", root_rank=root_rank, count=len(tensor))
    return [tf.identity(t) for t in tensor]
