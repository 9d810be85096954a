import tensorflow as tf

from npu_bridge import record


class DumpConfig(object):
    def __init__(self, enable_dump=False, dump_path=None, dump_step=None, dump_mode="output",
                 enable_dump_debug=False, dump_debug_mode="all"):
        self.kwargs = dict(enable_dump=enable_dump, dump_path=dump_path, dump_step=dump_step,
                           dump_mode=dump_mode, enable_dump_debug=enable_dump_debug,
                           dump_debug_mode=dump_debug_mode)
        record("DumpConfig", **self.kwargs)


class ProfilingConfig(object):
    def __init__(self, enable_profiling=False, profiling_options=None):
        self.kwargs = dict(enable_profiling=enable_profiling, profiling_options=profiling_options)
        record("ProfilingConfig", **self.kwargs)


NPU_KEYWORDS = ("precision_mode", "iterations_per_loop", "enable_data_pre_proc", "hcom_parallel",
                "dump_config", "profiling_config", "mix_compile_mode")


class NPURunConfig(tf.estimator.RunConfig):
    def __init__(self, **kwargs):
        record("NPURunConfig", **kwargs)
        self.npu_kwargs = {k: kwargs.pop(k) for k in NPU_KEYWORDS if k in kwargs}
        super(NPURunConfig, self).__init__(**kwargs)
