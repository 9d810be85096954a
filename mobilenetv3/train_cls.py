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
from common.options import add_arguments
from common.precision import derandomise
from mobilenetv3.options import BY_NAME, OPTIONS, pick

# config.json keys (upstream's names plus ours) = TrainConfig's options
CONFIG_KEYS = tuple(opt.name for opt in OPTIONS)


def _add(parser, *names):
    """The declared options `names` as flags that default to "not given" (a config file or TrainConfig fills in)."""
    add_arguments(parser, pick(*names), **dict.fromkeys(names))


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="JSON file with upstream's config.json keys; command-line flags win")
    _add(p, "model", "variant")
    p.add_argument("--data_path", help="folder holding train/ and validation/ (or eval/)")
    _add(p, "train_dir", "eval_dir")
    p.add_argument("--modeldir", "--save_dir", dest="save_dir", help=BY_NAME["save_dir"].help)
    p.add_argument("--image_size", type=int, help="input height and width (default %d)" % BY_NAME["height"].default)
    _add(p, "height", "width", "alpha", "dropout", "class_number", "learning_rate", "recipe", "weight_decay", "batch",
         "epochs", "max_step", "patience", "save_interval", "weights", "input_range", "freeze_backbone_epochs")
    p.add_argument("--no_augment", dest="augment", action="store_false", default=None,
                   help="train without the random affine/flip augmentation")
    _add(p, "augmentation", "seed", "log_every")
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
