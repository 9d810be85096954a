"""Loss scaling off Ascend, on both TensorFlow stacks (TF 2.x has no tf.contrib.mixed_precision).

Same interface, variable names and update rule as TF 1.15's tf.contrib.mixed_precision, so checkpoints with a
dynamic scale restore either way: a manager gives the scale (get_loss_scale) and updates it from whether the
step's gradients were finite (update_loss_scale); LossScaleOptimizer multiplies the loss by the scale, divides
the gradients by it, and skips the update when a gradient is NaN or infinite.
"""
from common.tf_compat import tf


class FixedLossScaleManager(object):
    def __init__(self, loss_scale):
        if loss_scale < 1:
            raise ValueError("loss scale must be at least 1.")
        self._loss_scale = tf.convert_to_tensor(loss_scale, tf.float32, name="loss_scale")

    def get_loss_scale(self):
        return self._loss_scale

    def update_loss_scale(self, finite_grads):
        del finite_grads
        return tf.no_op()


class ExponentialUpdateLossScaleManager(object):
    """Multiply the scale by incr_ratio after incr_every_n_steps finite steps in a row; multiply it by decr_ratio
    (not below 1) after decr_every_n_nan_or_inf overflowing steps in a row."""

    def __init__(self, init_loss_scale, incr_every_n_steps, decr_every_n_nan_or_inf=2, incr_ratio=2,
                 decr_ratio=0.8):
        self._incr_every_n_steps = incr_every_n_steps
        self._decr_every_n_nan_or_inf = decr_every_n_nan_or_inf
        self._incr_ratio = incr_ratio
        self._decr_ratio = decr_ratio

        def counter(name, value, dtype):
            return tf.compat.v1.Variable(value, name=name, dtype=dtype, trainable=False, use_resource=False)

        self._loss_scale = counter("loss_scale", init_loss_scale, tf.float32)
        self._good_steps = counter("good_steps", 0, tf.int32)
        self._bad_steps = counter("bad_steps", 0, tf.int32)

    def get_loss_scale(self):
        return self._loss_scale

    def update_loss_scale(self, finite_grads):
        def grow():
            good = self._good_steps + 1
            scaled = self._loss_scale * self._incr_ratio
            grown = tf.logical_and(good >= self._incr_every_n_steps, tf.math.is_finite(scaled))
            return tf.group(self._bad_steps.assign(0),
                            self._good_steps.assign(tf.where(grown, 0, good)),
                            self._loss_scale.assign(tf.where(grown, scaled, self._loss_scale)))

        def shrink():
            bad = self._bad_steps + 1
            shrunk = bad >= self._decr_every_n_nan_or_inf
            lowered = tf.maximum(1.0, self._loss_scale * self._decr_ratio)
            return tf.group(self._good_steps.assign(0),
                            self._bad_steps.assign(tf.where(shrunk, 0, bad)),
                            self._loss_scale.assign(tf.where(shrunk, lowered, self._loss_scale)))

        return tf.cond(finite_grads, grow, shrink)


class LossScaleOptimizer(tf.compat.v1.train.Optimizer):
    def __init__(self, opt, loss_scale_manager):
        super(LossScaleOptimizer, self).__init__(use_locking=False, name="LossScaleOptimizer")
        self._opt = opt
        self._loss_scale_manager = loss_scale_manager

    def compute_gradients(self, loss, var_list=None, **kwargs):
        scale = self._loss_scale_manager.get_loss_scale()
        grads_and_vars = self._opt.compute_gradients(loss * scale, var_list=var_list, **kwargs)
        inverse = 1.0 / scale

        def unscale(grad):
            if grad is None:
                return None
            if isinstance(grad, tf.IndexedSlices):
                return tf.IndexedSlices(grad.values * tf.cast(inverse, grad.values.dtype), grad.indices,
                                        grad.dense_shape)
            return grad * tf.cast(inverse, grad.dtype)

        return [(unscale(grad), var) for grad, var in grads_and_vars]

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        grads_and_vars = list(grads_and_vars)
        values = [g.values if isinstance(g, tf.IndexedSlices) else g for g, _ in grads_and_vars if g is not None]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in values]) if values else tf.constant(True)
        update_scale = self._loss_scale_manager.update_loss_scale(finite)
        applied = tf.cond(finite, lambda: self._opt.apply_gradients(grads_and_vars, global_step, name),
                          tf.no_op)
        return tf.group(update_scale, applied)

    # Slots and variables are the wrapped optimizer's (Saver, checkpoints, SWA).
    def get_slot(self, *args, **kwargs):
        return self._opt.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._opt.get_slot_names(*args, **kwargs)

    def variables(self):
        return self._opt.variables()
