"""Session, run configuration and optimizer wrapping for Ascend NPUs, with a plain TensorFlow fallback.

Every train script asks this module, and only this module, for its device configuration. When
`npu_bridge` imports (an Ascend machine with the CANN TensorFlow adapter) the NPU route is used;
otherwise the same calls return ordinary TensorFlow objects, so model code has one path.
Set NPU_FALLBACK=1 to use the fallback even where npu_bridge is installed. On a host that is clearly an Ascend
host (CANN's environment variables are set) an npu_bridge that fails to import is an error, not a silent fallback.
"""
import importlib
import json
import logging
import os

from common import errors, loss_scale, tf_compat
from common.errors import UserError
from common.tf_compat import tf

log = logging.getLogger(__name__)

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
FALLBACK_ENV = "NPU_FALLBACK"
# Set by CANN's set_env.sh: their presence says this is an Ascend host, where a CPU fallback is never silent.
CANN_ENV = ("ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME", "ASCEND_OPP_PATH", "ASCEND_AICPU_PATH")
# The adapter's distributed optimizer and NPUEstimator read the job id from JOB_ID; the ModelZoo scripts use this.
DEFAULT_JOB_ID = "10087"
# Dynamic loss scaling as the Ascend model zoo configures it.
DYNAMIC_LOSS_SCALE = dict(init_loss_scale=2 ** 32, incr_every_n_steps=1000, decr_every_n_nan_or_inf=2,
                          decr_ratio=0.5)


class NpuOptions(object):
    """Ascend-specific run options, validated on construction.

    loss_scale: None (off), 'dynamic', or a positive number (fixed scale).
    dump_path: directory for data/overflow dumps; profiling_options: the JSON string CANN expects.
    """

    def __init__(self, precision_mode="allow_fp32_to_fp16", loss_scale=None, iterations_per_loop=1,
                 over_dump=False, data_dump_flag=False, data_dump_step="10", dump_path="",
                 profiling=False, profiling_options="", enable_data_pre_proc=True, reference_dump="",
                 reference_dump_step=0, precision_mode_v2="", modify_mixlist="", op_select_implmode="",
                 customize_dtypes="", fusion_switch_file="", deterministic=False):
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


_npu = None  # cached result of the npu_bridge probe: a dict of modules, or False
_announced = False


