"""Each option declared once (common/options.py and <model>/options.py): the flags, the configs' defaults, the
README tables and the wrappers' flags come from the one declaration; AM3's model sees only model options."""
import argparse
import ast
import glob
import os
import re

import pytest

from common.options import Option, add_arguments, define_flags, markdown_table, values
from conftest import REPO, run, run_python

TOY = (Option("steps", "int", 3, "steps"), Option("rate", "float", 0.5, "rate, 95% of the time"),
       Option("mode", "str", "a", "mode", choices=("a", "b")), Option("fast", "bool", False, "fast"),
       Option("name", "str", None, "name"))


def test_argparse_flags_take_the_declared_defaults_types_and_choices():
    parser = add_arguments(argparse.ArgumentParser(), TOY, steps=7)
    assert values(parser.parse_args([]), TOY) == dict(steps=7, rate=0.5, mode="a", fast=False, name=None)
    args = parser.parse_args(["--steps=2", "--rate", "1e-3", "--mode=b", "--fast", "--name=x"])
    assert values(args, TOY) == dict(steps=2, rate=1e-3, mode="b", fast=True, name="x")
    assert parser.parse_args(["--fast=False"]).fast is False
    assert "95% of the time" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode=c"])
    with pytest.raises(ValueError, match="not options here: nope"):
        add_arguments(argparse.ArgumentParser(), TOY, nope=1)


def test_absl_flags_take_the_declared_defaults_and_belong_to_the_caller():
    from absl import flags
    flag_values = flags.FlagValues()

    class Module(object):     # define_flags as a flags module sees it, on a private FlagValues
        def __getattr__(self, name):
            return lambda *a, **kw: getattr(flags, name)(*a, flag_values=flag_values, **kw)
    define_flags(Module(), TOY, rate=0.25)
    flag_values(["prog", "--steps=4", "--nofast"])
    assert values(flag_values, TOY) == dict(steps=4, rate=0.25, mode="a", fast=False, name=None)
    assert {f.name for f in flag_values.flags_by_module_dict()[__name__]} == {"steps", "rate", "mode", "fast", "name"}


def test_markdown_table_lists_flag_default_and_help():
    table = markdown_table(TOY[:2]).splitlines()
    assert table[2:] == ["| `--steps` | `3` | steps |", "| `--rate` | `0.5` | rate, 95% of the time |"]


# ---- the models' declarations against what else shows a default -------------------------------------------------
def _options(model):
    return {opt.name: opt for opt in __import__(model + ".options", fromlist=["OPTIONS"]).OPTIONS}


# ---- README tables: generated from the declarations ---------------------------------------------------------
def test_markdown_table_shows_none_as_a_dash_the_choices_and_no_repeated_default():
    table = markdown_table((Option("name", "str", None, "<dir>/name"), Option("mode", "str", "a", "a|b", ("a", "b")),
                            Option("batch", "int", 32, "batch size (default 32)"))).splitlines()
    assert table[2:] == ["| `--name` | – | \\<dir>/name |", "| `--mode` | `a` | a\\|b (`a`, `b`) |",
                         "| `--batch` | `32` | batch size |"]


@pytest.mark.parametrize("readme", ["am3/README.md", "mtnet/README.md", "mobilenetv3/README.md", "swa/README.md"])
def test_readme_flag_table_is_the_generated_one(readme):
    """Each model README's flag table is `python -m common.options --write`'s output for its declarations: a
    hand edit of the table, or of a declaration without rewriting the table, fails here."""
    from common.options import model_options, readme_tables
    with open(os.path.join(REPO, readme)) as f:
        tables = readme_tables(f.read())
    assert [model for model, _ in tables] == [readme.split("/")[0]], "no generated table in " + readme
    for model, table in tables:
        assert table == markdown_table(model_options(model)), \
            "%s: its flag table is not the declarations' (run: python -m common.options --write)" % readme


def test_write_rewrites_only_the_marked_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- flags:begin swa -->\n| stale |\n<!-- flags:end -->\nafter\n")
    proc = run_python(["-m", "common.options", "--write", str(readme)])
    assert "wrote the flag tables" in proc.stdout
    from swa.options import OPTIONS
    assert readme.read_text() == ("intro\n<!-- flags:begin swa -->\n" + markdown_table(OPTIONS) +
                                  "\n<!-- flags:end -->\nafter\n")
    assert run_python(["-m", "common.options", "--write", str(readme)]).stdout == ""   # already current


