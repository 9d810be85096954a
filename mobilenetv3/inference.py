"""Evaluation (top-1/top-5 on an image folder), prediction, and export (frozen graph and SavedModel) of a trained model.

All of them rebuild the network from `<model_dir>/model.json` (written by train_cls.py), with the input range
it was trained with, and restore the best checkpoint (`best/`), or the latest periodic one when there is no best
yet, or the checkpoint given; the averaged weights when training kept them (--recipe=paper).
The exported graphs take `images`: float32 [N, H, W, 3] in [0, 1] and give `probabilities` [N, classes] and
`classes` [N] (int32); labels.txt lists the class names in index order.
"""
import os

import numpy as np

from common import checkpoints, npu_session
from common.errors import UserError, require
from common.npu_session import NpuOptions
from common.tf_compat import tf
from mobilenetv3 import data, recipe
from mobilenetv3.model import get_spec, mobilenet_v3, network_variables
from mobilenetv3.trainer import load_model_record

INPUT_NAME = "images"
OUTPUT_NAMES = ("probabilities", "classes")


def find_checkpoint(model_dir, checkpoint=None):
    """The checkpoint to evaluate: `checkpoint` if given, else best/, else the latest of checkpoints/."""
    if checkpoint:
        if os.path.isdir(checkpoint):
            found = tf.train.latest_checkpoint(checkpoint)
            require(found, "no checkpoint in %s" % checkpoint)
            return found
        require(tf.io.gfile.exists(checkpoint + ".index"), "checkpoint %s does not exist" % checkpoint)
        return checkpoint
    for sub in ("best", "checkpoints"):
        found = checkpoints.latest_checkpoint(os.path.join(model_dir, sub))
        if found:
            return found
    raise UserError("no checkpoint under %s (neither best/ nor checkpoints/): train it first" % model_dir)


def _network(images, record):
    spec = get_spec(record["model"], record["variant"])
    logits = mobilenet_v3(images, spec, len(record["classes"]), alpha=record["alpha"], training=False,
                          input_range=record["input_range"])
    probabilities = tf.nn.softmax(logits, name=OUTPUT_NAMES[0])
    classes = tf.argmax(logits, 1, output_type=tf.int32, name=OUTPUT_NAMES[1])
    return logits, probabilities, classes


def _saver(record):
    """Restores the network's variables, from their averages when training kept them."""
    return tf.compat.v1.train.Saver(recipe.restore_map(network_variables(), record["weight_average"]))


class Predictor(object):
    """A session holding the restored network; call with float images [N, H, W, 3] in [0, 1].

    The network's session sees one input shape, [batch, H, W, 3] (a shorter last chunk is padded): on Ascend
    each new input shape compiles another graph. Files are decoded and resized in a host session of their own,
    so an image's own size never reaches the device graph."""

    def __init__(self, model_dir, checkpoint=None, options=None, batch=1):
        require(batch > 0, "batch must be positive, got %d" % batch)
        self.record = load_model_record(model_dir)
        self.checkpoint = find_checkpoint(model_dir, checkpoint)
        self.classes = self.record["classes"]
        self.batch = batch
        size = [self.record["height"], self.record["width"]]
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.images = tf.compat.v1.placeholder(tf.float32, [batch] + size + [3], name=INPUT_NAME)
            _, self.probabilities, self.predicted = _network(self.images, self.record)
            saver = _saver(self.record)
            self.sess = npu_session.new_session(options or NpuOptions())
            checkpoints.restore(saver, self.sess, self.checkpoint)
        decoding = tf.Graph()
        with decoding.as_default():
            self.path = tf.compat.v1.placeholder(tf.string, [])
            self.decoded = data.decode(self.path, *size)
        self.host = tf.compat.v1.Session(graph=decoding)   # a plain session: decoding stays on the host

    def __call__(self, images):
        images = np.asarray(images, np.float32)
        out = []
        for start in range(0, len(images), self.batch):
            chunk = images[start:start + self.batch]
            pad = self.batch - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], np.float32)])
            out.append(self.sess.run(self.probabilities, {self.images: chunk})[:self.batch - pad])
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def load_image(self, path):
        require(os.path.isfile(path), "image %s does not exist" % path)
        require(data.image_kind(path) is not None, "%s is not a JPEG/PNG/GIF/BMP image" % path)
        try:
            return self.host.run(self.decoded, {self.path: path})
        except tf.errors.InvalidArgumentError as err:
            raise UserError("cannot decode %s: %s" % (path, str(err).splitlines()[0]))

    def predict_files(self, paths, top_k=5):
        """[(path, [(class name, probability), ...]), ...] with the top_k classes of each image."""
        results = []
        for path in paths:
            probs = self(self.load_image(path)[None])[0]
            order = np.argsort(-probs)[:top_k]
            results.append((path, [(self.classes[i], float(probs[i])) for i in order]))
        return results

    def close(self):
        self.sess.close()
        self.host.close()


