r"""Train or test MAML, T-net or MT-net (Lee & Choi, ICML 2018) on sinusoid, polynomial, omniglot or miniImagenet.

    python main.py --datasource=sinusoid --metatrain_iterations=60000 --meta_batch_size=4 --update_lr=0.01 \
        --norm=None --update_batch_size=10 --use_T=True --use_M=True --share_M=True --logdir=logs/sine
    python main.py <the same flags> --train=False        # test mode: 600 tasks, 10 inner steps

MAML: --use_T=False --use_M=False; T-net: --use_T=True --use_M=False; MT-net: all three True.
Flags keep upstream's names, meanings and defaults; the ones after the upstream block are this port's.
"""
import sys

from absl import flags as absl_flags

from common import distributed
from common.ascend_flags import define_ascend_flags, npu_options_from
from common.errors import UserError, main_guard
from common.options import define_flags, values
from common.precision import derandomise
from common.tf_compat import tf
from mtnet import trainer
from mtnet.options import OPTIONS

flags = tf.compat.v1.flags
FLAGS = flags.FLAGS

define_flags(flags, OPTIONS)
define_ascend_flags(flags)


HELP_ARGS = ("-h", "--help", "--helpshort", "--helpfull")


def parse_flags(argv):
    """Parse argv into FLAGS as the other models' scripts do: --help prints the flags and exits 0, and a bad or
    unknown flag is one 'error:' line with status 2 (absl's app.run exits 1 for both, with 'FATAL' for errors)."""
    if any(arg in HELP_ARGS for arg in argv[1:]):
        helps = [__doc__.strip(), FLAGS.main_module_help(), FLAGS.module_help(define_ascend_flags.__module__)]
        print("\n\n".join(helps))
        sys.exit(0)
    try:
        positional = FLAGS(argv)[1:]
    except absl_flags.UnrecognizedFlagError as err:
        raise UserError("unknown flag --%s (see --help)" % err.flagname)
    except absl_flags.Error as err:
        raise UserError("%s (see --help)" % err)
    if positional:
        raise UserError("unexpected argument %r: flags are --name=value (see --help)" % positional[0])


@main_guard
def main(argv):
    parse_flags(argv)
    cfg = trainer.default_config(npu=npu_options_from(FLAGS), **values(FLAGS, OPTIONS))
    # data-parallel meta-training when started by common.launch; test mode always runs in one process
    cluster = distributed.cluster_from_env() if cfg.train else None
    derandomise(cfg, (), cfg.npu)   # tasks, masks and weights all come from --seed; MT-net has no dropout
    trainer.run(cfg, cluster)


if __name__ == "__main__":
    main(sys.argv)
