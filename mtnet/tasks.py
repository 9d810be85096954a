"""Few-shot tasks: sinusoid/polynomial regression drawn inside the graph, N-way image classification from folders.

Regression tasks are random ops in the graph, so a training step needs no feed_dict or Python work. Image tasks
come from a tf.data pipeline (task sampling in a generator thread, file decoding in parallel map calls).
Every task is laid out as upstream's: the first `support` samples of each class form set a (inner loop), the
rest set b (outer loss); for classification the samples are ordered k-major (one of each class, in shuffled
class order, for k = 0, 1, ...).
"""
import os

import numpy as np

from common.errors import UserError
from common.progress import Progress
from common.tf_compat import plain_fn, tf

tf1 = tf.compat.v1

REGRESSION = ("sinusoid", "polynomial")
CLASSIFICATION = ("omniglot", "miniimagenet")
DATASOURCES = REGRESSION + CLASSIFICATION

# Sinusoid ranges as upstream's data_generator.py. The frequency is NOT fixed at 1 as in the MAML paper:
# upstream draws it from [0.8, 1.2], so MSEs here are not comparable with MAML's fixed-frequency numbers
# (--sine_freq=1 fixes it as MAML does).
SINE_AMP = (0.1, 5.0)
SINE_PHASE = (0.0, np.pi)
SINE_FREQ = (0.8, 1.2)
SINE_X = (-5.0, 5.0)
POLY_X = (-2.0, 2.0)
POLY_COEFF = (-1.0, 1.0)   # coefficient i is then divided by 2**i

IMAGE_SHAPES = {"omniglot": (28, 28, 1), "miniimagenet": (84, 84, 3)}
IMAGE_EXTENSIONS = {"omniglot": (".png",), "miniimagenet": (".jpg", ".jpeg")}


class RegressionTasks(object):
    """A meta-batch of regression tasks: x, y [B, n, 1] and the task parameters (for plots)."""

    def __init__(self, x, y, params):
        self.x, self.y, self.params = x, y, params


def sinusoid_tasks(batch, num_points, x=None, freq_range=SINE_FREQ):
    """y = amp * sin(freq * x - phase); x drawn uniformly unless given ([B, n, 1]); freq from freq_range."""
    amp = tf1.random_uniform([batch, 1, 1], SINE_AMP[0], SINE_AMP[1])
    phase = tf1.random_uniform([batch, 1, 1], SINE_PHASE[0], SINE_PHASE[1])
    freq = tf1.random_uniform([batch, 1, 1], freq_range[0], freq_range[1])
    if x is None:
        x = tf1.random_uniform([batch, num_points, 1], SINE_X[0], SINE_X[1])
    y = amp * tf.sin(freq * x - phase)
    return RegressionTasks(x, y, {"amp": amp, "phase": phase, "freq": freq})


def polynomial_tasks(batch, num_points, order):
    """y = sum_i c_i x^i with c_i ~ U[-1, 1] / 2^i, x ~ U[-2, 2]."""
    scale = tf.constant([2.0 ** -i for i in range(order + 1)], tf.float32)
    coeffs = tf1.random_uniform([batch, 1, order + 1], POLY_COEFF[0], POLY_COEFF[1]) * scale
    x = tf1.random_uniform([batch, num_points, 1], POLY_X[0], POLY_X[1])
    powers = tf.pow(x, tf.range(order + 1, dtype=tf.float32))
    y = tf.reduce_sum(coeffs * powers, axis=-1, keepdims=True)
    return RegressionTasks(x, y, {"coeffs": coeffs})


def parse_freq_range(text):
    """'0.8,1.2' -> (0.8, 1.2); '1' -> (1.0, 1.0) (MAML's fixed frequency)."""
    try:
        values = [float(part) for part in str(text).split(",")]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not 0 < values[0] <= values[1]:
        raise UserError("--sine_freq must be LOW,HIGH with 0 < LOW <= HIGH, or one frequency, got %r" % text)
    return tuple(values)


def regression_tasks(datasource, batch, num_points, poly_order=1, freq_range=SINE_FREQ):
    if datasource == "sinusoid":
        return sinusoid_tasks(batch, num_points, freq_range=freq_range)
    return polynomial_tasks(batch, num_points, poly_order)


def regression_truth(datasource, params, task, x):
    """Numpy ground truth of task `task` (from fetched params) at points x, for plots."""
    if datasource == "sinusoid":
        amp, phase, freq = (float(params[k][task].ravel()[0]) for k in ("amp", "phase", "freq"))
        return amp * np.sin(freq * x - phase)
    coeffs = params["coeffs"][task].ravel()
    return np.polynomial.polynomial.polyval(x, coeffs)


def regression_x_range(datasource):
    return SINE_X if datasource == "sinusoid" else POLY_X


def split_support_query(x, y, support):
    """[B, n, d] -> inputa/labela (first `support` samples) and inputb/labelb (the rest)."""
    return x[:, :support], y[:, :support], x[:, support:], y[:, support:]


# ---- image folders ----------------------------------------------------------------------------------------------
def _list_dirs(path):
    return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))


def _class_images(folder, extensions):
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(extensions))


