"""The device route, and everything of it that needs npu_bridge: the Ascend session, optimizer wrapping, dropout
and the HCCL broadcast, with a plain TensorFlow fallback (common/fallback.py).

Every train script asks this module, and only this module, for its device configuration. When
`npu_bridge` imports (an Ascend machine with the CANN TensorFlow adapter) the NPU route is used;
otherwise the same calls return ordinary TensorFlow objects, so model code has one path.
Set NPU_FALLBACK=1 to use the fallback even where npu_bridge is installed. On a host that is clearly an Ascend
host (CANN's environment variables are set) an npu_bridge that fails to import is an error, not a silent fallback.
The options themselves (declaration, validation) are common/npu_options.py, which loads no TensorFlow.
"""
import importlib
import logging
import os

from common import errors, fallback, loss_scale
from common.errors import UserError
from common.npu_options import DEFAULT_JOB_ID, PRECISION_CONTROLS, request_xla_cpu_clustering
from common.npu_options import NpuOptions  # noqa: F401 (callers use npu_session.NpuOptions)
from common.tf_compat import tf

log = logging.getLogger(__name__)

FALLBACK_ENV = "NPU_FALLBACK"
# Set by CANN's set_env.sh: their presence says this is an Ascend host, where a CPU fallback is never silent.
CANN_ENV = ("ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME", "ASCEND_OPP_PATH", "ASCEND_AICPU_PATH")
# Dynamic loss scaling as the Ascend model zoo configures it.
DYNAMIC_LOSS_SCALE = dict(init_loss_scale=2 ** 32, incr_every_n_steps=1000, decr_every_n_nan_or_inf=2,
                          decr_ratio=0.5)


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
        refuse_xla(options)
        controls = options.precision_controls()
        mode = "precision_mode_v2=%s" % controls.pop("precision_mode_v2") if options.precision_mode_v2 \
            else "precision_mode=%s" % options.precision_mode
        return ("device: Ascend NPU (npu_bridge); %s; loss scale: %s; iterations_per_loop=%d%s"
                % (mode, scale, options.iterations_per_loop,
                   "".join("; %s=%s" % kv for kv in sorted(controls.items()))))
    extras = [name for name, on in (("data dump", options.data_dump_flag), ("overflow dump", options.over_dump),
                                    ("profiling", options.profiling)) if on]
    precision, why = fallback.fallback_precision(options)
    if precision == "fp16" and options.loss_scale is None:
        why += "; without --loss_scale small fp16 gradients can underflow to 0"
    if options.xla and not getattr(options, "xla_whole_loop", False):
        fallback.check_xla()   # says why in one line where XLA would do nothing: "XLA: on" is never a guess
    return ("device: %s fallback (npu_bridge not in use); compute precision: %s (%s); loss scale: %s; XLA: %s%s%s"
            % ("GPU" if fallback.gpus() else "CPU", precision, why, scale, _xla(options),
               _looping_off_ascend(options),
               "; ignored off Ascend: " + ", ".join(extras) if extras else ""))


def _xla(options):
    if not options.xla:
        return "off"
    if getattr(options, "xla_whole_loop", False):    # set by a model that compiles its loop (MT-net regression)
        return "on (the training loop compiled whole: one XLA computation per session call)"
    return "on (auto-clustering)"


def _looping_off_ascend(options):
    """What --iterations_per_loop does off Ascend: an in-graph loop where the model has one (it sets
    options.in_graph_loop before its session), else one step per session call."""
    if getattr(options, "in_graph_loop", False):
        return "; looping: %d training steps per session call (in-graph loop)" % options.iterations_per_loop
    if options.iterations_per_loop > 1:
        return "; iterations_per_loop=%d: this model has no in-graph loop, one step per run here" \
            % options.iterations_per_loop
    return ""


def refuse_xla(options):
    """On Ascend the graph engine (GE) compiles the whole graph for the device: XLA has no part there."""
    if options.xla:
        raise UserError("--xla: XLA compiles for CPU/GPU; on Ascend the graph engine (GE) compiles the graph for "
                        "the NPU: leave --xla out on this route")


def announce(options):
    """Log describe() once per process."""
    global _announced
    if not _announced:
        _announced = True
        line = describe(options)
        log.info(line)
        print(line, flush=True)


def _base_config():
    config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
    config.gpu_options.allow_growth = True
    return config


def session_config(options, distributed=False):
    """A tf.ConfigProto for tf.Session / MonitoredSession; carries the NpuOptimizer settings on Ascend.

    distributed: a multi-device run, whose gradient all-reduce then overlaps the backward pass (hcom_parallel).
    """
    if options.xla and not on_npu():
        request_xla_cpu_clustering()   # before anything below lists the devices (TF 2.x reads it then)
    announce(options)
    config = _base_config()
    if not on_npu():
        fallback.refuse_npu_precision_controls(options)
        fallback.configure(config, options)
        return config
    refuse_xla(options)
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


def _make_output_directories(options):
    """The adapter checks that dump and profiling directories exist and are writable; it creates none."""
    for path in options.output_directories():
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as err:
            raise UserError("cannot create the dump/profiling directory %s: %s" % (path, err.strerror))


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
