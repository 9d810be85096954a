"""The Ascend run options: their declaration (the flags every script and wrapper takes) and NpuOptions, the
validated values. Imports no TensorFlow and no npu_bridge: `--help` and flag errors answer without loading them.

What the options do on each route lives in common/npu_session.py (the NPU route) and common/fallback.py (CPU/GPU).
"""
import json
import os

from common.errors import UserError
from common.options import Option

PRECISION_MODES = ("allow_fp32_to_fp16", "force_fp16", "must_keep_origin_dtype", "allow_mix_precision")
# tf_adapter/util/npu_attrs.cc (Ascend/tensorflow ge_dev): kPrecisionModeV2List and CheckOpImplMode's list.
PRECISION_MODES_V2 = ("fp16", "origin", "cube_fp16in_fp32out", "mixed_float16", "mixed_bfloat16")
OP_IMPL_MODES = ("high_precision", "high_performance", "high_precision_for_all", "high_performance_for_all")
# npu_attrs.cc: modify_mixlist is taken only under these modes ("modify_mixlist is assigned, please ensure ...").
MIXLIST_MODES = ("allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16", "mixed_float16",
                 "mixed_bfloat16")
# The adapter's precision controls: flag (= NPURunConfig keyword = session parameter_map key) -> what it takes.
PRECISION_CONTROLS = ("precision_mode_v2", "modify_mixlist", "op_select_implmode", "customize_dtypes",
                      "fusion_switch_file")
PRECISION_FILES = ("modify_mixlist", "customize_dtypes", "fusion_switch_file")
# The adapter's distributed optimizer and NPUEstimator read the job id from JOB_ID; the ModelZoo scripts use this.
DEFAULT_JOB_ID = "10087"

# Defaults follow the Ascend model zoo wrappers. Order: as the wrappers pass them on.
ASCEND_FLAGS = (
    Option("precision_mode", "str", "allow_fp32_to_fp16",
           "Ascend precision mode: " + "/".join(PRECISION_MODES) + " (fp32 compute off Ascend)"),
    Option("loss_scale", "str", "off", "loss scaling: off, dynamic, or a positive fixed scale such as 1024"),
    Option("iterations_per_loop", "int", 1, "training steps per session call: the device loop on Ascend, an in-graph "
           "loop off Ascend (models that have one; the log's device line says)"),
    Option("over_dump", "bool", False, "dump overflowing operators (Ascend only)"),
    Option("data_dump_flag", "bool", False, "dump operator data (Ascend only)"),
    Option("data_dump_step", "str", "10", "steps to dump, e.g. 10 or 0|5|10 (Ascend only)"),
    Option("dump_path", "str", "", "directory for dumps and profiling output (default ./npu_dump)"),
    Option("profiling", "bool", False, "collect Ascend profiling data"),
    Option("profiling_options", "str", "",
           "CANN profiling options as a JSON string (default: training and task trace)"),
    # Porting precision (common.precision): one step's op outputs, and the adapter's precision controls.
    Option("deterministic", "bool", False, "derandomised run (fixed seed; no shuffle, dropout or random "
           "augmentation) for comparing dumps; on Ascend also the adapter's deterministic computing"),
    Option("reference_dump", "str", "", "directory for every op output of step --reference_dump_step (Ascend's "
           ".npy layout off Ascend; the adapter's data dump of that step, dump_mode=output, on Ascend)"),
    Option("reference_dump_step", "int", 0,
           "the step --reference_dump writes, counted from 0 as the adapter's dump_step"),
    Option("precision_mode_v2", "str", "", "Ascend precision_mode_v2 (" + "/".join(PRECISION_MODES_V2) + "), "
           "instead of --precision_mode; off Ascend only 'origin' (fp32 here)"),
    Option("modify_mixlist", "str", "",
           "JSON file moving ops into/out of fp16 under a mixed precision mode (Ascend only)"),
    Option("op_select_implmode", "str", "", "operator implementation: " + "/".join(OP_IMPL_MODES) + " (Ascend only)"),
    Option("customize_dtypes", "str", "", "file of per-op compute dtypes (Ascend only)"),
    Option("fusion_switch_file", "str", "", "JSON file switching graph/UB fusions off (Ascend only)"),
    Option("xla", "bool", False, "XLA auto-clustering of the training graph (CPU/GPU only: on Ascend the graph "
           "engine compiles the graph)"),
)

