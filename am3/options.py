"""AM3's options, declared once: the four entry scripts' flags (am3/flags.py), the model-only config am3/model.py
sees, and the params.json record. Upstream ElementAI/am3 names, meanings and defaults. No TensorFlow here.

The four scripts differ only in the defaults of VARIANTS; every option stays available in all four.
"""
import collections
import json

from common.options import Option

VARIANTS = {
    "protonet++": dict(encoder_classifier_link="prototypical", task_encoder="class_mean"),
    "tadam": dict(encoder_classifier_link="cbn", task_encoder="class_mean"),
    "AM3_protonet++": dict(encoder_classifier_link="prototypical", task_encoder="self_att_mlp"),
    "AM3_TADAM": dict(encoder_classifier_link="cbn", task_encoder="self_att_mlp"),
}

# In the order of --help; encoder_classifier_link and task_encoder default per script (VARIANTS).
OPTIONS = (
    Option("mode", "str", "train", "train (with periodic validation), eval (accuracy of the latest checkpoint on the "
           "three splits) or test (mean accuracy and 95% confidence interval over many test episodes)",
           choices=("train", "eval", "test")),
    # Data
    Option("data_dir", "str", None, "folder with few-shot-{train,val,test}.npz and few-shot-wordemb-*.npz"),
    Option("data_path", "str", None, "alias of --data_dir (Ascend wrapper name); also tried: DATA_PATH/mini-imagenet "
           "and DATA_PATH/data/mini-imagenet"),
    Option("data_split", "str", None, "split for test mode (default target_tst)",
           choices=("sources", "target_val", "target_tst")),
    Option("augment", "bool", False, "random flips and pad-and-crop of training images"),
    # Training
    Option("number_of_steps", "int", 30000, "training steps (each on num_tasks_per_batch tasks)"),
    Option("train_steps", "int", None, "alias of --number_of_steps (Ascend wrapper name)"),
    Option("number_of_steps_to_early_stop", "int", 1000000, "stop this many steps after the half-way point"),
    Option("log_dir", "str", None, "checkpoints (LOG_DIR/train), summaries and results (default logs/<script>)"),
    Option("num_classes_train", "int", 5, "ways of a training task"),
    Option("num_shots_train", "int", 5, "support images per class in a training task"),
    Option("train_batch_size", "int", 32, "query images per training task"),
    Option("num_tasks_per_batch", "int", 2, "tasks per training step"),
    Option("pre_train_batch_size", "int", 64, "batch size of the auxiliary classification task"),
    Option("num_classes_pretrain", "int", 64, "classes of the auxiliary task (those of the training split)"),
    Option("init_learning_rate", "float", 0.1, "initial learning rate"),
    Option("optimizer", "str", "sgd", "sgd is momentum 0.9", choices=("sgd", "adam")),
    Option("lr_anneal", "str", "pwc", "pwc: /10 at number_of_steps/2 and every num_steps_decay_pwc after, three times",
           choices=("const", "pwc", "cos", "exp")),
    Option("n_lr_decay", "int", 3, "exp: number of decays over the run"),
    Option("lr_decay_rate", "float", 10.0, "exp: divide the rate by this at each decay"),
    Option("num_steps_decay_pwc", "int", 2500, "pwc: steps between decays after the half-way point"),
    Option("clip_gradient_norm", "float", 1.0, "clip each gradient to this norm (0: off)"),
    Option("weights_initializer_factor", "float", 0.1, "variance factor of the normal initializer"),
    Option("save_summaries_secs", "int", 60, "seconds between TensorBoard training summaries"),
    Option("save_checkpoint_steps", "int", 5000, "steps between checkpoints (and one at the end)"),
    Option("keep_checkpoint_max", "int", 5, "checkpoints kept"),
    Option("log_interval_steps", "int", 100, "steps between 'step N, loss : X, dt: Ys' lines"),
    Option("seed", "int", None, "random seed for graph and episode sampling (default: random)"),
    # Auxiliary task (TADAM)
    Option("feat_extract_pretrain", "str", None, "auxiliary all-classes task: multitask (interleaved, with decaying "
           "probability), finetune (feat_extract_pretrain_offset steps first), freeze (same, then backbone frozen)",
           choices=("multitask", "finetune", "freeze")),
    Option("feat_extract_pretrain_offset", "int", 15000, "finetune/freeze: auxiliary-only steps"),
    Option("feat_extract_pretrain_decay_rate", "float", 0.9, "multitask: the auxiliary probability is rate^(k+1) in "
           "the k-th of decay_n phases"),
    Option("feat_extract_pretrain_decay_n", "int", 20, "multitask: number of probability phases"),
    # Evaluation
    Option("max_number_of_evaluations", "int", 1, "eval mode: evaluations of new checkpoints before exiting (upstream "
           "waited forever)"),
    Option("eval_interval_secs", "int", 120, "eval mode: seconds between checks for a new checkpoint"),
    Option("eval_interval_steps", "int", 1000, "training steps between validations (0: off)"),
    Option("eval_interval_fine_steps", "int", 250, "the same, in the second half of training"),
    Option("eval_batch_size", "int", 100, "query images per evaluation episode"),
    Option("num_classes_test", "int", 5, "ways of an evaluation task"),
    Option("num_shots_test", "int", 5, "support images per class in an evaluation task"),
    Option("num_cases_test", "int", 50000, "test mode: query images in total (episodes = num_cases_test / "
           "eval_batch_size)"),
    Option("num_cases_val", "int", 5000, "validation during training and eval mode: query images per split"),
    Option("pretrained_model_dir", "str", None, "eval/test: checkpoint folder (default LOG_DIR/train)"),
    Option("upstream_eval", "bool", False, "test mode: evaluate as upstream did, restoring only the backbone's model "
           "variables, so the FiLM output multipliers and power_weight1 keep their initial values (TADAM runs with "
           "FiLM off; an upstream bug, here to compare with numbers measured that way)"),
    # Architecture
    Option("feature_extractor", "str", "simple_res_net", "ResNet-12-like backbone", choices=("simple_res_net",)),
    Option("num_filters", "int", 64, "filters of the first block"),
    Option("num_units_in_block", "int", 3, "conv units per residual block"),
    Option("num_blocks", "int", 4, "residual blocks"),
    Option("num_max_pools", "int", 3, "blocks followed by 2x2 max-pooling"),
    Option("block_size_growth", "float", 2.0, "filter growth factor per block"),
    Option("activation", "str", "swish-1", "backbone activation", choices=("relu", "selu", "swish-1")),
    Option("weight_decay", "float", 0.0005, "L2 weight decay of the backbone and FiLM networks"),
    Option("dropout", "float", 1.0, "keep probability before the feature expansion layer"),
    Option("conv_dropout", "float", None, "dropout rate after each conv unit"),
    Option("feature_dropout_p", "float", None, "dropout rate on the features"),
    Option("feature_expansion_size", "int", None, "1x1 conv to this many channels before pooling"),
    Option("feature_bottleneck_size", "int", None, "FC bottleneck after pooling"),
    Option("embedding_pooled", "bool", True, "global average pooling of the last feature map"),
    Option("encoder_sharing", "str", "shared", "siamese: separate weights for the task-encoding (TADAM) pass",
           choices=("shared", "siamese")),
    Option("encoder_classifier_link", "str", "cbn", "prototypical: ProtoNets++ head; cbn: TADAM (FiLM task "
           "conditioning + metric scaling)", choices=("prototypical", "cbn")),
    Option("task_encoder", "str", "self_att_mlp", "class_mean: visual prototypes; self_att_mlp: AM3 adaptive mixing "
           "with word embeddings; fixed_alpha_mlp: AM3 mixing with the constant --alpha",
           choices=("class_mean", "self_att_mlp", "fixed_alpha_mlp")),
    Option("metric_multiplier_init", "float", 10.0, "TADAM metric scale at the start"),
    Option("metric_multiplier_trainable", "bool", False, "learn the metric scale"),
    Option("polynomial_metric_order", "int", 1, "TADAM metric: polynomial order in the distance"),
    Option("weight_decay_cbn", "float", 0.01, "L2 decay of the FiLM output multipliers"),
    Option("cbn_premultiplier", "str", "var", "factor of the FiLM outputs, 0 at the start: var (a learned scalar) or "
           "projection (a linear map of the task embedding, one factor per task)", choices=("var", "projection")),
    Option("cbn_num_layers", "int", 3, "FC layers of each FiLM generator"),
    Option("cbn_per_block", "bool", False, "FiLM only on the last unit of each block"),
    Option("cbn_per_network", "bool", False, "FiLM only on the last unit of the network"),
    Option("cbn_after_shortcut", "bool", False, "apply FiLM after adding the shortcut"),
    # AM3
    Option("alpha", "float", 1.0, "fixed_alpha_mlp: the constant weight of the visual prototype"),
    Option("mlp_type", "str", "non-linear", "g(e): FC, or FC-ReLU-dropout-FC", choices=("linear", "non-linear")),
    Option("mlp_weight_decay", "float", 0.0, "L2 decay of g"),
    Option("mlp_dropout", "float", 0.0, "dropout rate inside g"),
    Option("att_input", "str", "word", "input of the mixing network: g(e), e, the visual prototype, both; or, one "
           "weight per query and class, the visual prototype (queryproto) or g(e) (queryword) with the query's "
           "features", choices=("word", "word_original", "proto", "combined", "queryproto", "queryword")),
    Option("att_type", "str", "non-linear", "mixing network shape", choices=("linear", "non-linear")),
    Option("att_weight_decay", "float", 0.0, "L2 decay of the mixing network"),
    Option("att_dropout", "float", 0.0, "dropout rate inside the mixing network"),
    Option("activation_mlp", "str", "relu", "activation of g and of the mixing network",
           choices=("relu", "selu", "swish-1")),
)

