"""The seed script's options, declared once (defaults: the Ascend seed page): its flags, train.TrainConfig's
defaults and bench_overhead.py's flags come from OPTIONS. No TensorFlow here."""
from common.options import Option

OPTIONS = (
    Option("train_epochs", "int", 100, "epochs per run"),
    Option("batch_size", "int", 16384, "samples per step"),
    Option("num_samples", "int", 131072, "blob points generated (before the split)"),
    Option("test_fraction", "float", 0.2, "share of the points held out for testing"),
    Option("learning_rate", "float", 0.1, "SGD learning rate"),
    Option("swa_start", "int", 75, "SWA start epoch, counted from 1"),
    Option("lr_schedule", "str", "cyclic", "SWA learning-rate schedule", choices=("manual", "constant", "cyclic")),
    Option("swa_lr", "float", 0.001, "SWA learning rate (bottom of the cycle)"),
    Option("swa_lr2", "float", 0.003, "top of the cyclic learning rate"),
    Option("swa_freq", "int", 3, "epochs per cycle (between averages)"),
    Option("baseline", "bool", True, "also train plain SGD from the same initial weights and compare"),
    Option("model_dir", "str", "", "checkpoint directory (resumes from the latest); empty: no checkpoints"),
    Option("seed", "int", 2, "initialisation and shuffling seed"),
    Option("data_seed", "int", 2, "blobs seed (2: the seed page's data)"),
    Option("population_samples", "int", 0, "also score every model on this many fresh points of the same blobs "
           "(0: off)"),
    Option("eager", "bool", False, "TF 2.x: fit eagerly, as TF 2.x Keras programs do (CPU/GPU; default: graph mode)"),
)


def pick(*wanted):
    """The declarations of the options named `wanted`, in that order (for a tool taking some of them)."""
    by_name = {opt.name: opt for opt in OPTIONS}
    return tuple(by_name[name] for name in wanted)