# The wrappers set the dump directory under their output directory themselves, and take no profiling options.
NOT_IN_WRAPPERS = ("dump_path", "profiling_options")
# Paths the wrappers make absolute: their scripts run from the model directory.
PATH_FLAGS = ("reference_dump",) + PRECISION_FILES
# --xla: auto-clustering leaves CPU ops alone unless this XLA flag is on.
XLA_CPU_FLAG = "--tf_xla_cpu_global_jit"


def request_xla_cpu_clustering():
    """Put XLA_CPU_FLAG into TF_XLA_FLAGS. TensorFlow parses that variable once per process, on its first use
    (TF 2.x: when the devices are first listed): the scripts call this when their flags are parsed."""
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if XLA_CPU_FLAG not in flags.split():
        os.environ["TF_XLA_FLAGS"] = (flags + " " + XLA_CPU_FLAG).strip()


class NpuOptions(object):
    """Ascend-specific run options, validated on construction.

    loss_scale: None (off), 'dynamic', or a positive number (fixed scale).
    dump_path: directory for data/overflow dumps; profiling_options: the JSON string CANN expects.
    """

    def __init__(self, precision_mode="allow_fp32_to_fp16", loss_scale=None, iterations_per_loop=1,
                 over_dump=False, data_dump_flag=False, data_dump_step="10", dump_path="",
                 profiling=False, profiling_options="", enable_data_pre_proc=True, reference_dump="",
                 reference_dump_step=0, precision_mode_v2="", modify_mixlist="", op_select_implmode="",
                 customize_dtypes="", fusion_switch_file="", deterministic=False, xla=False):
        self.precision_mode = precision_mode
        self.loss_scale = parse_loss_scale(loss_scale)
        self.iterations_per_loop = iterations_per_loop
        self.over_dump = bool(over_dump)
        self.data_dump_flag = bool(data_dump_flag)
        self.data_dump_step = str(data_dump_step)
        self.dump_path = os.path.abspath(dump_path or os.path.join(os.getcwd(), "npu_dump"))
        self.profiling = bool(profiling)
        self.profiling_options = profiling_options or json.dumps(
            {"output": os.path.join(self.dump_path, "profiling"), "training_trace": "on", "task_trace": "on"})
        self.enable_data_pre_proc = bool(enable_data_pre_proc)
        self.reference_dump = os.path.abspath(reference_dump) if reference_dump else ""
        self.reference_dump_step = reference_dump_step
        self.precision_mode_v2 = precision_mode_v2 or ""
        self.modify_mixlist = os.path.abspath(modify_mixlist) if modify_mixlist else ""
        self.op_select_implmode = op_select_implmode or ""
        self.customize_dtypes = os.path.abspath(customize_dtypes) if customize_dtypes else ""
        self.fusion_switch_file = os.path.abspath(fusion_switch_file) if fusion_switch_file else ""
        self.deterministic = bool(deterministic)
        self.xla = bool(xla)
        self._validate()
        self._validate_precision()

    def _validate(self):
        if self.precision_mode not in PRECISION_MODES:
            raise UserError("unknown precision_mode %r: choose one of %s"
                            % (self.precision_mode, ", ".join(PRECISION_MODES)))
        if isinstance(self.iterations_per_loop, bool) or not isinstance(self.iterations_per_loop, int) \
                or self.iterations_per_loop < 1:
            raise UserError("iterations_per_loop must be a positive integer, got %r" % (self.iterations_per_loop,))
        if self.profiling:
            try:
                parsed = json.loads(self.profiling_options)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                raise UserError("profiling_options must be a JSON object, got %r" % self.profiling_options)
        # CANN's DumpConfig: data dump and overflow detection are exclusive in one run.
        if self.data_dump_flag and self.over_dump:
            raise UserError("data_dump_flag and over_dump cannot be on together (CANN dumps one kind per run): "
                            "choose one")

    def _validate_precision(self):
        if isinstance(self.reference_dump_step, bool) or not isinstance(self.reference_dump_step, int) \
                or self.reference_dump_step < 0:
            raise UserError("reference_dump_step must be a step number >= 0, got %r" % (self.reference_dump_step,))
        if self.reference_dump and self.data_dump_flag:
            raise UserError("reference_dump and data_dump_flag both set the adapter's data dump: choose one")
        if self.reference_dump and self.over_dump:
            raise UserError("reference_dump and over_dump cannot be on together (CANN dumps one kind per run)")
        if self.precision_mode_v2 and self.precision_mode_v2 not in PRECISION_MODES_V2:
            raise UserError("unknown precision_mode_v2 %r: choose one of %s"
                            % (self.precision_mode_v2, ", ".join(PRECISION_MODES_V2)))
        if self.op_select_implmode and self.op_select_implmode not in OP_IMPL_MODES:
            raise UserError("unknown op_select_implmode %r: choose one of %s"
                            % (self.op_select_implmode, ", ".join(OP_IMPL_MODES)))
        for name in PRECISION_FILES:
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise UserError("%s: no such file %s" % (name, path))
        for name in ("modify_mixlist", "fusion_switch_file"):
            _check_json(name, getattr(self, name))
        mode = self.precision_mode_v2 or self.precision_mode
        if self.modify_mixlist and mode not in MIXLIST_MODES:
            raise UserError("modify_mixlist needs a mixed precision mode (precision_mode=allow_mix_precision or "
                            "precision_mode_v2=mixed_float16/mixed_bfloat16), not %s" % mode)

    def precision_controls(self):
        """{name: value} of the adapter's precision controls this run sets."""
        return {name: getattr(self, name) for name in PRECISION_CONTROLS if getattr(self, name)}

    def output_directories(self):
        """The directories the adapter expects to exist already: dump_path, and the profiling output."""
        dirs = [self.dump_path] if (self.data_dump_flag or self.over_dump) else []
        if self.reference_dump:
            dirs.append(self.reference_dump)
        if self.profiling:
            output = json.loads(self.profiling_options).get("output")
            dirs.append(os.path.abspath(output) if output else self.dump_path)
        return dirs

    def __repr__(self):
        return "NpuOptions(%s)" % ", ".join("%s=%r" % kv for kv in sorted(vars(self).items()))


def _check_json(name, path):
    if not path:
        return
    try:
        with open(path) as f:
            json.load(f)
    except (OSError, ValueError) as err:
        raise UserError("%s: %s is not a readable JSON file (%s)" % (name, path, str(err).splitlines()[0]))


def parse_loss_scale(value):
    """'off'/'false'/None -> None, 'dynamic'/'true' -> 'dynamic', a number >= 1 -> float."""
    if value is None or value is False:
        return None
    if value is True:
        return "dynamic"
    text = str(value).strip().lower()
    if text in ("", "off", "false", "none", "no"):
        return None
    if text in ("dynamic", "true", "on", "yes"):
        return "dynamic"
    try:
        scale = float(text)
    except ValueError:
        raise UserError("loss_scale must be 'off', 'dynamic' or a number >= 1, got %r" % (value,))
    # Both FixedLossScaleManager (npu_bridge's and TF's) reject a scale below 1.
    if not scale >= 1 or scale == float("inf"):
        raise UserError("loss_scale must be a finite number >= 1, got %r" % (value,))
    return scale