# ---- wrappers: their model flags come from the declarations ------------------------------------------------------
WRAPPERS = sorted(os.path.relpath(path, REPO) for path in glob.glob(os.path.join(REPO, "*", "test", "*.sh"))
                  if re.search(r"/(train_\w+_\dp|reproduce)\.sh$", path))


def _wrapper_lines(path, common=True):
    """The wrapper's lines in the order bash runs them, each file it sources for its flags (train_flags.sh,
    seed_config.sh, and with `common` common/reproduce_wrapper.sh) inlined; not common/ascend_wrapper.sh."""
    lines = []
    with open(os.path.join(REPO, path)) as f:
        for line in f.read().splitlines():
            sourced = re.match(r'source "[^"]*/(\w+\.sh)"$', line)
            if sourced and sourced.group(1) != "ascend_wrapper.sh":
                if sourced.group(1) == "reproduce_wrapper.sh" and not common:
                    continue
                here = "common" if sourced.group(1) == "reproduce_wrapper.sh" else os.path.dirname(path)
                lines += _wrapper_lines(os.path.join(here, sourced.group(1)), common)
            else:
                lines.append(line)
    return lines


def _joined(lines):
    """Lines with their backslash continuations joined."""
    out = []
    for line in lines:
        if out and out[-1].endswith("\\"):
            out[-1] = out[-1][:-1] + " " + line.strip()
        else:
            out.append(line)
    return out


def _exposed(lines):
    """{flag: option} of the wrapper_options calls, and their model."""
    exposed, model = {}, None
    for line in _joined(lines):
        words = line.split()
        if words[:1] == ["wrapper_options"]:
            model = words[1]
            declared = _options(model)
            for spec in words[2:]:
                if spec.startswith("#"):
                    break
                flag, _, option = spec.partition(":")
                if option or flag in declared:
                    exposed[flag] = option or flag
    return exposed, model


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_a_wrapper_declares_no_model_option_by_hand(wrapper):
    """A flag passing on one of the model's options comes from wrapper_options (its declaration), never from a
    hand-written wrapper_flag with its own default, kind and help (common/reproduce_wrapper.sh's --data_path is
    common/reproduce.py's, not a model option)."""
    lines = _wrapper_lines(wrapper, common=False)
    declared = _options(wrapper.split("/")[0])
    hand = re.findall(r"^wrapper_flag (\w+)", "\n".join(lines), re.M)
    assert not set(hand) & set(declared), "%s: declared options written by hand: %s" % (wrapper, set(hand) & set(
        declared))


def _overrides(lines, exposed):
    """{flag: (value, reason)} of the assignments after wrapper_options to the shell variable of an exposed flag;
    the reason is the line's comment or the comment line heading its block of assignments. Fails on an
    assignment before wrapper_options (which would overwrite it with the declared default)."""
    overrides, seen = {}, set()
    for i, line in enumerate(lines):
        if line.startswith("wrapper_options "):
            seen.update(_exposed(_joined(lines[i:i + 3])[:1])[0])
        assignment = re.match(r"^(\w+)=(\S*)\s*(?:#\s*(.*))?$", line)
        if not assignment or assignment.group(1) not in exposed:
            continue
        flag, value, reason = assignment.groups()
        assert flag in seen, "%s=%s comes before wrapper_options, which sets the declared default" % (flag, value)
        k = i
        while not reason and k > 0 and re.match(r"^\w+=", lines[k - 1]):
            k -= 1
        reason = reason or (lines[k - 1].lstrip("# ") if lines[k - 1].startswith("#") else "")
        overrides[flag] = (value.strip('"'), reason)
    return overrides


def _helps(lines):
    return dict(re.findall(r'^wrapper_help (\w+) "(.*)"(?:\s*#.*)?$', "\n".join(lines), re.M))


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_a_wrapper_shows_the_declarations_except_where_it_says_why(wrapper, tmp_path):
    """--help of every wrapper: each flag passing on a model option shows the option's declared default and help
    line, or the wrapper's override of it, which the wrapper writes after wrapper_options with a comment saying
    why and which differs from the declaration (an override the declaration has caught up with goes)."""
    from common.options import default_text, short_help
    lines = _wrapper_lines(wrapper)
    exposed, model = _exposed(lines)
    if not exposed:
        pytest.skip("no model options")
    declared = _options(model)
    overrides, helps = _overrides(lines, exposed), _helps(lines)
    out = run(["bash", os.path.join(REPO, wrapper), "--help"], OUTPUT_ROOT=tmp_path).stdout
    shown = dict(re.findall(r"^    --(\w+) +(.*)$", out, re.M))
    for flag, option in exposed.items():
        opt = declared[option]
        if flag in overrides:
            value, reason = overrides[flag]
            assert reason, "%s: %s=%s overrides the declared %r without a comment saying why" % (
                wrapper, flag, value, opt.default)
            assert value != default_text(opt), "%s: %s=%s is the declared default: drop the override" % (
                wrapper, flag, value)
        if flag in helps:
            assert helps[flag] != short_help(opt), "%s: wrapper_help %s is the declared help: drop it" % (
                wrapper, flag)
        default = overrides[flag][0] if flag in overrides else default_text(opt)
        expected = "%s (default: %s)" % (helps.get(flag, short_help(opt)), default or "none")
        assert shown[flag] == expected, (wrapper, flag)


