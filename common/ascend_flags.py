"""The Ascend flags every train script and wrapper accepts (declared in common/npu_options.py), for argparse, for
absl flags, and for the wrappers' shell. Imports no TensorFlow.

    parser = argparse.ArgumentParser(); add_ascend_arguments(parser)      # argparse scripts
    define_ascend_flags(absl.flags)                                        # absl (= tf.compat.v1.flags) scripts
    options = npu_options_from(args_or_FLAGS)                              # -> common.npu_options.NpuOptions
    python -m common.ascend_flags --shell                                  # bash declarations (common.wrapper_flags)
"""
import shlex

from common import options as _options
from common.errors import ArgumentParser, main_guard
from common.npu_options import ASCEND_FLAGS, NOT_IN_WRAPPERS, PATH_FLAGS, NpuOptions, request_xla_cpu_clustering
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


def shell_declarations():
    """Bash assignments of the wrappers' Ascend flags: names, help lines and defaults (index for index), the
    int-valued and the path-valued ones."""
    flags = [opt for opt in ASCEND_FLAGS if opt.name not in NOT_IN_WRAPPERS]

    def array(name, items):
        return "%s=(%s)" % (name, " ".join(shlex.quote(str(item)) for item in items))

    return "\n".join([array("ASCEND_FLAGS", [opt.name for opt in flags]),
                      array("ASCEND_HELP", [opt.help for opt in flags]),
                      array("ASCEND_DEFAULTS", [opt.default if opt.default != "" else "none" for opt in flags]),
                      array("ASCEND_INT_FLAGS", [opt.name for opt in flags if opt.kind == "int"]),
                      array("PRECISION_PATH_FLAGS", PATH_FLAGS)])


@main_guard
def main(argv=None):
    parser = ArgumentParser(prog="python -m common.ascend_flags", description="The Ascend flags, declared once.")
    parser.add_argument("--shell", action="store_true", required=True,
                        help="print them as bash declarations (common/wrapper_flags.py prints them for the wrappers)")
    parser.parse_args(argv)
    print(shell_declarations())


if __name__ == "__main__":
    main()
