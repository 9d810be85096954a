"""Export a trained model for serving: a frozen GraphDef, a SavedModel (signature serving_default) and labels.txt.

    python export.py --modeldir=save --export_dir=export
Inputs `images` float32 [N, H, W, 3] in [0, 1]; outputs `probabilities` [N, classes] and `classes` [N].
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.errors import ArgumentParser, main_guard


@main_guard
def main(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modeldir", default="save", help="directory written by train_cls.py")
    p.add_argument("--export_dir", required=True, help="output directory (its saved_model/ must not exist)")
    p.add_argument("--checkpoint", help="checkpoint prefix or directory (default: best, else latest)")
    args = p.parse_args(argv)
    from mobilenetv3.inference import export   # TensorFlow loads here, after the flags
    result = export(args.modeldir, args.export_dir, args.checkpoint)
    print("export: checkpoint=%s frozen_graph=%s saved_model=%s" % (
        result["checkpoint"], result["frozen_graph"], result["saved_model"]))


if __name__ == "__main__":
    main()
