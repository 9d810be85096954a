"""MobileNetV3's training options, declared once: train_cls.py's flags and config-file keys and
trainer.TrainConfig's defaults, the README's table and the wrappers' flags come from OPTIONS. No TensorFlow here.

On the command line every option defaults to "not given" (a --config file fills the rest), so a help text shows
the declared default through "{default}".
"""
from common.options import Option


def _option(name, kind, default, help_text):
    return Option(name, kind, default, help_text.replace("{default}", str(default)))


# In the order of --help; the names are also the keys of a --config file (upstream's config.json plus ours).
OPTIONS = (
    _option("model", "str", "small", "large or small (default {default})"),
    _option("variant", "str", "paper", "{default} (default) or upstream (xiaochus/MobileNetV3 shapes, loads its .h5)"),
    _option("train_dir", "str", "", "training image folder (default <data_path>/train)"),
    _option("eval_dir", "str", "", "validation image folder (default <data_path>/validation)"),
    _option("save_dir", "str", "save", "checkpoints, best model, hist.csv (default {default})"),
    _option("height", "int", 224, "input height"),
    _option("width", "int", 224, "input width"),
    _option("alpha", "float", 1.0, "width multiplier (default {default})"),
    _option("dropout", "float", None, "dropout rate before the classifier (default 0.2 paper, 0 upstream)"),
    _option("class_number", "int", None, "expected number of classes (checked against the folders)"),
    _option("learning_rate", "float", None,
            "initial learning rate (default: the recipe's, Adam 0.001, paper 0.1 x batch / 4096)"),
    _option("recipe", "str", "adam",
            "{default} (default, upstream's) or paper (RMSProp schedule, L2 1e-5, weight average)"),
    _option("weight_decay", "float", None,
            "L2 on convolution and dense kernels, not depthwise (default: 0; paper recipe 1e-5)"),
    _option("batch", "int", 32, "batch size per device (default {default})"),
    _option("epochs", "int", 20, "epochs (default {default})"),
    _option("max_step", "int", 0, "stop after this many steps in total (default {default}: all epochs)"),
    _option("patience", "int", 5, "early stopping patience in epochs on val_acc (default {default}; 0: off)"),
    _option("save_interval", "int", 0, "checkpoint every N steps (default {default}: every epoch)"),
    _option("weights", "str", "", "initial weights: a keras.applications MobileNetV3 .h5 (ImageNet, with or "
            "without top), our checkpoint or dir, or an upstream Keras .h5 (with --variant=upstream)"),
    _option("input_range", "str", "", "0,1 or -1,1: the range the first layer sees (default: what --weights "
            "expects, -1,1 for ImageNet files; else 0,1)"),
    _option("freeze_backbone_epochs", "int", 0,
            "train only the head and classifier, batch norm frozen, for this many epochs (default {default})"),
    _option("augment", "bool", True, "the random affine/flip augmentation of the training images"),
    _option("augmentation", "str", "", "upstream (Keras affine warp and flip) or inception (TF-slim's ImageNet "
            "random-resized crop, flip and colour); default: the recipe's (paper: inception, adam: upstream)"),
    _option("seed", "int", 0, "graph random seed (default {default})"),
    _option("log_every", "int", 10, "steps between loss lines (default {default})"),
)

BY_NAME = {opt.name: opt for opt in OPTIONS}


def pick(*wanted):
    return tuple(BY_NAME[name] for name in wanted)
