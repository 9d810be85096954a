from npu_bridge import record


def NPUDistributedOptimizer(optimizer):
    record("NPUDistributedOptimizer", optimizer=optimizer)
    return optimizer
