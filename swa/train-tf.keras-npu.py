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
    parser.add_argument("--eager", default="False")
    return parser.parse_known_args(argv)[0].eager.lower() in ("true", "t", "yes", "y", "1")


if _eager_requested(sys.argv[1:]):
    os.environ["TF_COMPAT_EAGER"] = "1"

from common.ascend_flags import add_ascend_arguments, npu_options_from, str2bool  # noqa: E402
from common.errors import ArgumentParser, main_guard  # noqa: E402


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_epochs", type=int, default=100, help="epochs per run")
    parser.add_argument("--batch_size", type=int, default=16384, help="samples per step")
    parser.add_argument("--num_samples", type=int, default=131072, help="blob points generated (before the split)")
    parser.add_argument("--test_fraction", type=float, default=0.2, help="share of the points held out for testing")
    parser.add_argument("--learning_rate", type=float, default=0.1, help="SGD learning rate")
    parser.add_argument("--swa_start", type=int, default=75, help="SWA start epoch, counted from 1")
    parser.add_argument("--lr_schedule", default="cyclic", choices=("manual", "constant", "cyclic"),
                        help="SWA learning-rate schedule")
    parser.add_argument("--swa_lr", type=float, default=0.001, help="SWA learning rate (bottom of the cycle)")
    parser.add_argument("--swa_lr2", type=float, default=0.003, help="top of the cyclic learning rate")
    parser.add_argument("--swa_freq", type=int, default=3, help="epochs per cycle (between averages)")
    parser.add_argument("--baseline", type=str2bool, default=True, metavar="BOOL",
                        help="also train plain SGD from the same initial weights and compare")
    parser.add_argument("--model_dir", default="", help="checkpoint directory (resumes from the latest); "
                                                        "empty: no checkpoints")
    parser.add_argument("--seed", type=int, default=2, help="initialisation and shuffling seed")
    parser.add_argument("--data_seed", type=int, default=2, help="blobs seed (2: the seed page's data)")
    parser.add_argument("--population_samples", type=int, default=0,
                        help="also score every model on this many fresh points of the same blobs (0: off)")
    parser.add_argument("--data_path", default="", help="unused: the data is generated (kept for the wrappers)")
    parser.add_argument("--eager", type=str2bool, default=False, metavar="BOOL",
                        help="TF 2.x: fit eagerly, as TF 2.x Keras programs do (CPU/GPU; default: graph mode)")
    add_ascend_arguments(parser)
    return parser.parse_args(argv)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    from swa.train import TrainConfig, train_and_evaluate
    config = TrainConfig(
        train_epochs=args.train_epochs, batch_size=args.batch_size, num_samples=args.num_samples,
        test_fraction=args.test_fraction, learning_rate=args.learning_rate, swa_start=args.swa_start,
        lr_schedule=args.lr_schedule, swa_lr=args.swa_lr, swa_lr2=args.swa_lr2, swa_freq=args.swa_freq,
        baseline=args.baseline, model_dir=args.model_dir, seed=args.seed, data_seed=args.data_seed,
        population_samples=args.population_samples, npu_options=npu_options_from(args), eager=args.eager)
    train_and_evaluate(config)


if __name__ == "__main__":
    main()
