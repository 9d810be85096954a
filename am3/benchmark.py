"""Training throughput of AM3's ResNet-12 backbone (TADAM's auxiliary all-classes step: backbone and a dense
classifier, Adam) on a batch made in the graph: the step alone, no input pipeline.

    python am3/benchmark.py [--batch=16] [--image_size=84] [--num_filters=64] [--runs=20] [Ascend flags]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402

from am3 import flags as am3_flags  # noqa: E402
from common.ascend_flags import add_ascend_arguments, npu_options_from  # noqa: E402
from common.errors import ArgumentParser, main_guard  # noqa: E402


def training_throughput(batch=16, size=84, num_filters=64, classes=64, steps=20, options=None):
    """Images/s of the backbone's training step on random images and labels."""
    from am3 import model as M   # TensorFlow loads here, after the flags
    from common.tf_compat import tf
    from common.train_bench import images_per_second
    cfg = am3_flags.parse_config("AM3_TADAM", ["--num_filters=%d" % num_filters])

    def loss():
        images = tf.random.uniform([batch, size, size, 3], maxval=255.0)
        labels = tf.random.uniform([batch], 0, classes, tf.int32)
        logits = M.auxiliary_logits(cfg.model, images, classes, training=True)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return images_per_second(loss, batch, options or cfg.npu, steps=steps)


@main_guard
def main(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--image_size", type=int, default=84)
    p.add_argument("--num_filters", type=int, default=64, help="filters of the first block (64: ResNet-12)")
    p.add_argument("--runs", type=int, default=20, help="timed steps (after 5 warm-up steps)")
    add_ascend_arguments(p)
    args = p.parse_args(argv)
    speed = training_throughput(args.batch, args.image_size, args.num_filters, steps=args.runs,
                                options=npu_options_from(args))
    from common.tf_compat import tf
    print("benchmark: train ResNet-12 batch=%d size=%d filters=%d tf=%s images_per_sec=%.2f"
          % (args.batch, args.image_size, args.num_filters, tf.__version__, speed))


if __name__ == "__main__":
    main()