def evaluate(model_dir, data_dir, batch=32, checkpoint=None, options=None):
    """Top-1 and top-5 accuracy over an image folder (top-k with k = min(5, classes) under "top5"); a dict."""
    record = load_model_record(model_dir)
    path = find_checkpoint(model_dir, checkpoint)
    folder = data.ImageFolder(data_dir, "evaluation")
    unknown = sorted(set(folder.classes) - set(record["classes"]))
    require(not unknown, "classes in %s that the model was not trained on: %s" % (data_dir, ", ".join(unknown)))
    require(batch > 0, "batch must be positive, got %d" % batch)
    index = {name: i for i, name in enumerate(record["classes"])}
    labels = [index[folder.classes[label]] for label in folder.labels]
    k = min(5, len(record["classes"]))
    graph = tf.Graph()
    with graph.as_default():
        iterator = tf.compat.v1.data.make_initializable_iterator(
            data.eval_dataset(folder.files, labels, batch, record["height"], record["width"]))
        images, targets, mask = iterator.get_next()
        logits, _, _ = _network(images, record)
        top1 = tf.cast(tf.nn.in_top_k(logits, targets, 1), tf.float32) * mask
        topk = tf.cast(tf.nn.in_top_k(logits, targets, k), tf.float32) * mask
        sums = (tf.reduce_sum(top1), tf.reduce_sum(topk), tf.reduce_sum(mask))
        saver = _saver(record)
        with npu_session.new_session(options or NpuOptions()) as sess:
            checkpoints.restore(saver, sess, path)
            sess.run(iterator.initializer)
            right1 = rightk = count = 0.0
            while True:
                try:
                    a, b, c = sess.run(sums)
                except tf.errors.OutOfRangeError:
                    break
                right1, rightk, count = right1 + a, rightk + b, count + c
    require(count > 0, "no image under %s could be decoded" % data_dir)
    if count < len(folder):
        data.warn("%d of %d images under %s could not be decoded and were skipped"
                  % (len(folder) - count, len(folder), data_dir))
    return {"checkpoint": path, "images": int(count), "k": k, "top1": right1 / count, "top5": rightk / count}


def export(model_dir, export_dir, checkpoint=None):
    """Write <export_dir>/frozen_graph.pb, <export_dir>/saved_model/ and <export_dir>/labels.txt."""
    record = load_model_record(model_dir)
    path = find_checkpoint(model_dir, checkpoint)
    saved_dir = os.path.join(export_dir, "saved_model")
    require(not os.path.exists(saved_dir), "%s already exists: choose a new export directory" % saved_dir)
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, record["height"], record["width"], 3], name=INPUT_NAME)
        _, probabilities, classes = _network(images, record)
        saver = _saver(record)
        with tf.compat.v1.Session() as sess:
            checkpoints.restore(saver, sess, path)
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), list(OUTPUT_NAMES))
            frozen = tf.compat.v1.graph_util.extract_sub_graph(frozen, list(OUTPUT_NAMES))
            os.makedirs(export_dir, exist_ok=True)
            with open(os.path.join(export_dir, "frozen_graph.pb"), "wb") as handle:
                handle.write(frozen.SerializeToString())
            builder = tf.compat.v1.saved_model.Builder(saved_dir)
            signature = tf.compat.v1.saved_model.predict_signature_def(
                inputs={INPUT_NAME: images}, outputs={OUTPUT_NAMES[0]: probabilities, OUTPUT_NAMES[1]: classes})
            builder.add_meta_graph_and_variables(
                sess, [tf.compat.v1.saved_model.tag_constants.SERVING],
                signature_def_map={"serving_default": signature}, strip_default_attrs=True)
            builder.save()
    with open(os.path.join(export_dir, "labels.txt"), "w") as handle:
        handle.write("\n".join(record["classes"]) + "\n")
    return {"checkpoint": path, "frozen_graph": os.path.join(export_dir, "frozen_graph.pb"), "saved_model": saved_dir}


def load_frozen(path):
    """(graph, input tensor, probabilities tensor) of an exported frozen_graph.pb."""
    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as handle:
        graph_def.ParseFromString(handle.read())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    return graph, graph.get_tensor_by_name(INPUT_NAME + ":0"), graph.get_tensor_by_name(OUTPUT_NAMES[0] + ":0")
