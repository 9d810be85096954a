"""Command-line flags of the four AM3 entry scripts (upstream names, meanings and defaults) -> a plain config.

The scripts differ only in the defaults of VARIANTS; every option stays available in all four.
"""
import json
import os
import sys
import types

from common.ascend_flags import add_ascend_arguments, npu_options_from, str2bool
from common.precision import derandomise
from common.errors import ArgumentParser, UserError, main_guard

VARIANTS = {
    "protonet++": dict(encoder_classifier_link="prototypical", task_encoder="class_mean"),
    "tadam": dict(encoder_classifier_link="cbn", task_encoder="class_mean"),
    "AM3_protonet++": dict(encoder_classifier_link="prototypical", task_encoder="self_att_mlp"),
    "AM3_TADAM": dict(encoder_classifier_link="cbn", task_encoder="self_att_mlp"),
}

# Options that must match between training and a later eval/test run on the same checkpoint.
MODEL_OPTIONS = (
    "encoder_classifier_link", "task_encoder", "num_filters", "num_units_in_block", "num_blocks", "num_max_pools",
    "block_size_growth", "activation", "feature_expansion_size", "feature_bottleneck_size", "embedding_pooled",
    "encoder_sharing", "polynomial_metric_order", "cbn_num_layers", "cbn_per_block", "cbn_per_network",
    "cbn_premultiplier", "mlp_type", "att_input", "att_type", "feat_extract_pretrain", "num_classes_pretrain")


