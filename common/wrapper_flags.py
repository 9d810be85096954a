"""The flags of an Ascend-style wrapper, for its shell, from their one declaration: the Ascend flags
(common/npu_options.py) and the model options it names (<model>/options.py): names, help lines, kinds and
defaults. Imports no TensorFlow; common/ascend_wrapper.sh evaluates the output once per wrapper start.

    python -m common.wrapper_flags                                   # the Ascend flags only
    python -m common.wrapper_flags mtnet datasource train_steps:metatrain_iterations ...
        # FLAG: the option of that name; FLAG:OPTION: the option OPTION under the wrapper's name FLAG
"""
import shlex

from common.errors import ArgumentParser, UserError, main_guard
from common.npu_options import ASCEND_FLAGS, NOT_IN_WRAPPERS, PATH_FLAGS
from common.options import MODELS, default_text, model_options, short_help

# The wrapper's check of a value (check_flag_kind in common/ascend_wrapper.sh) for each declared kind.
SHELL_KINDS = {"int": "int", "float": "number", "str": "text", "bool": "text"}


def bash_array(name, items):
    return "%s=(%s)" % (name, " ".join(shlex.quote(str(item)) for item in items))


def ascend_declarations():
    """Bash arrays of the wrappers' Ascend flags: names, help lines and defaults (index for index), the
    int-valued and the path-valued ones."""
    flags = [opt for opt in ASCEND_FLAGS if opt.name not in NOT_IN_WRAPPERS]
    return "\n".join([bash_array("ASCEND_FLAGS", [opt.name for opt in flags]),
                      bash_array("ASCEND_HELP", [opt.help for opt in flags]),
                      bash_array("ASCEND_DEFAULTS", [opt.default if opt.default != "" else "none" for opt in flags]),
                      bash_array("ASCEND_INT_FLAGS", [opt.name for opt in flags if opt.kind == "int"]),
                      bash_array("PRECISION_PATH_FLAGS", PATH_FLAGS)])


def option_declarations(model, specs):
    """Bash arrays OPTION_FLAGS, OPTION_HELP, OPTION_KIND and OPTION_DEFAULT (index for index) of the options
    `specs` (FLAG or FLAG:OPTION) of `model`."""
    declared = {opt.name: opt for opt in model_options(model)}
    rows = []
    for spec in specs:
        flag, _, name = spec.partition(":")
        opt = declared.get(name or flag)
        if opt is None:
            raise UserError("%s/options.py declares no option %r" % (model, name or flag))
        rows.append((flag, short_help(opt), SHELL_KINDS[opt.kind], default_text(opt)))
    return "\n".join(bash_array(name, [row[i] for row in rows]) for i, name in enumerate(
        ("OPTION_FLAGS", "OPTION_HELP", "OPTION_KIND", "OPTION_DEFAULT")))


@main_guard
def main(argv=None):
    parser = ArgumentParser(prog="python -m common.wrapper_flags",
                            description="Bash declarations of a wrapper's flags (common/ascend_wrapper.sh reads them).")
    parser.add_argument("model", nargs="?", choices=MODELS, help="the model whose options follow")
    parser.add_argument("options", nargs="*", metavar="FLAG[:OPTION]",
                        help="the model options the wrapper takes, under its flag name FLAG (default: the option's)")
    args = parser.parse_args(argv)
    lines = [ascend_declarations()]
    if args.model:
        lines.append(option_declarations(args.model, args.options))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