def npu_modules():
    """The npu_bridge modules this project uses, or None when running on the fallback."""
    global _npu
    if os.environ.get(FALLBACK_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return None
    if _npu is None:
        _npu = _import_npu_bridge()
    return _npu or None


def _job_id():
    """NPUEstimator and the distributed optimizer's all-reduce read the job from JOB_ID (npu_common.NPUBasics,
    once per process): give it the ModelZoo default when the user's environment has none."""
    os.environ.setdefault("JOB_ID", DEFAULT_JOB_ID)


def _import_npu_bridge():
    """The modules, or False where npu_bridge is not installed; a broken install is an error."""
    try:
        importlib.import_module("npu_bridge")
        return {name: importlib.import_module("npu_bridge.estimator." + name) for name in (
            "npu.npu_config", "npu.npu_optimizer", "npu.npu_loss_scale_optimizer",
            "npu.npu_loss_scale_manager", "npu.util", "npu_ops")}
    except Exception as err:    # the adapter's helper swallows a failed .so load, then NameErrors follow
        absent = isinstance(err, ImportError) and getattr(err, "name", None) == "npu_bridge"
        cann = [name for name in CANN_ENV if os.environ.get(name)]
        if absent and not cann:
            return False
        where = "this is an Ascend host (%s set)" % ", ".join(cann) if cann else "npu_bridge is installed"
        raise UserError("%s but npu_bridge failed to import (%s: %s): fix the CANN environment (source its "
                        "set_env.sh), or set %s=1 to train on the CPU/GPU fallback"
                        % (where, type(err).__name__, str(err).splitlines()[0] if str(err) else "", FALLBACK_ENV))


def on_npu():
    return npu_modules() is not None


def check_loss(value, step, name="loss", advice=errors.NAN_ADVICE):
    """common.errors.check_finite for a value fetched on this route: on Ascend, overflow saturates (rule 7 of
    the adapter's graph rules: a host isfinite check alone never fires there)."""
    return errors.check_finite(value, step, name, advice, saturates=on_npu())


def reset_probe():
    """Forget the cached npu_bridge probe (tests swap fake packages in and out)."""
    global _npu, _announced
    _npu = None
    _announced = False


def describe(options):
    """One line saying which device route runs and what precision is really used."""
    scale = options.loss_scale if options.loss_scale in (None, "dynamic") else "fixed %g" % options.loss_scale
    scale = scale or "off"
    if on_npu():
        controls = options.precision_controls()
        mode = "precision_mode_v2=%s" % controls.pop("precision_mode_v2") if options.precision_mode_v2 \
            else "precision_mode=%s" % options.precision_mode
        return ("device: Ascend NPU (npu_bridge); %s; loss scale: %s; iterations_per_loop=%d%s"
                % (mode, scale, options.iterations_per_loop,
                   "".join("; %s=%s" % kv for kv in sorted(controls.items()))))
    extras = [name for name, on in (("data dump", options.data_dump_flag), ("overflow dump", options.over_dump),
                                    ("profiling", options.profiling)) if on]
    precision, why = fallback_precision(options)
    if precision == "fp16" and options.loss_scale is None:
        why += "; without --loss_scale small fp16 gradients can underflow to 0"
    return ("device: %s fallback (npu_bridge not in use); compute precision: %s (%s); loss scale: %s%s%s"
            % ("GPU" if _gpus() else "CPU", precision, why, scale,
               _looping_off_ascend(options),
               "; ignored off Ascend: " + ", ".join(extras) if extras else ""))


def _looping_off_ascend(options):
    """What --iterations_per_loop does off Ascend: an in-graph loop where the model has one (it sets
    options.in_graph_loop before its session), else one step per session call."""
    if getattr(options, "in_graph_loop", False):
        return "; looping: %d training steps per session call (in-graph loop)" % options.iterations_per_loop
    if options.iterations_per_loop > 1:
        return "; iterations_per_loop=%d: this model has no in-graph loop, one step per run here" \
            % options.iterations_per_loop
    return ""


def announce(options):
    """Log describe() once per process."""
    global _announced
    if not _announced:
        _announced = True
        line = describe(options)
        log.info(line)
        print(line, flush=True)


MIXED_MODES = ("allow_mix_precision", "force_fp16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_BF16_REWRITE = "auto_mixed_precision_onednn_bfloat16"   # RewriterConfig field, TF 2.9 and later


def _gpus():
    return bool(tf.config.experimental.list_physical_devices("GPU"))


def cpu_flags():
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def fallback_precision(options):
    """(the precision that really runs off Ascend, why). The mixed modes (allow_mix_precision, force_fp16) turn
    on TensorFlow's automatic mixed precision graph rewrite: fp16 on a GPU, bf16 on a CPU through oneDNN where
    TensorFlow and the CPU have it; everything else computes in fp32."""
    mode = options.precision_mode
    if getattr(options, "precision_mode_v2", "") == "origin":
        return "fp32", "precision_mode_v2=origin: every op keeps its dtype"
    if mode not in MIXED_MODES:
        return "fp32", "precision_mode=%s applies on Ascend only" % mode
    if _gpus():
        return "fp16", "precision_mode=%s: TensorFlow's automatic mixed precision on the GPU" % mode
    rewrites = tf.compat.v1.ConfigProto().graph_options.rewrite_options.DESCRIPTOR.fields_by_name
    if _BF16_REWRITE not in rewrites:
        return "fp32", ("bf16 requested by precision_mode=%s, but TensorFlow %s has no oneDNN bf16 rewrite (the "
                        "TF 2.x stack has): fp32" % (mode, tf.__version__))
    if not tf_compat.onednn_build():
        return "fp32", ("bf16 requested by precision_mode=%s, but this TensorFlow runs without oneDNN "
                        "(TF_ENABLE_ONEDNN_OPTS=0?): fp32" % mode)
    found = [flag for flag in BF16_CPU_FLAGS if flag in cpu_flags()]
    if not found:
        return "fp32", "bf16 requested by precision_mode=%s, this CPU lacks AVX512_BF16 and AMX: fp32" % mode
    return "bf16", ("precision_mode=%s: oneDNN's automatic mixed precision, %s"
                    % (mode, " and ".join(f.upper() for f in found)))


def _fallback_config(config, options):
    rewrite = config.graph_options.rewrite_options
    precision = fallback_precision(options)[0]
    if precision == "fp16":
        rewrite.auto_mixed_precision = rewrite.ON
    elif precision == "bf16":
        setattr(rewrite, _BF16_REWRITE, rewrite.ON)
    # Intra-op threads do the math; a couple of inter-op threads keep the input pipeline moving.
    config.intra_op_parallelism_threads = int(os.environ.get("TF_NUM_INTRAOP_THREADS", os.cpu_count() or 1))
    config.inter_op_parallelism_threads = int(os.environ.get("TF_NUM_INTEROP_THREADS", 2))
    if getattr(options, "deterministic", False):
        # One op at a time, in one order: two updates of one variable (a BN shared by two towers) otherwise
        # land in either order, and their float sums differ bit for bit. TF_DETERMINISTIC_OPS: GPU kernels.
        config.inter_op_parallelism_threads = 1
        os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    if tf_compat.onednn_build():
        # oneDNN's OpenMP threads spin 200 ms after each op by default, starving the tf.data threads that share
        # the cores: MobileNetV3 training ran at half speed on 2 cores. Read when OpenMP starts (first oneDNN op).
        os.environ.setdefault("KMP_BLOCKTIME", "0")


def _base_config():
    config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
    config.gpu_options.allow_growth = True
    return config


def session_config(options, distributed=False):
    """A tf.ConfigProto for tf.Session / MonitoredSession; carries the NpuOptimizer settings on Ascend.

    distributed: a multi-device run, whose gradient all-reduce then overlaps the backward pass (hcom_parallel).
    """
    announce(options)
    config = _base_config()
    if not on_npu():
        refuse_npu_precision_controls(options)
        _fallback_config(config, options)
        return config
    _require_adapter_keywords(options)
    custom_op = config.graph_options.rewrite_options.custom_optimizers.add()
    custom_op.name = "NpuOptimizer"
    params = custom_op.parameter_map
    params["use_off_line"].b = True
    if options.precision_mode_v2:   # npu_attrs.cc: precision_mode and precision_mode_v2 cannot both be set
        params["precision_mode_v2"].s = tf.compat.as_bytes(options.precision_mode_v2)
    else:
        params["precision_mode"].s = tf.compat.as_bytes(options.precision_mode)
    for name in PRECISION_CONTROLS[1:]:
        if getattr(options, name):
            params[name].s = tf.compat.as_bytes(getattr(options, name))
    if options.deterministic:   # npu_attrs.cc: "deterministic" (int), the same results run after run
        params["deterministic"].i = 1
    params["iterations_per_loop"].i = options.iterations_per_loop
    params["enable_data_pre_proc"].b = options.enable_data_pre_proc
    params["mix_compile_mode"].b = False
    params["hcom_parallel"].b = bool(distributed)
    _make_output_directories(options)
    if options.data_dump_flag:
        params["enable_dump"].b = True
        params["dump_path"].s = tf.compat.as_bytes(options.dump_path)
        params["dump_step"].s = tf.compat.as_bytes(options.data_dump_step)
        params["dump_mode"].s = tf.compat.as_bytes("all")
    if options.reference_dump:   # the NPU half of common.precision's comparison: outputs of that one step
        params["enable_dump"].b = True
        params["dump_path"].s = tf.compat.as_bytes(options.reference_dump)
        params["dump_step"].s = tf.compat.as_bytes(str(options.reference_dump_step))
        params["dump_mode"].s = tf.compat.as_bytes("output")
    if options.over_dump:
        params["enable_dump_debug"].b = True
        params["dump_path"].s = tf.compat.as_bytes(options.dump_path)
        params["dump_debug_mode"].s = tf.compat.as_bytes("all")
    if options.profiling:
        params["profiling_mode"].b = True
        params["profiling_options"].s = tf.compat.as_bytes(options.profiling_options)
    _tf_rewrites_off(config)
    return config


def _tf_rewrites_off(config):
    # The NPU graph compiler does its own fusion; TF's remapper and memory optimizer interfere with it.
    rewrite = config.graph_options.rewrite_options
    rewrite.remapping = rewrite.memory_optimization = rewrite.OFF


def run_config(options, model_dir, save_checkpoints_steps=None, keep_checkpoint_max=5,
               log_step_count_steps=100, save_summary_steps=100, distributed=False):
    """NPURunConfig on Ascend, tf.estimator.RunConfig elsewhere, with the same checkpoint settings.

    Without save_checkpoints_steps both save every 600 s (NPURunConfig alone would save every 100 steps).
    """
    announce(options)
    by_steps = save_checkpoints_steps is not None
    common = dict(model_dir=model_dir, save_checkpoints_steps=save_checkpoints_steps,
                  save_checkpoints_secs=None if by_steps else 600, keep_checkpoint_max=keep_checkpoint_max,
                  log_step_count_steps=log_step_count_steps, save_summary_steps=save_summary_steps)
    npu = npu_modules()
    _require_estimator()
    if npu is None:
        refuse_npu_precision_controls(options)
        config = _base_config()
        _fallback_config(config, options)
        return tf.estimator.RunConfig(session_config=config, **common)
    _require_adapter_keywords(options)
    cfg = npu["npu.npu_config"]
    # NPUEstimator adds the NpuOptimizer from these settings; the session config only switches off TF's rewrites.
    _make_output_directories(options)
    config = _base_config()
    _tf_rewrites_off(config)
    extra = {}
    if options.data_dump_flag or options.over_dump:
        extra["dump_config"] = cfg.DumpConfig(
            enable_dump=options.data_dump_flag, dump_path=options.dump_path, dump_step=options.data_dump_step,
            dump_mode="all", enable_dump_debug=options.over_dump, dump_debug_mode="all")
    if options.reference_dump:
        extra["dump_config"] = cfg.DumpConfig(enable_dump=True, dump_path=options.reference_dump,
                                              dump_step=str(options.reference_dump_step), dump_mode="output")
    extra.update(options.precision_controls())
    if options.deterministic:
        extra["deterministic"] = 1
    precision = {"precision_mode_v2": options.precision_mode_v2} if options.precision_mode_v2 \
        else {"precision_mode": options.precision_mode}
    if options.profiling:
        extra["profiling_config"] = cfg.ProfilingConfig(enable_profiling=True,
                                                        profiling_options=options.profiling_options)
    if distributed:
        extra["hcom_parallel"] = True
    return cfg.NPURunConfig(session_config=config, iterations_per_loop=options.iterations_per_loop,
                            enable_data_pre_proc=options.enable_data_pre_proc,
                            **dict(common, **dict(extra, **precision)))


def refuse_npu_precision_controls(options):
    """Off Ascend nothing reads the adapter's precision controls: say so rather than run without them.
    precision_mode_v2=origin (keep every op's dtype) is what the fallback computes anyway."""
    given = ["--%s=%s" % kv for kv in sorted(options.precision_controls().items())
             if kv != ("precision_mode_v2", "origin")]
    if given:
        raise UserError("%s: Ascend's precision controls need the NPU route (npu_bridge); this run is the "
                        "CPU/GPU fallback, which computes in fp32 (only --precision_mode_v2=origin applies here)"
                        % ", ".join(given))


def _require_adapter_keywords(options):
    """An older adapter lacks some controls (precision_mode_v2, modify_mixlist and customize_dtypes came in
    later CANN versions): its NPURunConfig signature says which it has."""
    import inspect
    wanted = list(options.precision_controls()) + (["deterministic"] if options.deterministic else [])
    if not wanted:
        return
    parameters = inspect.signature(npu_modules()["npu.npu_config"].NPURunConfig.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
        return
    missing = [name for name in wanted if name not in parameters]
    if missing:
        raise UserError("this npu_bridge (CANN TensorFlow adapter) has no %s: upgrade CANN, or leave out --%s"
                        % (", ".join(missing), " --".join(missing)))


def _require_estimator():
    if not tf_compat.has_estimator():
        raise UserError("tf.estimator is gone from TensorFlow 2.16 on (this is %s): use the TF 1.15 or TF 2.15 "
                        "stack for estimators" % tf.__version__)


def _make_output_directories(options):
    """The adapter checks that dump and profiling directories exist and are writable; it creates none."""
    for path in options.output_directories():
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as err:
            raise UserError("cannot create the dump/profiling directory %s: %s" % (path, err.strerror))


def estimator_class():
    """NPUEstimator on Ascend (it compiles the graph for the device), tf.estimator.Estimator elsewhere."""
    npu = npu_modules()
    _require_estimator()
    if npu is None:
        return tf.estimator.Estimator
    _job_id()
    return importlib.import_module("npu_bridge.estimator.npu.npu_estimator").NPUEstimator


def new_session(options, graph=None, target=""):
    """A tf.compat.v1.Session configured for the current device route."""
    return tf.compat.v1.Session(target=target, graph=graph, config=session_config(options))


def keras_session(options, backend=None):
    """Create a session with session_config() and install it as the Keras backend session.

    backend: `tf.keras.backend` (default) or standalone `keras.backend`.
    """
    backend = backend or tf.keras.backend
    sess = new_session(options)
    backend.set_session(sess)
    return sess


def loss_scale_manager(options):
    """The loss-scale manager for options.loss_scale, or None when loss scaling is off."""
    if options.loss_scale is None:
        return None
    npu = npu_modules()
    module = npu["npu.npu_loss_scale_manager"] if npu else loss_scale
    if options.loss_scale == "dynamic":
        return module.ExponentialUpdateLossScaleManager(**DYNAMIC_LOSS_SCALE)
    return module.FixedLossScaleManager(options.loss_scale)


def wrap_optimizer(optimizer, options, distributed=False):
    """Add the NPU all-reduce (distributed Ascend runs) and loss scaling (when options ask for it).

    Off Ascend, distribution is tf.distribute's business, so only loss scaling is added, with TF 1.15's
    own LossScaleOptimizer; it skips the update and lowers a dynamic scale when gradients overflow.
    """
    npu = npu_modules()
    if npu is not None and distributed:
        _job_id()
        optimizer = npu["npu.npu_optimizer"].NPUDistributedOptimizer(optimizer)
    manager = loss_scale_manager(options)
    if manager is None:
        return optimizer
    if npu is not None:
        npu_lso = npu["npu.npu_loss_scale_optimizer"]
        return npu_lso.NPULossScaleOptimizer(optimizer, manager, is_distributed=distributed)
    return loss_scale.LossScaleOptimizer(optimizer, manager)


def set_iterations_per_loop(sess, train_op, options):
    """On Ascend, run `iterations_per_loop` steps on the device per sess.run; elsewhere return train_op."""
    npu = npu_modules()
    if npu is None or options.iterations_per_loop == 1:
        return train_op
    return npu["npu.util"].set_iteration_per_loop(sess, train_op, options.iterations_per_loop)


def steps_per_run(options):
    """How many training steps one sess.run of the (possibly looped) train op performs."""
    return options.iterations_per_loop if on_npu() else 1


def dropout(x, keep_prob, training=True):
    """Dropout with the NPU's own kernel on Ascend; keep_prob is the probability of keeping a unit."""
    if not training:
        return x
    npu = npu_modules()
    if npu is not None:
        return npu["npu_ops"].dropout(x, keep_prob)
    return tf.nn.dropout(x, rate=1.0 - keep_prob)


def broadcast_variables_op(variables=None, root_rank=0):
    """An op copying rank root_rank's values of `variables` (default: all float globals) to every NPU.

    Only the Ascend route needs it: MultiWorkerMirroredStrategy already starts replicas from the chief's values.
    """
    if npu_modules() is None:
        return tf.no_op(name="broadcast_variables_noop")
    hccl_ops = importlib.import_module("npu_bridge.hccl.hccl_ops")
    variables = variables if variables is not None else tf.compat.v1.global_variables()
    assigns = []
    for var in variables:
        if var.dtype.base_dtype.is_floating:
            (value,) = hccl_ops.broadcast(tensor=[var], root_rank=root_rank)
            assigns.append(tf.compat.v1.assign(var, value))
    return tf.group(*assigns, name="broadcast_variables")
