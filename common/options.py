"""Options declared once: name, kind, default, one-line help (and choices). Everything a user sees of an option
derives from its declaration: argparse or absl flags, the wrappers' flag names, the README's table.

    OPTIONS = (Option("seed", "int", 1, "graph-level random seed"), ...)
    add_arguments(parser, OPTIONS)       # argparse scripts
    define_flags(absl.flags, OPTIONS)    # absl / tf.flags scripts
    values(args_or_FLAGS, OPTIONS)       # -> {name: value}

This module imports no TensorFlow: `--help` of every entry script answers without loading it.
"""
import argparse
import collections
import sys

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


def markdown_table(options):
    """The README's table of `options`: flag, default, meaning."""
    rows = ["| flag | default | meaning |", "|---|---|---|"]
    for opt in options:
        rows.append("| `--%s` | `%s` | %s |" % (opt.name, opt.default, opt.help.replace("|", "\\|")))
    return "\n".join(rows)


def _check_names(options, defaults):
    unknown = set(defaults) - set(names(options))
    if unknown:
        raise ValueError("not options here: %s" % ", ".join(sorted(unknown)))
