"""Seed script of the Ascend SWA page: a blobs classifier trained with the SWA callback (tf.keras), compared
with plain SGD on a held-out test split.

    python swa/train-tf.keras-npu.py [--train_epochs=100] [--batch_size=16384] [--model_dir=DIR] [Ascend flags]
"""
import argparse
import os
import sys

# This file sits beside swa/keras.py: with its own directory first on sys.path, `import keras` (inside
# TensorFlow and Keras) would load that module. Drop the directory and put the repository root first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))


def _eager_requested(argv):
    """--eager, read before common.tf_compat loads TensorFlow (in graph mode unless TF_COMPAT_EAGER=1)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--eager", nargs="?", const="True", default="False")
    return parser.parse_known_args(argv)[0].eager.lower() in ("true", "t", "yes", "y", "1")


if _eager_requested(sys.argv[1:]):
    os.environ["TF_COMPAT_EAGER"] = "1"

from common.ascend_flags import add_ascend_arguments, npu_options_from  # noqa: E402
from common.errors import ArgumentParser, main_guard  # noqa: E402
from common.options import add_arguments, values  # noqa: E402
from swa.options import OPTIONS  # noqa: E402


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, OPTIONS[:-1])
    parser.add_argument("--data_path", default="", help="unused: the data is generated (kept for the wrappers)")
    add_arguments(parser, OPTIONS[-1:])       # --eager
    add_ascend_arguments(parser)
    return parser.parse_args(argv)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    from swa.train import TrainConfig, train_and_evaluate
    config = TrainConfig(npu=npu_options_from(args), **values(args, OPTIONS))
    train_and_evaluate(config)


if __name__ == "__main__":
    main()