def test_wrapper_declarations_reach_bash_quoted_and_mapped(monkeypatch):
    """common.wrapper_flags: one bash array per column; any help text survives bash; FLAG:OPTION renames."""
    import subprocess
    from common import wrapper_flags
    tricky = Option("note", "str", "a b", "it's `$HOME` \"quoted\" (default a b)")
    monkeypatch.setattr(wrapper_flags, "model_options", lambda model: (tricky, Option("n", "float", 0.5, "n")))
    text = wrapper_flags.option_declarations("swa", ["note", "rate:n"])
    script = text + '\nprintf "%s|" "${OPTION_FLAGS[@]}" "${OPTION_HELP[@]}" "${OPTION_KIND[@]}" "${OPTION_DEFAULT[@]}"'
    out = subprocess.check_output(["bash", "-c", script], universal_newlines=True)
    assert out.split("|")[:-1] == ["note", "rate", "it's `$HOME` \"quoted\"", "n", "text", "number", "a b", "0.5"]


def test_a_wrapper_naming_an_undeclared_option_stops_with_one_line(tmp_path):
    wrapper = tmp_path / "fake" / "test" / "train_full_1p.sh"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text('set -euo pipefail\nsource "%s/common/ascend_wrapper.sh"\nwrapper_options swa swa_lr nope\n'
                       'wrapper_parse "$@"\n' % REPO)
    proc = run(["bash", str(wrapper), "--help"], check=False, OUTPUT_ROOT=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["error: swa/options.py declares no option 'nope'",
                                        "train_full_1p.sh: its flag declarations are wrong (above)"]


def test_config_defaults_are_the_declarations():
    from mobilenetv3.trainer import TrainConfig as MobileNetConfig
    from mtnet.trainer import default_config
    from swa.train import TrainConfig as SwaConfig
    for model, config in (("mtnet", default_config()), ("swa", SwaConfig()), ("mobilenetv3", MobileNetConfig())):
        assert {name: getattr(config, name) for name in _options(model)} == \
            {name: opt.default for name, opt in _options(model).items()}, model
        assert hasattr(config, "npu") and not hasattr(config, "npu_options"), model


# ---- AM3 ------------------------------------------------------------------------------------------------------
def test_am3_model_reads_only_its_model_config():
    from am3.options import MODEL_FIELDS
    with open(os.path.join(REPO, "am3", "model.py")) as f:
        read = set(re.findall(r"\bcfg\.(\w+)", f.read()))
    assert read == set(MODEL_FIELDS)


def test_am3_variants_change_only_defaults_of_declared_options():
    from am3 import flags
    from am3.options import OPTIONS, VARIANTS
    names = {opt.name for opt in OPTIONS}
    for variant, changed in VARIANTS.items():
        assert set(changed) <= names
        cfg = flags.parse_config(variant, [])
        assert {k: getattr(cfg.model, k) for k in changed} == changed
        assert cfg.model.num_filters == cfg.num_filters == 64


def _imports(path):
    tree = ast.parse(open(os.path.join(REPO, path)).read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(node.module + "." + a.name for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_no_import_circle_between_am3_flags_and_train():
    assert "am3.flags" not in _imports("am3/train.py") and "am3.train" in _imports("am3/flags.py")


@pytest.mark.parametrize("path", ["common/options.py", "am3/options.py", "mtnet/options.py", "swa/options.py",
                                  "mobilenetv3/options.py"])
def test_declarations_import_no_tensorflow(path):
    assert not {name for name in _imports(path) if "tensorflow" in name or name.startswith("common.tf_compat")
                or name.startswith("common.npu_session")}
