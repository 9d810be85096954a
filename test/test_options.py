"""Each option declared once (common/options.py and <model>/options.py): the flags, the configs' defaults, the
README tables and the wrappers' defaults agree with the one declaration; AM3's model sees only model options."""
import argparse
import ast
import os
import re

import pytest

from common.options import Option, add_arguments, define_flags, markdown_table, values
from conftest import REPO

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


def _same(text, default):
    """A default as a README or a shell variable writes it ('' and '-' for none) equals the declared one."""
    text = text.strip().strip('"').strip("`")
    if default is None or default == "":
        return text in ("", "-", "–", "None")
    if isinstance(default, bool):
        return text == str(default)
    if isinstance(default, (int, float)):
        try:
            return float(text) == default
        except ValueError:
            return False
    return text == default


def _readme_defaults(path):
    """(flag name, default text) of each row of the README's '| flag | default | meaning |' table."""
    with open(os.path.join(REPO, path)) as f:
        lines = f.read().splitlines()
    start = lines.index("| flag | default | meaning |") + 2
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        names = re.findall(r"`(?:--)?(\w+)`", cells[0])
        texts = [t.strip() for t in cells[1].split(",")]
        for i, name in enumerate(names):
            yield name, texts[i] if len(texts) == len(names) else cells[1]


@pytest.mark.parametrize("model, readme, aliases", [
    ("mtnet", "mtnet/README.md", {}),
    ("mobilenetv3", "mobilenetv3/README.md", {"modeldir": "save_dir", "image_size": "height"})])
def test_readme_flag_table_shows_the_declared_defaults(model, readme, aliases):
    declared = _options(model)
    checked = []
    for name, text in _readme_defaults(readme):
        opt = declared.get(aliases.get(name, name))
        if opt is None or opt.default in (None, ""):     # a default derived at run time, described in words
            continue
        assert _same(text, opt.default), "%s: README says %s, declared %r" % (name, text, opt.default)
        checked.append(name)
    assert len(checked) >= 10, checked


def _shell_defaults(path):
    with open(os.path.join(REPO, path)) as f:
        return dict(re.findall(r"^(\w+)=(\S*)", f.read(), re.M))


@pytest.mark.parametrize("model, wrapper, names", [
    ("mobilenetv3", "mobilenetv3/test/train_flags.sh",
     {"model": "model", "image_size": "height", "epochs": "epochs", "max_step": "max_step", "batch": "batch",
      "learning_rate": "learning_rate", "save_interval": "save_interval", "patience": "patience",
      "weights": "weights", "freeze_backbone_epochs": "freeze_backbone_epochs", "weight_decay": "weight_decay",
      "recipe": "recipe", "input_range": "input_range", "augmentation": "augmentation"}),
    ("swa", "swa/test/train_flags.sh",
     {n: n for n in ("train_epochs", "batch_size", "num_samples", "swa_start", "swa_freq", "swa_lr", "swa_lr2")}),
    ("am3", "am3/test/train_full_1p.sh", {"train_steps": "number_of_steps", "num_cases_test": "num_cases_test",
                                          "eval_batch_size": "eval_batch_size", "num_filters": "num_filters"}),
    ("am3", "am3/test/train_performance_1p.sh", {"num_filters": "num_filters"})])
def test_wrapper_defaults_are_the_declared_ones(model, wrapper, names):
    """The wrappers' flags that pass a script's option on keep its declared default (a wrapper's own, such as
    the performance run's step count, is not listed)."""
    declared, shell = _options(model), _shell_defaults(wrapper)
    for variable, option in names.items():
        assert _same(shell[variable], declared[option].default), \
            "%s: %s=%s, declared %s=%r" % (wrapper, variable, shell[variable], option, declared[option].default)


@pytest.mark.parametrize("model, wrapper, not_declared", [
    ("am3", "am3/test/train_full_1p.sh", set()), ("am3", "am3/test/train_performance_1p.sh", set()),
    ("mtnet", "mtnet/test/seed_config.sh", {"train_steps"}),     # the wrappers' name of metatrain_iterations
    ("mtnet", "mtnet/test/reproduce.sh", {"variants"}),           # the rows of the paper table to run
    ("swa", "swa/test/train_flags.sh", {"data_path"}),            # the script's unused ModelZoo flag
    ("mobilenetv3", "mobilenetv3/test/train_flags.sh", {"data_path", "image_size", "modeldir"})])  # train_cls.py's
def test_wrapper_flags_are_declared_options(model, wrapper, not_declared):
    with open(os.path.join(REPO, wrapper)) as f:
        flags = set(re.findall(r"^wrapper_flag (\w+)", f.read(), re.M))
    assert not_declared <= flags and flags - not_declared <= set(_options(model))


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
