"""The Ascend flags every train script and wrapper accepts (declared in common/npu_options.py), for argparse and
for absl flags; common/wrapper_flags.py gives them to the wrappers' shell. Imports no TensorFlow.

    parser = argparse.ArgumentParser(); add_ascend_arguments(parser)      # argparse scripts
    define_ascend_flags(absl.flags)                                        # absl (= tf.compat.v1.flags) scripts
    options = npu_options_from(args_or_FLAGS)                              # -> common.npu_options.NpuOptions
"""
from common import options as _options
from common.npu_options import ASCEND_FLAGS, NpuOptions, request_xla_cpu_clustering
from common.options import str2bool  # noqa: F401 (scripts import it from here)


def add_ascend_arguments(parser, **defaults):
    """Add the Ascend flags to an argparse parser; keyword arguments override their defaults."""
    _options.add_arguments(parser.add_argument_group("Ascend"), ASCEND_FLAGS, **defaults)
    return parser


def define_ascend_flags(flags, **defaults):
    """Define the Ascend flags on an absl/tf.flags module; keyword arguments override their defaults."""
    _options.define_flags(flags, ASCEND_FLAGS, **defaults)


def npu_options_from(values):
    """Build NpuOptions from an argparse namespace, absl FLAGS, or a dict. --xla asks TensorFlow for CPU
    clustering here, before any TensorFlow runtime call: TensorFlow reads that request once per process."""
    options = NpuOptions(**_options.values(values, ASCEND_FLAGS))
    if options.xla:
        request_xla_cpu_clustering()
    return options
