"""Parameters, multiply-adds (counted from the graph) and batch-1 inference latency of a MobileNetV3 variant;
with --train, training throughput instead (Adam, batch made in the graph: the step alone, no input pipeline).

    python benchmark.py --model=small [--variant=paper] [--image_size=224] [--runs=50]
    python benchmark.py --train --model=small [--batch=32] [--runs=20] [--precision_mode=allow_mix_precision]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


from common.ascend_flags import add_ascend_arguments, npu_options_from
from common.errors import ArgumentParser, main_guard
from common.npu_options import NpuOptions


def measure(model, variant="paper", size=224, num_classes=1000, alpha=1.0, runs=50, warmup=5):
    """dict(params, madds, latency_ms median over `runs` batch-1 forward passes after `warmup` ones)."""
    import numpy as np
    from common import npu_session
    from common.tf_compat import tf
    from mobilenetv3.madds import count_madds
    from mobilenetv3.model import get_spec, mobilenet_v3
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [1, size, size, 3])
        probabilities = tf.nn.softmax(mobilenet_v3(images, get_spec(model, variant), num_classes, alpha=alpha))
        params = sum(int(np.prod(v.shape.as_list())) for v in tf.compat.v1.global_variables())
        madds = count_madds(graph, "MobilenetV3")
        with npu_session.new_session(NpuOptions()) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            image = np.random.RandomState(0).rand(1, size, size, 3).astype(np.float32)
            times = []
            for i in range(warmup + runs):
                start = time.perf_counter()
                sess.run(probabilities, {images: image})
                if i >= warmup:
                    times.append(time.perf_counter() - start)
    return dict(params=params, madds=madds, latency_ms=1000 * float(np.median(times)))


def training_throughput(model, variant="paper", size=224, batch=32, num_classes=1000, alpha=1.0, steps=20,
                        options=None):
    """Images/s of training steps on random images and labels."""
    from common.tf_compat import tf
    from common.train_bench import images_per_second
    from mobilenetv3.model import get_spec, mobilenet_v3

    def loss():
        images = tf.random.uniform([batch, size, size, 3])
        labels = tf.random.uniform([batch], 0, num_classes, tf.int32)
        logits = mobilenet_v3(images, get_spec(model, variant), num_classes, alpha=alpha, training=True)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return images_per_second(loss, batch, options or NpuOptions(), steps=steps)


@main_guard
def main(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="small", help="large or small")
    p.add_argument("--variant", default="paper", help="paper or upstream")
    p.add_argument("--image_size", type=int, default=224)
    p.add_argument("--num_classes", type=int, default=1000)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--runs", type=int, default=50, help="timed forward passes (--train: timed steps)")
    p.add_argument("--train", action="store_true", help="training images/s instead of inference latency")
    p.add_argument("--batch", type=int, default=32, help="--train: images per step")
    add_ascend_arguments(p)
    args = p.parse_args(argv)
    options = npu_options_from(args)
    # TensorFlow loads here, after the flags: --help and a flag error answer without it.
    from common.tf_compat import tf
    from mobilenetv3.model import get_spec
    get_spec(args.model, args.variant)
    if args.train:
        speed = training_throughput(args.model, args.variant, args.image_size, args.batch, args.num_classes,
                                    args.alpha, args.runs, options)
        print("benchmark: train model=%s variant=%s size=%d batch=%d tf=%s images_per_sec=%.2f"
              % (args.model, args.variant, args.image_size, args.batch, tf.__version__, speed))
        return
    result = measure(args.model, args.variant, args.image_size, args.num_classes, args.alpha, args.runs)
    print("benchmark: model=%s variant=%s size=%d params=%d madds=%.1fM latency_batch1_median=%.2f ms"
          % (args.model, args.variant, args.image_size, result["params"], result["madds"] / 1e6,
             result["latency_ms"]))


if __name__ == "__main__":
    main()
