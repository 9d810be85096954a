"""The adapter's checks of the precision options in a session's NpuOptimizer parameter_map (npu_attrs.cc
SetNpuOptimizerAttr, Ascend/tensorflow ge_dev), chained in front of session_rules.check_options."""
import os

from common.tf_compat import tf

PRECISION_MODES_V2 = ("fp16", "origin", "cube_fp16in_fp32out", "mixed_float16", "mixed_bfloat16")
OP_IMPL_MODES = ("high_precision", "high_performance", "high_precision_for_all", "high_performance_for_all")
MIXLIST_MODES = ("allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16")
MIXLIST_MODES_V2 = ("mixed_float16", "mixed_bfloat16")


def _text(params, name):
    return params[name].s.decode() if name in params else None


def check(params):
    mode, mode_v2 = _text(params, "precision_mode"), _text(params, "precision_mode_v2")
    # npu_attrs.cc: "'precision_mode' and 'precision_mode_v2' can not be assigned at the same time."
    if mode is not None and mode_v2 is not None:
        raise tf.errors.InternalError(None, None,
                                      "'precision_mode' and 'precision_mode_v2' can not be assigned at the same time.")
    # npu_attrs.cc: CheckValueAllowed(precision_mode_v2, kPrecisionModeV2List)
    if mode_v2 is not None and mode_v2 not in PRECISION_MODES_V2:
        raise tf.errors.InvalidArgumentError(None, None, "precision_mode_v2 %r is not in %s"
                                             % (mode_v2, PRECISION_MODES_V2))
    # npu_attrs.cc CheckOpImplMode: "op select impl mode should be one of the list:[...]"
    implmode = _text(params, "op_select_implmode")
    if implmode is not None and implmode not in OP_IMPL_MODES:
        raise tf.errors.InvalidArgumentError(None, None, "op select impl mode should be one of the list:[%s]"
                                             % ", ".join(OP_IMPL_MODES))
    # npu_attrs.cc: "modify_mixlist is assigned, please ensure that precision_mode is assigned to ..."
    if "modify_mixlist" in params and not (mode in MIXLIST_MODES or mode_v2 in MIXLIST_MODES_V2):
        raise tf.errors.InternalError(None, None, "modify_mixlist is assigned, please ensure that precision_mode is "
                                      "assigned to 'allow_mix_precision' or precision_mode_v2 to 'mixed_float16'")
    # GE reads these files when the graph is built (ge.fusionSwitchFile, ge.customizeDtypes, MODIFY_MIXLIST).
    for name in ("modify_mixlist", "customize_dtypes", "fusion_switch_file"):
        path = _text(params, name)
        if path is not None and not os.path.isfile(path):
            raise tf.errors.InvalidArgumentError(None, None, "%s file %s does not exist" % (name, path))
    # npu_attrs.cc: "deterministic" is read as an int (0 or 1)
    if "deterministic" in params and params["deterministic"].i not in (0, 1):
        raise tf.errors.InvalidArgumentError(None, None, "deterministic must be 0 or 1")


def install(session_rules):
    """Run check() where the session options are checked, once per session."""
    original = session_rules.check_options

    def check_options(params):
        check(params)
        original(params)

    session_rules.check_options = check_options
