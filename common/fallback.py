"""The CPU/GPU route's session configuration: what precision really runs there, the thread pools, and XLA.

common/npu_session.py picks the route; this module never imports npu_bridge.
"""
import os

from common import tf_compat
from common.errors import UserError
from common.npu_options import XLA_CPU_FLAG, request_xla_cpu_clustering
from common.tf_compat import tf

MIXED_MODES = ("allow_mix_precision", "force_fp16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_BF16_REWRITE = "auto_mixed_precision_onednn_bfloat16"   # RewriterConfig field, TF 2.9 and later

_xla_checked = None   # the XLA probe's verdict in this process: None (not run), True, or the error text


def gpus():
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
    if gpus():
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


def refuse_npu_precision_controls(options):
    """Off Ascend nothing reads the adapter's precision controls: say so rather than run without them.
    precision_mode_v2=origin (keep every op's dtype) is what the fallback computes anyway."""
    given = ["--%s=%s" % kv for kv in sorted(options.precision_controls().items())
             if kv != ("precision_mode_v2", "origin")]
    if given:
        raise UserError("%s: Ascend's precision controls need the NPU route (npu_bridge); this run is the "
                        "CPU/GPU fallback, which computes in fp32 (only --precision_mode_v2=origin applies here)"
                        % ", ".join(given))


def configure(config, options):
    """Set the CPU/GPU route's part of a tf.compat.v1.ConfigProto from the options."""
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
        # TensorFlow's graph optimizer merges identical ops (CSE), and which of two twins it kept changed from run
        # to run, and with it the tensors a dump holds (SWA's BN Switch, ~1 run in 3): L0 turns off CSE and
        # constant folding (L1, the default, turns both on; their own switches only add to a level).
        config.graph_options.optimizer_options.opt_level = tf.compat.v1.OptimizerOptions.L0
    if tf_compat.onednn_build():
        # oneDNN's OpenMP threads spin 200 ms after each op by default, starving the tf.data threads that share
        # the cores: MobileNetV3 training ran at half speed on 2 cores. Read when OpenMP starts (first oneDNN op).
        os.environ.setdefault("KMP_BLOCKTIME", "0")
    if getattr(options, "xla", False) and not getattr(options, "xla_whole_loop", False):
        jit(config)   # a model compiling its whole loop (MT-net regression) needs no auto-clustering


def jit(config):
    """XLA auto-clustering of the graph a session with `config` runs; checked once per process, or UserError."""
    check_xla()
    config.graph_options.optimizer_options.global_jit_level = tf.compat.v1.OptimizerOptions.ON_1


def check_xla():
    """Run a small graph with auto-clustering on and look for XLA's ops in what the session executed: the only
    sure sign that --xla does something in this process. UserError saying why when it does not."""
    global _xla_checked
    request_xla_cpu_clustering()
    if _xla_checked is None:
        _xla_checked = _xla_probe()
    if _xla_checked is not True:
        raise UserError(_xla_checked)


def _xla_probe():
    if not tf_compat.has_xla():
        return "--xla: this TensorFlow %s is built without XLA's JIT (no XlaLaunch op)" % tf.__version__
    if xla_ops_run(tf.compat.v1.OptimizerOptions.ON_1):
        return True
    return ("--xla: XLA clustered nothing in a test graph: TensorFlow had read TF_XLA_FLAGS before this run asked "
            "for %s; start the run with TF_XLA_FLAGS=%s set" % (XLA_CPU_FLAG, XLA_CPU_FLAG))


def xla_ops_run(jit_level, config=None):
    """The XLA ops (_XlaCompile, _XlaRun, XlaLaunch) among those a session with this jit level executed for a
    small training step (tanh, matmul, sum and their gradients: enough ops for a cluster)."""
    tf1 = tf.compat.v1
    config = config or tf1.ConfigProto()
    config.graph_options.optimizer_options.global_jit_level = jit_level
    graph = tf1.Graph()
    with graph.as_default():
        x = tf.ones([8, 8])
        w = tf1.get_variable("w", [8, 8], initializer=tf1.ones_initializer())
        step = tf1.train.GradientDescentOptimizer(0.1).minimize(tf.reduce_sum(tf.tanh(tf.matmul(x, w)) * 2.0 + 1.0))
        with tf1.Session(graph=graph, config=config) as sess:
            sess.run(w.initializer)
            metadata = tf1.RunMetadata()
            sess.run(step, options=tf1.RunOptions(output_partition_graphs=True), run_metadata=metadata)
    return sorted({node.op for part in metadata.partition_graphs for node in part.node if "Xla" in node.op})