# What am3/model.py reads: the layers' shapes, initialisation, regularisation and dropout. It gets only these
# (cfg.model, a ModelConfig), so no training or evaluation option can steer a layer.
MODEL_FIELDS = (
    "num_filters", "num_units_in_block", "num_blocks", "num_max_pools", "block_size_growth", "activation",
    "weights_initializer_factor", "weight_decay", "dropout", "conv_dropout", "feature_dropout_p",
    "feature_expansion_size", "feature_bottleneck_size", "embedding_pooled", "encoder_sharing",
    "encoder_classifier_link", "task_encoder", "metric_multiplier_init", "metric_multiplier_trainable",
    "polynomial_metric_order", "weight_decay_cbn", "cbn_premultiplier", "cbn_num_layers", "cbn_per_block",
    "cbn_per_network", "cbn_after_shortcut", "alpha", "mlp_type", "mlp_weight_decay", "mlp_dropout", "att_input",
    "att_type", "att_weight_decay", "att_dropout", "activation_mlp")

ModelConfig = collections.namedtuple("ModelConfig", MODEL_FIELDS)

# Options that must match between training and a later eval/test run on the same checkpoint.
CHECKPOINT_OPTIONS = (
    "encoder_classifier_link", "task_encoder", "num_filters", "num_units_in_block", "num_blocks", "num_max_pools",
    "block_size_growth", "activation", "feature_expansion_size", "feature_bottleneck_size", "embedding_pooled",
    "encoder_sharing", "polynomial_metric_order", "cbn_num_layers", "cbn_per_block", "cbn_per_network",
    "cbn_premultiplier", "mlp_type", "att_input", "att_type", "feat_extract_pretrain", "num_classes_pretrain")


def model_config(cfg):
    """The model-only config (ModelConfig) of a run's config."""
    return ModelConfig(**{name: getattr(cfg, name) for name in MODEL_FIELDS})


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
    return ["%s=%r (trained with %r)" % (k, getattr(cfg, k), saved[k]) for k in CHECKPOINT_OPTIONS
            if k in saved and saved[k] != getattr(cfg, k)]
