
from common import tf_compat
from common.tf_compat import tf
from npu_bridge import record

# NPURunConfig's own keywords besides RunConfig's (npu_config.py, r1.11.0 and master; master adds the last ten).
NPU_KEYWORDS = (
    "iterations_per_loop", "profiling_config", "enable_data_pre_proc", "precision_mode", "enable_reduce_precision",
    "variable_format_optimize", "mix_compile_mode", "hcom_parallel", "graph_memory_max_size",
    "variable_memory_max_size", "dump_config", "stream_max_parallel_num", "is_tailing_optimization",
    "horovod_mode", "graph_run_mode", "op_debug_level", "enable_scope_fusion_passes", "enable_exception_dump",
    "op_select_implmode", "optypelist_for_implmode", "dynamic_input_config", "aoe_mode", "work_path",
    "buffer_optimize", "enable_small_channel", "fusion_switch_file", "enable_compress_weight",
    "compress_weight_conf", "op_compiler_cache_mode", "op_compiler_cache_dir", "debug_dir", "hcom_multi_mode",
    "dynamic_input", "dynamic_graph_execute_mode", "dynamic_inputs_shape_range", "local_rank_id",
    "local_device_list", "session_device_id", "distribute_config", "modify_mixlist", "op_precision_mode",
    "device_type", "soc_config", "hccl_timeout", "op_wait_timeout", "op_execute_timeout", "HCCL_algorithm",
    "customize_dtypes", "op_debug_config", "memory_config", "experimental_config", "jit_compile",
    "topo_sorting_mode", "aoe_config_file", "insert_op_file", "external_weight", "stream_sync_timeout",
    "event_sync_timeout", "es_cluster_config", "deterministic", "frozen_variable", "variable_placement",
    "precision_mode_v2", "ac_parallel_enable")
RUN_CONFIG_KEYWORDS = ("model_dir", "tf_random_seed", "save_summary_steps", "save_checkpoints_steps",
                       "save_checkpoints_secs", "session_config", "keep_checkpoint_max",
                       "keep_checkpoint_every_n_hours", "log_step_count_steps", "distribute", "train_distribute",
                       "eval_distribute")


class DumpConfig(object):
    # npu_config.py DumpConfig: stores its arguments, checks nothing (the session passes check them).
    def __init__(self, enable_dump=False, dump_path=None, dump_step=None, dump_mode="output",
                 enable_dump_debug=False, dump_debug_mode="all", dump_data="tensor", dump_layer=None):
        self.kwargs = dict(enable_dump=enable_dump, dump_path=dump_path, dump_step=dump_step,
                           dump_mode=dump_mode, enable_dump_debug=enable_dump_debug,
                           dump_debug_mode=dump_debug_mode)
        record("DumpConfig", **self.kwargs)


class ProfilingConfig(object):
    # npu_config.py ProfilingConfig: no checks in any branch.
    def __init__(self, enable_profiling=False, profiling_options=None):
        self.kwargs = dict(enable_profiling=enable_profiling, profiling_options=profiling_options)
        record("ProfilingConfig", **self.kwargs)


def check_positive_integer(value, name):
    # util.py check_positive_integer
    if not isinstance(value, int):
        raise TypeError("%s must be int, got %s" % (name, type(value)))
    if value <= 0:
        raise ValueError("%s must be positive, got %d" % (name, value))


# The adapter is TF 1.15 only; on TF 2.16+ (no tf.estimator) the fake still imports, and the project refuses
# estimators there before it builds one.
_RunConfig = tf.estimator.RunConfig if tf_compat.has_estimator() else object


class NPURunConfig(_RunConfig):
    def __init__(self, **kwargs):
        unknown = set(kwargs) - set(NPU_KEYWORDS) - set(RUN_CONFIG_KEYWORDS)
        if unknown:   # npu_config.py NPURunConfig: a fixed keyword signature
            raise TypeError("__init__() got an unexpected keyword argument %r" % sorted(unknown)[0])
        record("NPURunConfig", **kwargs)
        check_positive_integer(kwargs.get("iterations_per_loop", 1), "iterations_per_loop")
        if not isinstance(kwargs.get("mix_compile_mode", False), bool):   # npu_config.py (ValueError in r1.11.0)
            raise ValueError('"mix_compile_mode" type must be bool')
        dump_config = kwargs.get("dump_config")
        if dump_config is not None and not isinstance(dump_config, DumpConfig):   # npu_config.py
            raise ValueError("`dump_config` must be provided with type `DumpConfig`")
        self.npu_kwargs = {k: kwargs.pop(k) for k in NPU_KEYWORDS if k in kwargs}
        # npu_config.py _get_save_checkpoints_steps: neither steps nor seconds given -> every 100 steps
        if kwargs.get("save_checkpoints_steps") is None and kwargs.get("save_checkpoints_secs") is None:
            kwargs["save_checkpoints_steps"] = 100
        kwargs.setdefault("save_checkpoints_secs", None)
        kwargs["experimental_distribute"] = kwargs.pop("distribute", None)
        super(NPURunConfig, self).__init__(**kwargs)
