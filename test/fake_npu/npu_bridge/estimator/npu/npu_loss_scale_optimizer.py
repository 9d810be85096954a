from common import loss_scale
from npu_bridge import record


class NPULossScaleOptimizer(loss_scale.LossScaleOptimizer):
    # npu_loss_scale_optimizer.py: (opt, loss_scale_manager, is_distributed=False), no checks; the overflow
    # test uses the NPU float-status ops, here TF's finite check.
    def __init__(self, opt, loss_scale_manager, is_distributed=False):
        record("NPULossScaleOptimizer", opt=opt, loss_scale_manager=loss_scale_manager,
               is_distributed=is_distributed)
        super(NPULossScaleOptimizer, self).__init__(opt, loss_scale_manager)
