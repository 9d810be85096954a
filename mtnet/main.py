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
from common.options import define_flags, values
from mtnet.options import OPTIONS

FLAGS = flags.FLAGS

define_flags(flags, OPTIONS)
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
    npu = ascend_flags.npu_options_from(FLAGS)
    # TensorFlow loads here, after the flags.
    from common import distributed
    from common.precision import derandomise
    from mtnet import trainer
    cfg = trainer.default_config(npu=npu, **values(FLAGS, OPTIONS))
    # data-parallel meta-training when started by common.launch; test mode always runs in one process
    cluster = distributed.cluster_from_env() if cfg.train else None
    derandomise(cfg, (), cfg.npu)   # tasks, masks and weights all come from --seed; MT-net has no dropout
    trainer.run(cfg, cluster)


if __name__ == "__main__":
    main(sys.argv)
