import tensorflow as tf

from npu_bridge import record


class NPULossScaleOptimizer(tf.contrib.mixed_precision.LossScaleOptimizer):
    def __init__(self, opt, loss_scale_manager, is_distributed=False):
        record("NPULossScaleOptimizer", opt=opt, loss_scale_manager=loss_scale_manager,
               is_distributed=is_distributed)
        super(NPULossScaleOptimizer, self).__init__(opt, loss_scale_manager)
