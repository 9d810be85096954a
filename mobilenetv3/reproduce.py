"""MobileNetV3's ImageNet numbers (common/reproduce.py): top-1/top-5 of given weights (keras.applications .h5
files, or a model directory of ours) on an ImageNet validation folder, with the standard evaluation
preprocessing (mobilenetv3/imagenet_eval.py), beside the paper's and keras's published top-1.
"""
import os
import re

from common.errors import UserError
from common.reproduce import Job, Measured
from mobilenetv3 import cpu_cost, paper

TABLES = {
    "imagenet-large": "MobileNetV3-Large 1.0, ImageNet validation accuracy (%), paper Table 3",
    "imagenet-small": "MobileNetV3-Small 1.0, ImageNet validation accuracy (%), paper Table 3",
}
DEFAULT_TABLE = "imagenet-small"
DIGITS = 2
MEASURED_ON = cpu_cost.MEASURED_ON
QUICK_PER_CLASS = 2
RESULT = re.compile(r"^imagenet eval: weights=\S+ images=(\d+) top1=(\S+) \+- (\S+) top5=(\S+) \+- (\S+) ", re.M)
EVALUATIONS = ("top-1 (paper)", "top-1 (keras published)", "top-5")


def add_arguments(parser):
    parser.add_argument("--weights", default="",
                        help="keras.applications MobileNetV3 .h5 of the table's model, or a model directory of ours")


def parse(output):
    found = RESULT.search(output)
    if not found:
        return {}
    images = int(found.group(1))
    top1 = Measured(100 * float(found.group(2)), 100 * float(found.group(3)), "%d images" % images)
    top5 = Measured(100 * float(found.group(4)), 100 * float(found.group(5)), "%d images" % images)
    return dict(zip(EVALUATIONS, (top1, top1, top5)))


def jobs(args):
    if not args.weights:
        raise UserError("--weights is required: a keras.applications MobileNetV3 .h5 file (e.g. "
                        "weights_mobilenet_v3_small_224_1.0_float.h5) or a model directory of ours")
    if not os.path.exists(args.weights):
        raise UserError("--weights %s does not exist" % args.weights)
    model = args.table.split("-")[1]
    val = os.path.join(args.data_path, "val")
    data_dir = val if os.path.isdir(val) else args.data_path
    command = ["imagenet_eval.py", "--weights=%s" % os.path.abspath(args.weights), "--model=%s" % model,
               "--data_dir=%s" % data_dir]
    if args.quick:
        command.append("--max_per_class=%d" % QUICK_PER_CLASS)
    papers = {EVALUATIONS[0]: paper.TOP1[model], EVALUATIONS[1]: paper.KERAS_TOP1[model], EVALUATIONS[2]: None}
    name = os.path.basename(args.weights.rstrip("/"))
    settings = "%s; central crop 0.875, bilinear resize to the weights' input size" % name
    return [Job("MobileNetV3-%s 1.0" % model.capitalize(), papers, [command], parse, settings)]


def estimate(args, jobs):
    """Evaluation only: cpu_cost's training rate, three times as fast without gradients."""
    model = args.table.split("-")[1]
    images = cpu_cost.count_images(jobs[0].commands[0][3].split("=", 1)[1])
    rate = cpu_cost.IMAGES_PER_SECOND[model] * cpu_cost.VALIDATION_SPEEDUP
    return [(images / rate, "evaluation of %d images" % images)]
