"""Classify images with a trained model; prints the top classes and their probabilities.

    python predict.py --modeldir=save image1.jpg [image2.png ...]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.errors import ArgumentParser, main_guard


@main_guard
def main(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, GIF, BMP)")
    p.add_argument("--modeldir", default="save", help="directory written by train_cls.py")
    p.add_argument("--checkpoint", help="checkpoint prefix or directory (default: best, else latest)")
    p.add_argument("--top_k", type=int, default=5, help="classes to show per image")
    args = p.parse_args(argv)
    from mobilenetv3.inference import Predictor   # TensorFlow loads here, after the flags
    predictor = Predictor(args.modeldir, args.checkpoint)
    for path, top in predictor.predict_files(args.images, args.top_k):
        print("%s: %s" % (path, ", ".join("%s %.4f" % pair for pair in top)))


if __name__ == "__main__":
    main()
