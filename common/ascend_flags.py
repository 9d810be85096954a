"""The Ascend flags every train script accepts, declared once for argparse and for tf.flags (absl).

    parser = argparse.ArgumentParser(); add_ascend_arguments(parser)      # argparse scripts
    define_ascend_flags(tf.compat.v1.flags)                                # tf.flags scripts
    options = npu_options_from(args_or_FLAGS)                              # -> common.npu_session.NpuOptions
"""
from common.npu_session import OP_IMPL_MODES, PRECISION_MODES, PRECISION_MODES_V2, NpuOptions

# name, kind, default, help. Kinds: str, int, bool. Defaults follow the Ascend model zoo wrappers.
ASCEND_FLAGS = (
    ("precision_mode", "str", "allow_fp32_to_fp16",
     "Ascend precision mode: " + "/".join(PRECISION_MODES) + " (fp32 compute off Ascend)"),
    ("loss_scale", "str", "off", "loss scaling: off, dynamic, or a positive fixed scale such as 1024"),
    ("iterations_per_loop", "int", 1, "training steps run on the NPU per session call (1 off Ascend)"),
    ("over_dump", "bool", False, "dump overflowing operators (Ascend only)"),
    ("data_dump_flag", "bool", False, "dump operator data (Ascend only)"),
    ("data_dump_step", "str", "10", "steps to dump, e.g. 10 or 0|5|10 (Ascend only)"),
    ("dump_path", "str", "", "directory for dumps and profiling output (default ./npu_dump)"),
    ("profiling", "bool", False, "collect Ascend profiling data"),
    ("profiling_options", "str", "", "CANN profiling options as a JSON string (default: training and task trace)"),
    # Porting precision (common.precision): one step's op outputs, and the adapter's precision controls.
    ("reference_dump", "str", "", "directory for every op output of step --reference_dump_step (Ascend's .npy "
     "layout off Ascend; the adapter's data dump of that step, dump_mode=output, on Ascend)"),
    ("deterministic", "bool", False, "derandomised run (fixed seed; no shuffle, dropout or random augmentation) "
     "for comparing dumps; on Ascend also the adapter's deterministic computing"),
    ("reference_dump_step", "int", 0, "the step --reference_dump writes, counted from 0 as the adapter's dump_step"),
    ("precision_mode_v2", "str", "", "Ascend precision_mode_v2 (" + "/".join(PRECISION_MODES_V2) + "), instead "
     "of --precision_mode; off Ascend only 'origin' (fp32 here)"),
    ("modify_mixlist", "str", "", "JSON file moving ops into/out of fp16 under a mixed precision mode (Ascend only)"),
    ("op_select_implmode", "str", "", "operator implementation: " + "/".join(OP_IMPL_MODES) + " (Ascend only)"),
    ("customize_dtypes", "str", "", "file of per-op compute dtypes (Ascend only)"),
    ("fusion_switch_file", "str", "", "JSON file switching graph/UB fusions off (Ascend only)"),
)

_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off", "")


def str2bool(text):
    """argparse type for the wrappers' --flag=True/False style."""
    import argparse
    lowered = str(text).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError("expected True or False, got %r" % text)


def add_ascend_arguments(parser, **defaults):
    """Add the Ascend flags to an argparse parser; keyword arguments override their defaults."""
    _check_names(defaults)
    group = parser.add_argument_group("Ascend")
    for name, kind, default, help_text in ASCEND_FLAGS:
        default = defaults.get(name, default)
        if kind == "bool":
            group.add_argument("--" + name, type=str2bool, nargs="?", const=True, default=default,
                               metavar="BOOL", help=help_text)
        else:
            group.add_argument("--" + name, type=int if kind == "int" else str, default=default, help=help_text)
    return parser


def define_ascend_flags(flags, **defaults):
    """Define the Ascend flags on an absl/tf.flags module; keyword arguments override their defaults."""
    _check_names(defaults)
    definers = {"str": flags.DEFINE_string, "int": flags.DEFINE_integer, "bool": flags.DEFINE_boolean}
    for name, kind, default, help_text in ASCEND_FLAGS:
        definers[kind](name, defaults.get(name, default), help_text)


def npu_options_from(values):
    """Build NpuOptions from an argparse namespace, absl FLAGS, or a dict."""
    get = values.get if isinstance(values, dict) else (lambda name, default: getattr(values, name, default))
    kwargs = {}
    for name, _, default, _ in ASCEND_FLAGS:
        kwargs[name] = get(name, default)
    return NpuOptions(**kwargs)


def _check_names(defaults):
    unknown = set(defaults) - {name for name, _, _, _ in ASCEND_FLAGS}
    if unknown:
        raise ValueError("not Ascend flags: %s" % ", ".join(sorted(unknown)))