def build_parser(variant):
    """argparse parser for `variant` (a key of VARIANTS)."""
    defaults = VARIANTS[variant]
    p = ArgumentParser(prog=variant + ".py", description="%s few-shot learning (TF 1.15; Ascend NPU, "
                       "GPU or CPU). Flags keep the upstream ElementAI/am3 names." % variant)
    b = str2bool
    a = p.add_argument
    a("--mode", default="train", choices=["train", "eval", "test"],
      help="train (with periodic validation), eval (accuracy of the latest checkpoint on the three splits) "
           "or test (mean accuracy and 95%% confidence interval over many test episodes)")
    # Data
    a("--data_dir", default=None, help="folder with few-shot-{train,val,test}.npz and few-shot-wordemb-*.npz")
    a("--data_path", default=None, help="alias of --data_dir (Ascend wrapper name); also tried: "
                                        "DATA_PATH/mini-imagenet and DATA_PATH/data/mini-imagenet")
    a("--data_split", default=None, choices=["sources", "target_val", "target_tst"],
      help="split for test mode (default target_tst)")
    a("--augment", type=b, default=False, help="random flips and pad-and-crop of training images")
    # Training
    a("--number_of_steps", type=int, default=30000, help="training steps (each on num_tasks_per_batch tasks)")
    a("--train_steps", type=int, default=None, help="alias of --number_of_steps (Ascend wrapper name)")
    a("--number_of_steps_to_early_stop", type=int, default=1000000,
      help="stop this many steps after the half-way point")
    a("--log_dir", default=None, help="checkpoints (LOG_DIR/train), summaries and results (default logs/<script>)")
    a("--num_classes_train", type=int, default=5, help="ways of a training task")
    a("--num_shots_train", type=int, default=5, help="support images per class in a training task")
    a("--train_batch_size", type=int, default=32, help="query images per training task")
    a("--num_tasks_per_batch", type=int, default=2, help="tasks per training step")
    a("--pre_train_batch_size", type=int, default=64, help="batch size of the auxiliary classification task")
    a("--num_classes_pretrain", type=int, default=64,
      help="classes of the auxiliary task (those of the training split)")
    a("--init_learning_rate", type=float, default=0.1, help="initial learning rate")
    a("--optimizer", default="sgd", choices=["sgd", "adam"], help="sgd is momentum 0.9")
    a("--lr_anneal", default="pwc", choices=["const", "pwc", "cos", "exp"],
      help="pwc: /10 at number_of_steps/2 and every num_steps_decay_pwc after, three times")
    a("--n_lr_decay", type=int, default=3, help="exp: number of decays over the run")
    a("--lr_decay_rate", type=float, default=10.0, help="exp: divide the rate by this at each decay")
    a("--num_steps_decay_pwc", type=int, default=2500, help="pwc: steps between decays after the half-way point")
    a("--clip_gradient_norm", type=float, default=1.0, help="clip each gradient to this norm (0: off)")
    a("--weights_initializer_factor", type=float, default=0.1, help="variance factor of the normal initializer")
    a("--save_summaries_secs", type=int, default=60, help="seconds between TensorBoard training summaries")
    a("--save_checkpoint_steps", type=int, default=5000, help="steps between checkpoints (and one at the end)")
    a("--keep_checkpoint_max", type=int, default=5, help="checkpoints kept")
    a("--log_interval_steps", type=int, default=100, help="steps between 'step N, loss : X, dt: Ys' lines")
    a("--seed", type=int, default=None, help="random seed for graph and episode sampling (default: random)")
    # Auxiliary task (TADAM)
    a("--feat_extract_pretrain", default=None, choices=["multitask", "finetune", "freeze"],
      help="auxiliary all-classes task: multitask (interleaved, with decaying probability), finetune "
           "(feat_extract_pretrain_offset steps first), freeze (same, then backbone frozen)")
    a("--feat_extract_pretrain_offset", type=int, default=15000, help="finetune/freeze: auxiliary-only steps")
    a("--feat_extract_pretrain_decay_rate", type=float, default=0.9,
      help="multitask: the auxiliary probability is rate^(k+1) in the k-th of decay_n phases")
    a("--feat_extract_pretrain_decay_n", type=int, default=20, help="multitask: number of probability phases")
    # Evaluation
    a("--max_number_of_evaluations", type=int, default=1,
      help="eval mode: evaluations of new checkpoints before exiting (upstream waited forever)")
    a("--eval_interval_secs", type=int, default=120, help="eval mode: seconds between checks for a new checkpoint")
    a("--eval_interval_steps", type=int, default=1000, help="training steps between validations (0: off)")
    a("--eval_interval_fine_steps", type=int, default=250, help="the same, in the second half of training")
    a("--eval_batch_size", type=int, default=100, help="query images per evaluation episode")
    a("--num_classes_test", type=int, default=5, help="ways of an evaluation task")
    a("--num_shots_test", type=int, default=5, help="support images per class in an evaluation task")
    a("--num_cases_test", type=int, default=50000,
      help="test mode: query images in total (episodes = num_cases_test / eval_batch_size)")
    a("--num_cases_val", type=int, default=5000,
      help="validation during training and eval mode: query images per split")
    a("--pretrained_model_dir", default=None, help="eval/test: checkpoint folder (default LOG_DIR/train)")
    a("--upstream_eval", type=b, default=False,
      help="test mode: evaluate as upstream did, restoring only the backbone's model variables, so the FiLM "
           "output multipliers and power_weight1 keep their initial values (TADAM runs with FiLM off; an "
           "upstream bug, here to compare with numbers measured that way)")
    # Architecture
    a("--feature_extractor", default="simple_res_net", choices=["simple_res_net"], help="ResNet-12-like backbone")
    a("--num_filters", type=int, default=64, help="filters of the first block")
    a("--num_units_in_block", type=int, default=3, help="conv units per residual block")
    a("--num_blocks", type=int, default=4, help="residual blocks")
    a("--num_max_pools", type=int, default=3, help="blocks followed by 2x2 max-pooling")
    a("--block_size_growth", type=float, default=2.0, help="filter growth factor per block")
    a("--activation", default="swish-1", choices=sorted(["relu", "selu", "swish-1"]), help="backbone activation")
    a("--weight_decay", type=float, default=0.0005, help="L2 weight decay of the backbone and FiLM networks")
    a("--dropout", type=float, default=1.0, help="keep probability before the feature expansion layer")
    a("--conv_dropout", type=float, default=None, help="dropout rate after each conv unit")
    a("--feature_dropout_p", type=float, default=None, help="dropout rate on the features")
    a("--feature_expansion_size", type=int, default=None, help="1x1 conv to this many channels before pooling")
    a("--feature_bottleneck_size", type=int, default=None, help="FC bottleneck after pooling")
    a("--embedding_pooled", type=b, default=True, help="global average pooling of the last feature map")
    a("--encoder_sharing", default="shared", choices=["shared", "siamese"],
      help="siamese: separate weights for the task-encoding (TADAM) pass")
    a("--encoder_classifier_link", default=defaults["encoder_classifier_link"], choices=["prototypical", "cbn"],
      help="prototypical: ProtoNets++ head; cbn: TADAM (FiLM task conditioning + metric scaling)")
    a("--task_encoder", default=defaults["task_encoder"], choices=["class_mean", "self_att_mlp", "fixed_alpha_mlp"],
      help="class_mean: visual prototypes; self_att_mlp: AM3 adaptive mixing with word embeddings; "
           "fixed_alpha_mlp: AM3 mixing with the constant --alpha")
    a("--metric_multiplier_init", type=float, default=10.0, help="TADAM metric scale at the start")
    a("--metric_multiplier_trainable", type=b, default=False, help="learn the metric scale")
    a("--polynomial_metric_order", type=int, default=1, help="TADAM metric: polynomial order in the distance")
    a("--weight_decay_cbn", type=float, default=0.01, help="L2 decay of the FiLM output multipliers")
    a("--cbn_premultiplier", default="var", choices=["var", "projection"],
      help="factor of the FiLM outputs, 0 at the start: var (a learned scalar) or projection (a linear map of the "
           "task embedding, one factor per task)")
    a("--cbn_num_layers", type=int, default=3, help="FC layers of each FiLM generator")
    a("--cbn_per_block", type=b, default=False, help="FiLM only on the last unit of each block")
    a("--cbn_per_network", type=b, default=False, help="FiLM only on the last unit of the network")
    a("--cbn_after_shortcut", type=b, default=False, help="apply FiLM after adding the shortcut")
    # AM3
    a("--alpha", type=float, default=1.0, help="fixed_alpha_mlp: the constant weight of the visual prototype")
    a("--mlp_type", default="non-linear", choices=["linear", "non-linear"], help="g(e): FC, or FC-ReLU-dropout-FC")
    a("--mlp_weight_decay", type=float, default=0.0, help="L2 decay of g")
    a("--mlp_dropout", type=float, default=0.0, help="dropout rate inside g")
    a("--att_input", default="word",
      choices=["word", "word_original", "proto", "combined", "queryproto", "queryword"],
      help="input of the mixing network: g(e), e, the visual prototype, both; or, one weight per query and "
           "class, the visual prototype (queryproto) or g(e) (queryword) with the query's features")
    a("--att_type", default="non-linear", choices=["linear", "non-linear"], help="mixing network shape")
    a("--att_weight_decay", type=float, default=0.0, help="L2 decay of the mixing network")
    a("--att_dropout", type=float, default=0.0, help="dropout rate inside the mixing network")
    a("--activation_mlp", default="relu", choices=sorted(["relu", "selu", "swish-1"]),
      help="activation of g and of the mixing network")
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
    return cfg


def parse_config(variant, argv=None):
    return config_from_args(build_parser(variant).parse_args(argv), variant)


def config_record(cfg):
    """JSON-able dict of the config, for LOG_DIR/params.json (a record only: never read back as flags)."""
    simple = (str, int, float, bool, type(None))
    return {k: v for k, v in sorted(vars(cfg).items()) if k != "npu" and isinstance(v, simple)}


def model_options_mismatch(cfg, params_path):
    """Names of model options that differ from those recorded in params.json when the checkpoint was trained."""
    try:
        with open(params_path) as f:
            saved = json.load(f)
    except (IOError, ValueError):
        return []
    return ["%s=%r (trained with %r)" % (k, getattr(cfg, k), saved[k]) for k in MODEL_OPTIONS
            if k in saved and saved[k] != getattr(cfg, k)]


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
