"""Train MobileNetV3 on an image folder (data/train/<class>/, data/validation/<class>/).

    python train_cls.py --data_path=data --model=small --batch=32
    python train_cls.py --config=config/config.json        # upstream's config-file route; flags override it
    python train_cls.py --data_path=data --model=large --weights=weights_mobilenet_v3_large_224_1.0_float.h5
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.ascend_flags import add_ascend_arguments, npu_options_from
from common.errors import ArgumentParser, UserError, main_guard
from common.precision import derandomise

# config.json keys (upstream's names plus ours) -> TrainConfig fields
CONFIG_KEYS = ("model", "variant", "height", "width", "alpha", "dropout", "class_number", "learning_rate", "batch",
               "epochs", "max_step", "patience", "save_interval", "train_dir", "eval_dir", "save_dir", "weights",
               "augment", "seed", "log_every", "recipe", "weight_decay", "input_range", "freeze_backbone_epochs",
               "augmentation")


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="JSON file with upstream's config.json keys; command-line flags win")
    p.add_argument("--model", help="large or small (default small)")
    p.add_argument("--variant", help="paper (default) or upstream (xiaochus/MobileNetV3 shapes, loads its .h5)")
    p.add_argument("--data_path", help="folder holding train/ and validation/ (or eval/)")
    p.add_argument("--train_dir", help="training image folder (default <data_path>/train)")
    p.add_argument("--eval_dir", help="validation image folder (default <data_path>/validation)")
    p.add_argument("--modeldir", "--save_dir", dest="save_dir", help="checkpoints, best model, hist.csv (default save)")
    p.add_argument("--image_size", type=int, help="input height and width (default 224)")
    p.add_argument("--height", type=int, help="input height")
    p.add_argument("--width", type=int, help="input width")
    p.add_argument("--alpha", type=float, help="width multiplier (default 1.0)")
    p.add_argument("--dropout", type=float, help="dropout rate before the classifier (default 0.2 paper, 0 upstream)")
    p.add_argument("--class_number", type=int, help="expected number of classes (checked against the folders)")
    p.add_argument("--learning_rate", type=float,
                   help="initial learning rate (default: the recipe's, Adam 0.001, paper 0.1 x batch / 4096)")
    p.add_argument("--recipe", help="adam (default, upstream's) or paper (RMSProp schedule, L2 1e-5, weight average)")
    p.add_argument("--weight_decay", type=float,
                   help="L2 on convolution and dense kernels, not depthwise (default: 0; paper recipe 1e-5)")
    p.add_argument("--batch", type=int, help="batch size per device (default 32)")
    p.add_argument("--epochs", type=int, help="epochs (default 20)")
    p.add_argument("--max_step", type=int, help="stop after this many steps in total (default 0: all epochs)")
    p.add_argument("--patience", type=int, help="early stopping patience in epochs on val_acc (default 5; 0: off)")
    p.add_argument("--save_interval", type=int, help="checkpoint every N steps (default 0: every epoch)")
    p.add_argument("--weights", help="initial weights: a keras.applications MobileNetV3 .h5 (ImageNet, with or "
                   "without top), our checkpoint or dir, or an upstream Keras .h5 (with --variant=upstream)")
    p.add_argument("--input_range", help="0,1 or -1,1: the range the first layer sees (default: what --weights "
                   "expects, -1,1 for ImageNet files; else 0,1)")
    p.add_argument("--freeze_backbone_epochs", type=int,
                   help="train only the head and classifier, batch norm frozen, for this many epochs (default 0)")
    p.add_argument("--no_augment", dest="augment", action="store_false", default=None,
                   help="train without the random affine/flip augmentation")
    p.add_argument("--augmentation", help="upstream (Keras affine warp and flip) or inception (TF-slim's ImageNet "
                   "random-resized crop, flip and colour); default: the recipe's (paper: inception, adam: upstream)")
    p.add_argument("--seed", type=int, help="graph random seed (default 0)")
    p.add_argument("--log_every", type=int, help="steps between loss lines (default 10)")
    add_ascend_arguments(p)
    return p.parse_args(argv)


def build_config(args):
    options = npu_options_from(args)
    # TensorFlow loads here, after the flags: --help and a flag error answer without it.
    from common import distributed
    from mobilenetv3.trainer import TrainConfig, find_eval_dir
    values = {}
    if args.config:
        if not os.path.isfile(args.config):
            raise UserError("config file %s does not exist" % args.config)
        try:
            with open(args.config) as handle:
                loaded = json.load(handle)
        except ValueError as err:
            raise UserError("config file %s is not valid JSON: %s" % (args.config, err))
        unknown = sorted(set(loaded) - set(CONFIG_KEYS))
        if unknown:
            raise UserError("config file %s: unknown keys %s (known: %s)"
                            % (args.config, ", ".join(unknown), ", ".join(CONFIG_KEYS)))
        values.update({k: v for k, v in loaded.items() if v is not None})
    if args.image_size is not None:   # 0 too: it is an error below, not the 224 default
        values["height"] = values["width"] = args.image_size
    values.update({k: getattr(args, k) for k in CONFIG_KEYS if getattr(args, k, None) is not None})
    if args.data_path:
        if not args.train_dir:
            values["train_dir"] = os.path.join(args.data_path, "train")
        if not args.eval_dir:
            values["eval_dir"] = find_eval_dir(args.data_path)
    if not values.get("train_dir"):
        raise UserError("no training data: give --data_path (with train/ and validation/), --train_dir, or --config")
    if not values.get("eval_dir"):
        values["eval_dir"] = find_eval_dir(os.path.dirname(os.path.normpath(values["train_dir"])))
    for key in ("height", "width", "batch", "epochs", "max_step", "patience", "save_interval", "seed", "log_every",
                "freeze_backbone_epochs"):
        if key in values:
            values[key] = int(values[key])
    for key in ("alpha", "learning_rate", "weight_decay"):
        if key in values:
            values[key] = float(values[key])
    config = TrainConfig(npu=options, cluster=distributed.cluster_from_env(), **values)
    derandomise(config, (("dropout", 0.0, "dropout before the classifier"), ("augment", False, "random affine/flip "
                         "augmentation"), ("shuffle", False, "shuffling")), config.npu)
    return config


@main_guard
def main(argv=None):
    config = build_config(parse_args(argv))
    from mobilenetv3.trainer import train
    train(config)


if __name__ == "__main__":
    main()
