"""Command-line flags of the four AM3 entry scripts (declared in am3/options.py) -> a plain config."""
import os
import sys
import types

from am3.options import OPTIONS, VARIANTS, model_config
from common.ascend_flags import add_ascend_arguments, npu_options_from
from common.precision import derandomise
from common.errors import ArgumentParser, UserError, main_guard
from common.options import add_arguments


def build_parser(variant):
    """argparse parser for `variant` (a key of VARIANTS)."""
    p = ArgumentParser(prog=variant + ".py", description="%s few-shot learning (TF 1.15; Ascend NPU, "
                       "GPU or CPU). Flags keep the upstream ElementAI/am3 names." % variant)
    add_arguments(p, OPTIONS, **VARIANTS[variant])
    add_ascend_arguments(p)
    return p


# --deterministic: what is random in a run besides the seeded episode sampling and initialisation.
DETERMINISTIC = (("dropout", 1.0, "dropout before the feature expansion"), ("conv_dropout", None, "conv dropout"),
                 ("feature_dropout_p", None, "feature dropout"), ("mlp_dropout", 0.0, "dropout inside g"),
                 ("att_dropout", 0.0, "dropout in the mixing network"),
                 ("augment", False, "random flips and pad-and-crop"))


def config_from_args(args, variant):
    """Plain config object (types.SimpleNamespace) from parsed flags, with aliases resolved and checked."""
    cfg = types.SimpleNamespace(**vars(args))
    cfg.variant = variant
    if cfg.data_path and cfg.data_dir and os.path.abspath(cfg.data_path) != os.path.abspath(cfg.data_dir):
        raise UserError("--data_dir and --data_path name different folders; give one")
    cfg.data_dir = cfg.data_dir or cfg.data_path
    del cfg.data_path
    if cfg.train_steps is not None:
        cfg.number_of_steps = cfg.train_steps
    del cfg.train_steps
    cfg.log_dir = cfg.log_dir or os.path.join("logs", variant)
    cfg.npu = npu_options_from(args)
    derandomise(cfg, DETERMINISTIC, cfg.npu)
    checks = [("number_of_steps", 0), ("num_classes_train", 1), ("num_shots_train", 1), ("train_batch_size", 1),
              ("num_tasks_per_batch", 1), ("num_classes_test", 1), ("num_shots_test", 1), ("eval_batch_size", 1),
              ("num_filters", 1), ("num_blocks", 1), ("num_units_in_block", 1), ("cbn_num_layers", 1),
              ("polynomial_metric_order", 1), ("save_checkpoint_steps", 1), ("keep_checkpoint_max", 1),
              ("log_interval_steps", 1), ("max_number_of_evaluations", 1), ("num_cases_test", 1),
              ("num_cases_val", 1)]
    for name, low in checks:
        if getattr(cfg, name) < low:
            raise UserError("--%s must be at least %d, got %s" % (name, low, getattr(cfg, name)))
    if not cfg.init_learning_rate > 0:   # 0 trains nothing, a negative rate climbs the loss
        raise UserError("--init_learning_rate must be positive, got %s" % cfg.init_learning_rate)
    if not 0.0 <= cfg.alpha <= 1.0:
        raise UserError("--alpha must be in [0, 1], got %s" % cfg.alpha)
    for name in ("mlp_dropout", "att_dropout"):
        if not 0.0 <= getattr(cfg, name) < 1.0:
            raise UserError("--%s is a dropout rate in [0, 1), got %s" % (name, getattr(cfg, name)))
    if not 0.0 < cfg.dropout <= 1.0:
        raise UserError("--dropout is a keep probability in (0, 1], got %s" % cfg.dropout)
    for name in ("conv_dropout", "feature_dropout_p"):
        if getattr(cfg, name) is not None and not 0.0 <= getattr(cfg, name) < 1.0:
            raise UserError("--%s is a dropout rate in [0, 1), got %s" % (name, getattr(cfg, name)))
    if cfg.encoder_sharing == "siamese" and cfg.encoder_classifier_link != "cbn":
        raise UserError("--encoder_sharing=siamese needs --encoder_classifier_link=cbn (only TADAM encodes tasks "
                        "with a second network)")
    if cfg.mode == "train" and cfg.npu.iterations_per_loop > 1 and cfg.number_of_steps % cfg.npu.iterations_per_loop:
        raise UserError("--number_of_steps (%d) must be a multiple of --iterations_per_loop (%d)"
                        % (cfg.number_of_steps, cfg.npu.iterations_per_loop))
    cfg.model = model_config(cfg)
    return cfg


def parse_config(variant, argv=None):
    return config_from_args(build_parser(variant).parse_args(argv), variant)


@main_guard
def main(variant, argv=None):
    """Entry point of the four scripts: flags -> config -> am3.train.run."""
    if sys.version_info < (3, 8):   # TF 1.15's info and warning lines; common/tf_compat.py quiets TF 2.x further
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cfg = parse_config(variant, argv)
    from common.tf_compat import tf
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
    from am3 import train
    return train.run(cfg)
