"""Top-1/top-5 accuracy of a trained model on an image folder (<dir>/<class>/<image>).

    python eval_cls.py --modeldir=save --data_dir=data/validation
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.ascend_flags import add_ascend_arguments, npu_options_from
from common.errors import ArgumentParser, main_guard


@main_guard
def main(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modeldir", default="save", help="directory written by train_cls.py")
    p.add_argument("--data_dir", required=True, help="image folder to evaluate on")
    p.add_argument("--checkpoint", help="checkpoint prefix or directory (default: best, else latest)")
    p.add_argument("--batch", type=int, default=32, help="batch size")
    add_ascend_arguments(p)
    args = p.parse_args(argv)
    options = npu_options_from(args)
    from mobilenetv3.inference import evaluate   # TensorFlow loads here, after the flags
    result = evaluate(args.modeldir, args.data_dir, args.batch, args.checkpoint, options)
    print("eval: checkpoint=%s images=%d top1=%.4f top%d=%.4f" % (
        result["checkpoint"], result["images"], result["top1"], result["k"], result["top5"]))


if __name__ == "__main__":
    main()
