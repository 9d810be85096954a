"""ImageNet evaluation of MobileNetV3 weights: the work of imagenet_eval.py (see its docstring): preprocessing,
the weights' source, top-1/top-5 with 95% confidence intervals."""
import collections
import math
import os

import numpy as np

from common import checkpoints, npu_session
from common.errors import UserError, require
from common.tf_compat import plain_fn, tf
from mobilenetv3 import data, recipe, weights as W
from mobilenetv3.model import get_spec, mobilenet_v3, network_variables

CROP_FRACTION = 0.875        # keras/TF-slim ImageNet evaluation: 224 of 256
IMAGENET_CLASSES = 1000
KERAS_SIZE = 224             # the input size of keras's weight files

# What the weights need: model spec, classes, input range, width, input size, and a function restoring them.
Source = collections.namedtuple("Source", "spec classes input_range alpha size restore")


def decode(path):
    """File -> uint8 [h, w, 3]. JPEGs with the accurate integer DCT, which is what keras's loader (PIL, libjpeg's
    default) computes; TF's default fast DCT is off by up to 6 levels per pixel."""
    raw = tf.io.read_file(path)
    image = tf.cond(tf.io.is_jpeg(raw),
                    lambda: tf.io.decode_jpeg(raw, channels=3, dct_method="INTEGER_ACCURATE"),
                    lambda: tf.io.decode_image(raw, channels=3, expand_animations=False))
    image.set_shape([None, None, 3])
    return image


def eval_image(path, size, crop_fraction=CROP_FRACTION):
    """File -> float32 [size, size, 3] in [0, 1]: central crop, then bilinear resize (half-pixel centres)."""
    image = tf.cast(decode(path), tf.float32) * (1.0 / 255.0)
    image = tf.image.central_crop(image, crop_fraction)
    image = tf.compat.v2.image.resize(image, [size, size], method="bilinear")
    image.set_shape([size, size, 3])
    return image


def _dataset(files, labels, batch, size):
    ds = tf.data.Dataset.from_tensor_slices((np.array(files), np.array(labels, np.int32)))
    ds = ds.map(plain_fn(lambda path, label: (eval_image(path, size), label)),
                num_parallel_calls=tf.data.experimental.AUTOTUNE)
    ds = ds.apply(tf.data.experimental.ignore_errors()).batch(batch)
    return ds.prefetch(2)


def _folder(data_dir, max_per_class):
    folder = data.ImageFolder(data_dir, "evaluation")
    if not max_per_class and len(folder.classes) != IMAGENET_CLASSES:
        raise UserError("%s has %d class folders; ImageNet's validation has %d (val/<wnid>/*.JPEG), or the class "
                        "indices (sorted wnids) would not be keras's"
                        % (data_dir, len(folder.classes), IMAGENET_CLASSES))
    files, labels, seen = [], [], {}
    for path, label in zip(folder.files, folder.labels):
        seen[label] = seen.get(label, 0) + 1
        if not max_per_class or seen[label] <= max_per_class:
            files.append(path)
            labels.append(label)
    return folder, files, labels


def _build(weights, model, alpha):
    """The Source of a keras .h5 file or of a model directory of ours."""
    if W.is_h5(weights):
        require(os.path.isfile(weights), "weights file %s does not exist" % weights)
        keras = W.KerasFile(W.read_h5(weights))
        require(W.is_keras_applications(keras.entries) and keras.logits,
                "%s is not a keras.applications MobileNetV3 weight file with its classifier" % weights)

        def load(sess):
            W.load_keras_applications(sess, weights, keras, network_variables(), model, alpha)
        return Source(get_spec(model), keras.classes, W.IMAGENET_INPUT_RANGE, alpha, KERAS_SIZE, load)
    from mobilenetv3.inference import find_checkpoint
    from mobilenetv3.trainer import load_model_record
    record = load_model_record(weights)
    path = find_checkpoint(weights)

    def restore(sess):
        saver = tf.compat.v1.train.Saver(recipe.restore_map(network_variables(), record["weight_average"]))
        checkpoints.restore(saver, sess, path)
        print("restored %s" % path, flush=True)
    return Source(get_spec(record["model"], record["variant"]), len(record["classes"]), record["input_range"],
                  record["alpha"], record["height"], restore)


def evaluate(weights, model, data_dir, batch=50, image_size=0, alpha=1.0, max_per_class=0, options=None):
    """{"images", "size", "top1", "top1_ci95", "top5", "top5_ci95"} (fractions) over the folder's images;
    image_size 0: the weights' own (224 for keras's files)."""
    folder, files, labels = _folder(data_dir, max_per_class)
    graph = tf.Graph()
    with graph.as_default():
        source = _build(weights, model, alpha)
        size = image_size or source.size
        require(source.classes >= len(folder.classes), "the weights have %d classes, %s has %d" % (
            source.classes, data_dir, len(folder.classes)))
        iterator = tf.compat.v1.data.make_initializable_iterator(_dataset(files, labels, batch, size))
        images, targets = iterator.get_next()
        logits = mobilenet_v3(images, source.spec, source.classes, alpha=source.alpha, training=False,
                              input_range=source.input_range)
        hits = [tf.nn.in_top_k(logits, targets, k) for k in (1, 5)]
        with npu_session.new_session(options or npu_session.NpuOptions()) as sess:
            source.restore(sess)
            sess.run(iterator.initializer)
            right = np.zeros(2)
            count = 0
            while True:
                try:
                    top1, top5 = sess.run(hits)
                except tf.errors.OutOfRangeError:
                    break
                right += [top1.sum(), top5.sum()]
                count += len(top1)
    require(count > 0, "no image under %s could be decoded" % data_dir)
    if count < len(files):
        data.warn("%d of %d images could not be decoded and were skipped" % (len(files) - count, len(files)))
    result = {"images": count, "size": size}
    for name, hit in zip(("top1", "top5"), right / count):
        result[name] = float(hit)
        result[name + "_ci95"] = 1.96 * math.sqrt(hit * (1 - hit) / count)   # binomial, normal approximation
    return result


def predict_logits(weights, model, files, alpha=1.0, crop_fraction=CROP_FRACTION):
    """Logits [N, classes] of image files through the evaluation preprocessing (the keras comparison's test)."""
    graph = tf.Graph()
    with graph.as_default():
        source = _build(weights, model, alpha)
        images = tf.stack([eval_image(tf.constant(path), source.size, crop_fraction) for path in files])
        logits = mobilenet_v3(images, source.spec, source.classes, alpha=source.alpha, training=False,
                              input_range=source.input_range)
        with tf.compat.v1.Session() as sess:
            source.restore(sess)
            return sess.run(logits)
