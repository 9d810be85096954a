"""ImageNet evaluation of MobileNetV3 weights (keras.applications .h5 files, or a model directory of ours) on a
validation folder `val/<wnid>/*.JPEG`: top-1/top-5 with 95% confidence intervals.

    python imagenet_eval.py --weights=weights_mobilenet_v3_small_224_1.0_float.h5 --model=small --data_dir=val

Preprocessing is the standard evaluation one of keras/TF-slim's ImageNet models: decode (JPEGs as keras's
loader decodes them), central crop of
CROP_FRACTION (0.875) of the height and width, bilinear resize to the input size (half-pixel centres, as
tf.image.resize and keras), pixels to [-1, 1] (the model's input_range). Class index = sorted wnid order, as
keras's ImageNet class index; a folder of the 1000 ImageNet classes is required except with --max_per_class.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.ascend_flags import add_ascend_arguments, npu_options_from  # noqa: E402
from common.errors import ArgumentParser, main_guard, require  # noqa: E402


@main_guard
def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", required=True, help="keras.applications MobileNetV3 .h5, or our model directory")
    p.add_argument("--model", default="small", choices=["small", "large"], help="for a .h5 file")
    p.add_argument("--alpha", type=float, default=1.0, help="width multiplier of a .h5 file")
    p.add_argument("--data_dir", required=True, help="ImageNet validation folder val/<wnid>/*.JPEG")
    p.add_argument("--image_size", type=int, default=0,
                   help="input height and width (0: the weights' own, 224 for keras's files)")
    p.add_argument("--batch", type=int, default=50, help="images per batch")
    p.add_argument("--max_per_class", type=int, default=0, help="images per class (0: all; --quick runs)")
    add_ascend_arguments(p)
    args = p.parse_args(argv)
    require(args.batch > 0 and args.image_size >= 0, "--batch must be positive and --image_size not negative")
    options = npu_options_from(args)
    from mobilenetv3.imagenet_accuracy import CROP_FRACTION, evaluate   # TensorFlow loads here, not for --help
    result = evaluate(args.weights, args.model, args.data_dir, args.batch, args.image_size, args.alpha,
                      args.max_per_class, options)
    print("imagenet eval: weights=%s images=%d top1=%.4f +- %.4f top5=%.4f +- %.4f (95%% CI; central crop %.3f, "
          "bilinear resize to %d)" % (args.weights, result["images"], result["top1"], result["top1_ci95"],
                                      result["top5"], result["top5_ci95"], CROP_FRACTION, result["size"]))


if __name__ == "__main__":
    main()
