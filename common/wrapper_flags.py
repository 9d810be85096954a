"""The flags of an Ascend-style wrapper, for its shell, from their one declaration: the Ascend flags
(common/npu_options.py) and the model options it names (<model>/options.py): names, help lines, kinds and
defaults. Imports no TensorFlow; common/ascend_wrapper.sh evaluates the output once per wrapper start.

    python -m common.wrapper_flags                                   # the Ascend flags only
    python -m common.wrapper_flags mtnet datasource train_steps:metatrain_iterations ...
        # FLAG: the option of that name; FLAG:OPTION: the option OPTION under the wrapper's name FLAG
"""
import shlex

from common.ascend_flags import shell_declarations
from common.errors import ArgumentParser, UserError, main_guard
from common.options import MODELS, default_text, model_options, short_help

# The wrapper's check of a value (check_flag_kind in common/ascend_wrapper.sh) for each declared kind.
SHELL_KINDS = {"int": "int", "float": "number", "str": "text", "bool": "text"}


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

    def array(name, column):
        return "%s=(%s)" % (name, " ".join(shlex.quote(row[column]) for row in rows))

    return "\n".join(array(name, i) for i, name in enumerate(
        ("OPTION_FLAGS", "OPTION_HELP", "OPTION_KIND", "OPTION_DEFAULT")))


@main_guard
def main(argv=None):
    parser = ArgumentParser(prog="python -m common.wrapper_flags",
                            description="Bash declarations of a wrapper's flags (common/ascend_wrapper.sh reads them).")
    parser.add_argument("model", nargs="?", choices=MODELS, help="the model whose options follow")
    parser.add_argument("options", nargs="*", metavar="FLAG[:OPTION]",
                        help="the model options the wrapper takes, under its flag name FLAG (default: the option's)")
    args = parser.parse_args(argv)
    lines = [shell_declarations()]
    if args.model:
        lines.append(option_declarations(args.model, args.options))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
