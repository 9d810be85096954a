# The real classes subclass tf.contrib.mixed_precision's, which common.loss_scale reproduces on both TF stacks.
from common import loss_scale
from npu_bridge import record


class FixedLossScaleManager(loss_scale.FixedLossScaleManager):
    def __init__(self, loss_scale, enable_overflow_check=True):
        record("FixedLossScaleManager", loss_scale=loss_scale)
        # npu_loss_scale_manager.py FixedLossScaleManager.__init__
        if loss_scale < 1:
            raise ValueError("loss scale must be at least 1.")
        self._enable_overflow_check = enable_overflow_check
        super(FixedLossScaleManager, self).__init__(loss_scale)

    def get_enable_overflow_check(self):
        return self._enable_overflow_check


class ExponentialUpdateLossScaleManager(loss_scale.ExponentialUpdateLossScaleManager):
    # npu_loss_scale_manager.py: no value checks; the TF parent creates its variables (graph not finalized).
    def __init__(self, init_loss_scale, incr_every_n_steps, decr_every_n_nan_or_inf=2, incr_ratio=2,
                 decr_ratio=0.8):
        record("ExponentialUpdateLossScaleManager", init_loss_scale=init_loss_scale,
               incr_every_n_steps=incr_every_n_steps, decr_every_n_nan_or_inf=decr_every_n_nan_or_inf,
               incr_ratio=incr_ratio, decr_ratio=decr_ratio)
        super(ExponentialUpdateLossScaleManager, self).__init__(
            init_loss_scale, incr_every_n_steps, decr_every_n_nan_or_inf, incr_ratio, decr_ratio)
