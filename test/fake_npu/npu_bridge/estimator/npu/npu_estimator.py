import os

from common import tf_compat
from common.tf_compat import tf
from npu_bridge import record
from npu_bridge.estimator.npu.npu_config import NPURunConfig


class NPUEstimator(tf.estimator.Estimator if tf_compat.has_estimator() else object):
    def __init__(self, model_fn=None, model_dir=None, config=None, params=None, job_start_file="",
                 warm_start_from=None):
        record("NPUEstimator", model_dir=model_dir)
        # npu_estimator.py __init__: an NPURunConfig is required
        if config is None or not isinstance(config, NPURunConfig):
            raise ValueError("`config` must be provided with type `NPUConfigs`")
        # npu_estimator.py __load_job_info -> npu_common.NPUBasics: JOB_ID from the environment, even on one device
        if not os.getenv("JOB_ID", ""):
            raise ValueError("Load job info failed, please check whether `JOB_ID` is set in environment variable")
        # npu_estimator.py __check_model_dir
        if model_dir and config.model_dir and model_dir != config.model_dir:
            raise ValueError("model_dir are set both in NPUEstimator and NPURunConfig, but with different values.")
        super(NPUEstimator, self).__init__(model_fn=model_fn, model_dir=model_dir, config=config, params=params,
                                           warm_start_from=warm_start_from)


NPUEstimatorSpec = tf.estimator.EstimatorSpec if tf_compat.has_estimator() else None