def image_class_folders(datasource, data_path, test_set, train_chars=1100, test_chars=100):
    """{'train': [...], 'eval': [...]}: class folders for meta-training and for validation/testing.

    omniglot: <data_path>/<alphabet>/<character>/*.png, characters shuffled with seed 1 (as upstream), the
    first `train_chars` for training, the next `test_chars` the test split, the rest the validation split.
    miniimagenet: <data_path>/{train,val,test}/<class>/*.jpg.
    """
    if not os.path.isdir(data_path):
        raise UserError("data_path %s is not a directory (expected the %s layout, see mtnet/README.md)"
                        % (data_path, datasource))
    if datasource == "omniglot":
        chars = [os.path.join(data_path, a, c) for a in _list_dirs(data_path)
                 for c in _list_dirs(os.path.join(data_path, a))]
        np.random.RandomState(1).shuffle(chars)
        if not chars:
            raise UserError("no character folders in %s (expected <alphabet>/<character>/*.png)" % data_path)
        train = chars[:train_chars]
        test = chars[train_chars:train_chars + test_chars]
        val = chars[train_chars + test_chars:]
        return {"train": train, "eval": test if test_set else val,
                "eval_name": "test (characters %d-%d)" % (train_chars, train_chars + test_chars) if test_set
                else "validation (characters from %d on)" % (train_chars + test_chars)}
    split_dirs = {}
    for split in ("train", "test" if test_set else "val"):
        path = os.path.join(data_path, split)
        if not os.path.isdir(path):
            raise UserError("missing folder %s (expected %s/{train,val,test}/<class>/*.jpg)" % (path, data_path))
        split_dirs[split] = [os.path.join(path, c) for c in _list_dirs(path)]
    return {"train": split_dirs["train"], "eval": split_dirs["test" if test_set else "val"],
            "eval_name": "test" if test_set else "val"}


class ImageTasks(object):
    """N-way tasks from class folders as a tf.data pipeline of [B, N*S, dim] images and one-hot labels."""

    def __init__(self, datasource, folders, num_classes, samples_per_class, what):
        self.datasource = datasource
        self.num_classes = num_classes
        self.samples_per_class = samples_per_class
        self.shape = IMAGE_SHAPES[datasource]
        self.dim_input = int(np.prod(self.shape))
        exts = IMAGE_EXTENSIONS[datasource]
        if len(folders) < num_classes:
            raise UserError("%s split of %s has %d classes, fewer than num_classes=%d"
                            % (what, datasource, len(folders), num_classes))
        self.files = []
        for folder in folders:
            images = _class_images(folder, exts)
            if len(images) < samples_per_class:
                raise UserError("class folder %s has %d %s images; a task needs %d per class"
                                % (folder, len(images), "/".join(exts), samples_per_class))
            self.files.append(images)
        self._check_images()

    def _check_images(self):
        """Every image's size, read from its header now (seconds), rather than a reshape error when a bad one is
        first sampled, hours into training."""
        paths = [path for images in self.files for path in images]
        progress = Progress("checking %s image sizes" % self.datasource, len(paths), "images")
        for done, path in enumerate(paths, 1):
            self._check_image(path)
            progress.update(done)

    def _check_image(self, path):
        from PIL import Image
        try:
            with Image.open(path) as img:
                size = img.size
        except (IOError, OSError) as err:
            raise UserError("cannot read image %s: %s" % (path, err))
        want = self.shape
        if size != (want[1], want[0]):
            raise UserError("image %s is %dx%d; %s needs %dx%d images (resize them first, as upstream's "
                            "data scripts do)" % (path, size[0], size[1], self.datasource, want[1], want[0]))

    def _task_files(self, rng):
        """One task: file names, labels and rotations (omniglot) in k-major order."""
        n, s = self.num_classes, self.samples_per_class
        classes = rng.choice(len(self.files), n, replace=False)
        picks = [rng.choice(len(self.files[c]), s, replace=False) for c in classes]
        rotations = rng.randint(0, 4, n) if self.datasource == "omniglot" else np.zeros(n, np.int64)
        names, labels, rots = [], [], []
        for k in range(s):
            for c in rng.permutation(n):
                names.append(self.files[classes[c]][picks[c][k]])
                labels.append(c)
                rots.append(rotations[c])
        return np.array(names), np.array(labels, np.int64), np.array(rots, np.int64)

    def dataset(self, batch, seed, num_tasks=None):
        """Endless (or num_tasks long, same tasks for a given seed) dataset of task batches."""
        def generate():
            rng = np.random.RandomState(seed)
            count = 0
            while num_tasks is None or count < num_tasks:
                yield self._task_files(rng)
                count += 1

        size = self.num_classes * self.samples_per_class
        shape = self.shape
        is_png = self.datasource == "omniglot"

        def load(name, label, rot):
            raw = tf.io.read_file(name)
            img = tf.image.decode_png(raw, channels=shape[2]) if is_png else tf.image.decode_jpeg(raw, channels=3)
            img = tf.image.convert_image_dtype(img, tf.float32)
            img = tf.reshape(img, shape)
            if is_png:
                img = tf.image.rot90(1.0 - img, tf.cast(rot, tf.int32))  # omniglot: ink as 1, rotated class
            return tf.reshape(img, [self.dim_input]), label

        ds = tf.data.Dataset.from_generator(generate, (tf.string, tf.int64, tf.int64), ([size], [size], [size]))
        ds = ds.flat_map(plain_fn(lambda n, l, r: tf.data.Dataset.from_tensor_slices((n, l, r))))
        # every task has `size` images: drop_remainder only makes that static ([B, size, D], not [B, None, D]),
        # as the device loop (iterations_per_loop) needs
        ds = ds.map(plain_fn(load), num_parallel_calls=4).batch(size, drop_remainder=True)
        ds = ds.map(plain_fn(lambda x, y: (x, tf.one_hot(y, self.num_classes))))
        return ds.batch(batch, drop_remainder=True).prefetch(2)
