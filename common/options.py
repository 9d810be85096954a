"""Options declared once: name, kind, default, one-line help (and choices). Everything a user sees of an option
derives from its declaration: argparse or absl flags, the wrappers' flags (common/wrapper_flags.py), the
README's table.

    OPTIONS = (Option("seed", "int", 1, "graph-level random seed"), ...)
    add_arguments(parser, OPTIONS)       # argparse scripts
    define_flags(absl.flags, OPTIONS)    # absl / tf.flags scripts
    values(args_or_FLAGS, OPTIONS)       # -> {name: value}
    python -m common.options --markdown MODEL     # the README table of <model>/options.py
    python -m common.options --write              # ... written into each model README between its markers

This module imports no TensorFlow: `--help` of every entry script answers without loading it.
"""
import argparse
import collections
import importlib
import os
import re
import sys

from common.errors import ArgumentParser, UserError, main_guard

KINDS = ("str", "int", "float", "bool")

_Option = collections.namedtuple("Option", "name kind default help choices")


class Option(_Option):
    """One option. kind: str, int, float or bool; choices: the allowed values, or None."""

    def __new__(cls, name, kind, default, help, choices=None):
        if kind not in KINDS:
            raise ValueError("option %s: kind %r is not one of %s" % (name, kind, ", ".join(KINDS)))
        return super(Option, cls).__new__(cls, name, kind, default, help, tuple(choices) if choices else None)

    def with_default(self, default):
        return self._replace(default=default)


_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off", "")


def str2bool(text):
    """argparse type for the wrappers' --flag=True/False style."""
    lowered = str(text).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError("expected True or False, got %r" % text)


_TYPES = {"str": str, "int": int, "float": float}


def add_arguments(parser, options, **defaults):
    """Add `options` to an argparse parser (or group); keyword arguments override their defaults."""
    _check_names(options, defaults)
    for opt in options:
        default = defaults.get(opt.name, opt.default)
        text = opt.help.replace("%", "%%")      # argparse formats help with %: a declared "95%" stays 95%
        if opt.kind == "bool":
            parser.add_argument("--" + opt.name, type=str2bool, nargs="?", const=True, default=default,
                                metavar="BOOL", help=text)
        else:
            parser.add_argument("--" + opt.name, type=_TYPES[opt.kind], default=default, choices=opt.choices,
                                help=text)
    return parser


def define_flags(flags, options, **defaults):
    """Define `options` on an absl (or tf.compat.v1.flags) module; keyword arguments override their defaults.

    The flags belong to the calling module, as if it had defined them itself: absl lists a script's own flags
    (main_module_help) by the module that defined them."""
    _check_names(options, defaults)
    module = _calling_module()
    for opt in options:
        default = defaults.get(opt.name, opt.default)
        if opt.choices:
            flags.DEFINE_enum(opt.name, default, list(opt.choices), opt.help, module_name=module)
        else:
            definer = getattr(flags, {"str": "DEFINE_string", "int": "DEFINE_integer", "float": "DEFINE_float",
                                      "bool": "DEFINE_boolean"}[opt.kind])
            definer(opt.name, default, opt.help, module_name=module)


def _calling_module():
    """The name absl gives the module calling define_flags (a script run as __main__ goes by sys.argv[0])."""
    name = sys._getframe(2).f_globals.get("__name__")
    return sys.argv[0] if name == "__main__" else name


def values(source, options):
    """{name: value} of `options` from an argparse namespace, absl FLAGS or a dict (missing: the default)."""
    get = source.get if isinstance(source, dict) else (lambda name, default: getattr(source, name, default))
    return {opt.name: get(opt.name, opt.default) for opt in options}


def names(options):
    return [opt.name for opt in options]


def short_help(opt):
    """The help without a closing "(default X)" that repeats the declared default: a wrapper's --help line and the
    README's table show the default beside it."""
    suffix = " (default %s)" % opt.default
    return opt.help[:-len(suffix)] if opt.help.endswith(suffix) else opt.help


def default_text(opt):
    """The default as a table or a shell variable writes it: '' for none."""
    return "" if opt.default is None else str(opt.default)


def markdown_table(options):
    """The README's table of `options`: flag, default (– for none), meaning (and the choices)."""
    rows = ["| flag | default | meaning |", "|---|---|---|"]
    for opt in options:
        default = "`%s`" % opt.default if default_text(opt) != "" else "–"
        meaning = short_help(opt) + (" (%s)" % ", ".join("`%s`" % c for c in opt.choices) if opt.choices else "")
        meaning = meaning.replace("|", "\\|").replace("<", "\\<")     # a table cell; not an HTML tag
        rows.append("| `--%s` | %s | %s |" % (opt.name, default, meaning))
    return "\n".join(rows)


MODELS = ("am3", "mtnet", "mobilenetv3", "swa")


def model_options(model):
    """OPTIONS of <model>/options.py (which imports no TensorFlow)."""
    if model not in MODELS:
        raise ValueError("no model %r (one of %s)" % (model, ", ".join(MODELS)))
    return importlib.import_module(model + ".options").OPTIONS


# A README's generated table sits between these lines; `--write` replaces what is between them.
_BLOCK = re.compile(r"(<!-- flags:begin (\w+) -->\n)(.*?)(<!-- flags:end -->)", re.S)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_tables(text):
    """[(model, table text)] of the marked blocks of a README."""
    return [(match.group(2), match.group(3).rstrip("\n")) for match in _BLOCK.finditer(text)]


def with_tables(text):
    """The README text with each marked block holding its model's generated table."""
    return _BLOCK.sub(lambda m: m.group(1) + markdown_table(model_options(m.group(2))) + "\n" + m.group(4), text)


def model_readmes():
    return [os.path.join(REPO, model, "README.md") for model in MODELS]


def _check_names(options, defaults):
    unknown = set(defaults) - set(names(options))
    if unknown:
        raise ValueError("not options here: %s" % ", ".join(sorted(unknown)))


@main_guard
def main(argv=None):
    parser = ArgumentParser(prog="python -m common.options",
                            description="The models' options, declared once in <model>/options.py.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--markdown", choices=MODELS, help="print the README table of this model's options")
    what.add_argument("--write", nargs="*", metavar="README",
                      help="rewrite the tables between '<!-- flags:begin MODEL -->' and '<!-- flags:end -->' "
                      "in these files (default: every model's README.md)")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table(model_options(args.markdown)))
        return
    for path in args.write or model_readmes():
        if not os.path.isfile(path):
            raise UserError("no file %s" % path)
        with open(path) as handle:
            text = handle.read()
        new = with_tables(text)
        if new != text:
            with open(path, "w") as handle:
                handle.write(new)
            print("wrote the flag tables of %s" % os.path.relpath(path))


if __name__ == "__main__":
    main()
