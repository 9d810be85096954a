import tensorflow as tf

from npu_bridge import record


class NPUEstimator(tf.estimator.Estimator):
    def __init__(self, model_fn=None, model_dir=None, config=None, params=None, **kwargs):
        record("NPUEstimator", model_dir=model_dir)
        super(NPUEstimator, self).__init__(model_fn=model_fn, model_dir=model_dir, config=config, params=params)


NPUEstimatorSpec = tf.estimator.EstimatorSpec
