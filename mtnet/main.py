r"""Train or test MAML, T-net or MT-net (Lee & Choi, ICML 2018) on sinusoid, polynomial, omniglot or miniImagenet.

    python main.py --datasource=sinusoid --metatrain_iterations=60000 --meta_batch_size=4 --update_lr=0.01 \
        --norm=None --update_batch_size=10 --use_T=True --use_M=True --share_M=True --logdir=logs/sine
    python main.py <the same flags> --train=False        # test mode: 600 tasks, 10 inner steps

MAML: --use_T=False --use_M=False; T-net: --use_T=True --use_M=False; MT-net: all three True.
Flags keep upstream's names, meanings and defaults; the ones after the upstream block are this port's.
"""
import sys

from absl import flags   # the module tf.compat.v1.flags is: TensorFlow loads after the flags, not for --help

from common import ascend_flags
from common.errors import UserError, main_guard
from common.npu_options import ASCEND_FLAGS

FLAGS = flags.FLAGS
SAVE_INTERVAL = 1000   # mtnet/trainer.py's SAVE_INTERVAL; a test holds the two equal

# Dataset/method options
flags.DEFINE_string("datasource", "sinusoid", "sinusoid, polynomial, omniglot or miniimagenet")
flags.DEFINE_integer("num_classes", 5, "number of classes used in classification (e.g. 5-way classification)")
flags.DEFINE_integer("num_train_classes", -1, "number of classes to train on (-1 for all)")
flags.DEFINE_string("baseline", None, "oracle (task amplitude and phase as inputs; sinusoid only), or None")
# Training options
flags.DEFINE_integer("pretrain_iterations", 0, "iterations training the pre-update loss before meta-training")
flags.DEFINE_integer("metatrain_iterations", 15000, "number of meta-training iterations")
flags.DEFINE_integer("meta_batch_size", 25, "number of tasks sampled per meta-update")
flags.DEFINE_float("meta_lr", 0.001, "Adam learning rate of the outer loop")
flags.DEFINE_integer("update_batch_size", 5, "examples per class used for the inner update (K for K-shot)")
flags.DEFINE_float("update_lr", 1e-3, "step size alpha of the inner gradient update")
flags.DEFINE_integer("num_updates", 1, "number of inner gradient updates during training")
flags.DEFINE_integer("poly_order", 1, "order of the generated polynomials (datasource=polynomial)")
# Model options
flags.DEFINE_bool("use_T", False, "learn a transformation T after each layer (outer loop only)")
flags.DEFINE_bool("use_M", False, "update only the weights a learned Gumbel-softmax mask M selects")
flags.DEFINE_bool("share_M", False, "with use_M: one mask bit per unit instead of per weight")
flags.DEFINE_float("temp", 1, "Gumbel-softmax temperature")
flags.DEFINE_float("logit_init", 0, "initial mask logit (share_M)")
flags.DEFINE_string("norm", "batch_norm", "batch_norm, layer_norm, or None")
flags.DEFINE_integer("dim_hidden", 40, "width of the two hidden layers of the regression net")
flags.DEFINE_integer("num_filters", 64, "filters of the conv net (32 for miniimagenet, 64 for omniglot)")
flags.DEFINE_bool("conv", True, "conv net for classification (else a 256-128-64-64 fully connected net)")
flags.DEFINE_bool("max_pool", False, "max pooling instead of strided convolutions")
flags.DEFINE_bool("stop_grad", False, "no second derivatives in the meta-gradient (faster)")
# Logging, saving, and testing options
flags.DEFINE_bool("log", True, "write TensorBoard summaries")
flags.DEFINE_string("logdir", "/tmp/data", "directory for summaries, checkpoints and test results")
flags.DEFINE_bool("resume", True, "resume training from the latest checkpoint of the experiment")
flags.DEFINE_bool("train", True, "True to train, False to test")
flags.DEFINE_integer("test_iter", -1, "iteration of the checkpoint to test (-1: latest)")
flags.DEFINE_bool("test_set", False, "test on the test split (True) or the validation split (False)")
flags.DEFINE_integer("train_update_batch_size", -1, "update_batch_size used in training, if testing with another")
flags.DEFINE_float("train_update_lr", -1, "update_lr used in training, if testing with another")
# Additions of this port
flags.DEFINE_integer("seed", 1, "graph-level random seed (tasks, masks, initial weights); upstream seeds nothing")
flags.DEFINE_string("data_path", "", "image root (default ./data/omniglot_resized or ./data/miniImagenet)")
flags.DEFINE_integer("omniglot_train_chars", 1100, "omniglot characters for meta-training (upstream 1100)")
flags.DEFINE_integer("omniglot_test_chars", 100, "omniglot characters of the test split; the rest validate")
flags.DEFINE_integer("print_interval", 0, "iterations per 'Iteration N' line (0: 1000 regression, 100 images)")
flags.DEFINE_integer("save_interval", SAVE_INTERVAL, "iterations between checkpoints")
flags.DEFINE_integer("num_test_tasks", -1, "test-mode tasks (-1: upstream's 600, 20 for polynomial)")
flags.DEFINE_integer("test_num_updates", 10, "inner steps evaluated in test mode (upstream: 10)")
flags.DEFINE_integer("num_threads", 0, "CPU/GPU intra-op threads (0: 1 for regression, TF's default for images)")
flags.DEFINE_string("sine_freq", "0.8,1.2", "sinusoid frequency range LOW,HIGH (upstream's default), or one "
                    "value: 1 fixes it as the MAML paper")
ascend_flags.define_ascend_flags(flags)


HELP_ARGS = ("-h", "--help", "--helpshort", "--helpfull")


def parse_flags(argv):
    """Parse argv into FLAGS as the other models' scripts do: --help prints the flags and exits 0, and a bad or
    unknown flag is one 'error:' line with status 2 (absl's app.run exits 1 for both, with 'FATAL' for errors)."""
    if any(arg in HELP_ARGS for arg in argv[1:]):
        helps = ["usage: main.py [--flag=value ...]", __doc__.strip(), FLAGS.main_module_help(), ascend_help()]
        print("\n\n".join(helps))
        sys.exit(0)
    try:
        positional = FLAGS(argv)[1:]
    except flags.UnrecognizedFlagError as err:
        raise UserError("unknown flag --%s (see --help)" % err.flagname)
    except flags.Error as err:
        raise UserError("%s (see --help)" % err)
    if positional:
        raise UserError("unexpected argument %r: flags are --name=value (see --help)" % positional[0])


def ascend_help():
    """The Ascend flags' part of --help, as absl prints a module's flags."""
    lines = ["Ascend flags (common/npu_options.py):"]
    for opt in ASCEND_FLAGS:
        lines += ["  --%s: %s" % (opt.name, opt.help), "    (default: %s)" % FLAGS[opt.name].default_as_str]
    return "\n".join(lines)


@main_guard
def main(argv):
    parse_flags(argv)
    options = ascend_flags.npu_options_from(FLAGS)
    # TensorFlow loads here, after the flags.
    from common import distributed
    from common.precision import derandomise
    from mtnet import trainer
    names = set(trainer.default_config().__dict__)
    cfg = trainer.Config(**{name: FLAGS[name].value for name in names})
    # data-parallel meta-training when started by common.launch; test mode always runs in one process
    cluster = distributed.cluster_from_env() if cfg.train else None
    derandomise(cfg, (), options)   # tasks, masks and weights all come from --seed; MT-net has no dropout
    trainer.run(cfg, options, cluster)


if __name__ == "__main__":
    main(sys.argv)
