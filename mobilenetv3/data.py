"""Image-folder data (`<dir>/<class>/<image>`) as tf.data pipelines: parallel decode, resize, augment, prefetch.

The augmentation reproduces upstream's Keras ImageDataGenerator settings (rotation 90 degrees, shear 0.2 degrees,
zoom 0.8-1.2 per axis, shifts of 20% of the size, horizontal flip, 'nearest' border fill, bilinear sampling); the
resize to the input size and the affine warp are one bilinear sampling pass per image inside the graph.
Pixels are scaled to [0, 1] as upstream's `rescale=1/255`.
"""
import math
import os
import sys

import numpy as np

from common.errors import UserError
from common.tf_compat import plain_fn, tf

# Leading bytes of the formats tf.io.decode_image reads.
_MAGIC = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
          (b"BM", "bmp"))

# Upstream augmentation (Keras ImageDataGenerator arguments of train_cls.py).
ROTATION_DEG = 90.0
SHEAR_DEG = 0.2          # Keras reads shear_range as degrees
ZOOM = 0.2
SHIFT = 0.2


def warn(message):
    print("warning: %s" % message, file=sys.stderr, flush=True)


def image_kind(path):
    """'jpeg'/'png'/'gif'/'bmp' from the file's first bytes, or None when it is not an image TF can decode."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


class ImageFolder(object):
    """The images of `<root>/<class>/*`, classes sorted by name (as Keras's flow_from_directory)."""

    def __init__(self, root, what="training"):
        self.root = root
        if not root:
            raise UserError("no %s data folder given" % what)
        if not os.path.isdir(root):
            raise UserError("%s data folder %s does not exist (expected %s/<class>/<image>)" % (what, root, root))
        self.classes = sorted(d for d in os.listdir(root)
                              if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
        if not self.classes:
            raise UserError("%s data folder %s has no class folders (expected %s/<class>/<image>)"
                            % (what, root, root))
        self.files, self.labels, self.skipped = [], [], []
        for label, name in enumerate(self.classes):
            folder = os.path.join(root, name)
            for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
                dirnames.sort()
                for filename in sorted(filenames):
                    if filename.startswith("."):
                        continue
                    path = os.path.join(dirpath, filename)
                    if image_kind(path) is None:
                        self.skipped.append(path)
                        continue
                    self.files.append(path)
                    self.labels.append(label)
        for path in self.skipped[:10]:
            warn("skipping %s: unreadable or not a JPEG/PNG/GIF/BMP image" % path)
        if len(self.skipped) > 10:
            warn("skipping %d more unreadable or non-image files under %s" % (len(self.skipped) - 10, root))
        if not self.files:
            raise UserError("%s data folder %s has no readable images in its class folders %s"
                            % (what, root, ", ".join(self.classes[:5]) + (", ..." if len(self.classes) > 5 else "")))
        self.counts = np.bincount(self.labels, minlength=len(self.classes))

    def __len__(self):
        return len(self.files)

    def empty_classes(self):
        return [name for name, count in zip(self.classes, self.counts) if count == 0]


def check_same_classes(train, validation):
    """Validation must hold exactly the training classes, or label indices would not line up."""
    if train.classes != validation.classes:
        only_train = sorted(set(train.classes) - set(validation.classes))
        only_val = sorted(set(validation.classes) - set(train.classes))
        raise UserError("classes differ between %s and %s: only in training: %s; only in validation: %s"
                        % (train.root, validation.root, ", ".join(only_train) or "-", ", ".join(only_val) or "-"))


def decode_raw(path):
    """File -> uint8 [h, w, 3] at the file's own size."""
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def decode(path, height, width):
    """File -> float32 [height, width, 3] in [0, 1] (bilinear resize); decode errors are dropped by the pipeline."""
    image = tf.compat.v2.image.resize(tf.cast(decode_raw(path), tf.float32), [height, width])   # half-pixel centres
    image = image * (1.0 / 255.0)
    image.set_shape([height, width, 3])
    return image


def random_affine_params(draws):
    """Output->input map (2x2 matrix on (row, col), shift as a fraction of the size) with upstream's ranges, from
    six uniform [0, 1) draws."""
    def between(u, low, high):
        return low + (high - low) * u
    theta = between(draws[0], -ROTATION_DEG, ROTATION_DEG) * (math.pi / 180.0)
    shear = between(draws[1], -SHEAR_DEG, SHEAR_DEG) * (math.pi / 180.0)
    zoom = between(draws[2:4], 1.0 - ZOOM, 1.0 + ZOOM)
    shift = between(draws[4:6], -SHIFT, SHIFT)
    cos, sin = tf.cos(theta), tf.sin(theta)
    rotation = tf.stack([tf.stack([cos, -sin]), tf.stack([sin, cos])])
    shear_m = tf.stack([tf.stack([1.0, -tf.sin(shear)]), tf.stack([0.0, tf.cos(shear)])])
    return tf.matmul(tf.matmul(rotation, shear_m), tf.linalg.diag(zoom)), shift


def warp(image, height, width, matrix, shift):
    """Resize-and-warp in one bilinear sampling pass: [h, w, C] uint8/float -> float32 [height, width, C].

    Output pixel p (in the height x width frame) samples the resized image at A (p - centre) + centre + shift * size,
    i.e. the source image at the corresponding point; coordinates beyond the border are clamped, which repeats
    the edge pixels (Keras's fill_mode='nearest').
    The source coordinates are folded into one scalar affine map per axis applied to constant pixel grids: with
    [HW, 2] tensors and broadcasts, the coordinate arithmetic cost more than the sampling itself.
    """
    src_h, src_w = tf.shape(image)[0], tf.shape(image)[1]
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")
    centre_r, centre_c = (height - 1) / 2.0, (width - 1) / 2.0
    grid_r, grid_c = tf.constant(rows.ravel() - centre_r), tf.constant(cols.ravel() - centre_c)
    # Source pixel = (sampled point + 0.5) * source/output scale - 0.5: half-pixel centres, as tf.image.resize.
    scale_r = tf.cast(src_h, tf.float32) / height
    scale_c = tf.cast(src_w, tf.float32) / width
    offset_r = (centre_r + shift[0] * height + 0.5) * scale_r - 0.5
    offset_c = (centre_c + shift[1] * width + 0.5) * scale_c - 0.5
    src_r = grid_r * (matrix[0, 0] * scale_r) + grid_c * (matrix[0, 1] * scale_r) + offset_r
    src_c = grid_r * (matrix[1, 0] * scale_c) + grid_c * (matrix[1, 1] * scale_c) + offset_c
    src_r = tf.clip_by_value(src_r, 0.0, tf.cast(src_h - 1, tf.float32))
    src_c = tf.clip_by_value(src_c, 0.0, tf.cast(src_w - 1, tf.float32))
    r0, c0 = tf.floor(src_r), tf.floor(src_c)
    fr, fc = (src_r - r0)[:, None], (src_c - c0)[:, None]
    r0, c0 = tf.cast(r0, tf.int32), tf.cast(c0, tf.int32)
    r1, c1 = tf.minimum(r0 + 1, src_h - 1), tf.minimum(c0 + 1, src_w - 1)
    flat = tf.reshape(tf.cast(image, tf.float32), [src_h * src_w, -1])
    row0, row1 = r0 * src_w, r1 * src_w
    p00, p01 = tf.gather(flat, row0 + c0), tf.gather(flat, row0 + c1)
    p10, p11 = tf.gather(flat, row1 + c0), tf.gather(flat, row1 + c1)
    top = p00 + (p01 - p00) * fc
    bottom = p10 + (p11 - p10) * fc
    return tf.reshape(top + (bottom - top) * fr, [height, width, -1])


def load_augmented(path, height, width, seed):
    """Decode, then one random affine warp straight to the input size, random horizontal flip, scale to [0, 1].
    `seed` ([2] int64) picks the draws: stateless, so parallel decoding threads cannot reorder them and a seed
    gives the same run twice."""
    draws = tf.random.stateless_uniform([7], seed=seed)
    matrix, shift = random_affine_params(draws[:6])
    image = warp(decode_raw(path), height, width, matrix, shift) * (1.0 / 255.0)
    image = tf.cond(draws[6] < 0.5, lambda: tf.image.flip_left_right(image), lambda: image)
    image.set_shape([height, width, 3])
    return image


# TF-slim's ImageNet training preprocessing (inception_preprocessing.preprocess_for_train, fast mode), which its
# MobileNetV3 recipe uses: a random crop covering at least 10% of the image (area 5-100%, aspect 3/4-4/3, up to
# 100 attempts, else the whole image), resized bilinearly, a random left-right flip, then brightness (+-32/255)
# and saturation (x0.5-1.5) in random order, clipped to [0, 1].
INCEPTION_AREA = (0.05, 1.0)
INCEPTION_MIN_COVERED = 0.1
INCEPTION_ASPECT = (0.75, 1.33)
INCEPTION_ATTEMPTS = 100
INCEPTION_BRIGHTNESS = 32.0 / 255.0
INCEPTION_SATURATION = (0.5, 1.5)
AUGMENTATIONS = ("upstream", "inception")


def random_crop_box(draws, height, width):
    """(top, left, crop height, crop width) as sample_distorted_bounding_box draws them for a box of the whole
    image, from [3, ATTEMPTS] uniform [0, 1) draws; the first candidate that fits, else the whole image."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    aspect = INCEPTION_ASPECT[0] + (INCEPTION_ASPECT[1] - INCEPTION_ASPECT[0]) * draws[0]
    low = tf.sqrt(INCEPTION_AREA[0] * h * w / aspect)
    high = tf.sqrt(INCEPTION_AREA[1] * h * w / aspect)
    crop_h = tf.round(low + (high - low) * draws[1])
    crop_w = tf.round(crop_h * aspect)
    fits = (crop_h <= h) & (crop_w <= w) & (crop_h >= 1) & (crop_w >= 1) & \
        (crop_h * crop_w >= INCEPTION_MIN_COVERED * h * w)
    first = tf.argmax(tf.cast(fits, tf.int32))
    found = tf.reduce_any(fits)
    crop_h = tf.cast(tf.where(found, crop_h[first], h), tf.int32)
    crop_w = tf.cast(tf.where(found, crop_w[first], w), tf.int32)
    top = tf.cast(tf.floor(draws[2][first] * tf.cast(height - crop_h + 1, tf.float32)), tf.int32)
    left = tf.cast(tf.floor(draws[2][(first + 1) % INCEPTION_ATTEMPTS] * tf.cast(width - crop_w + 1, tf.float32)),
                   tf.int32)
    return tf.minimum(top, height - crop_h), tf.minimum(left, width - crop_w), crop_h, crop_w


def load_inception(path, height, width, seed):
    """TF-slim's ImageNet training augmentation (see INCEPTION_*), stateless: `seed` ([2] int64) picks the draws."""
    image = tf.cast(decode_raw(path), tf.float32) * (1.0 / 255.0)
    shape = tf.shape(image)
    draws = tf.random.stateless_uniform([3, INCEPTION_ATTEMPTS], seed=seed)
    top, left, crop_h, crop_w = random_crop_box(draws, shape[0], shape[1])
    image = tf.slice(image, [top, left, 0], [crop_h, crop_w, 3])
    image = tf.compat.v2.image.resize(image, [height, width], method="bilinear")
    more = tf.random.stateless_uniform([4], seed=seed + tf.constant([0, 1], tf.int64))
    image = tf.cond(more[0] < 0.5, lambda: tf.image.flip_left_right(image), lambda: image)
    delta = INCEPTION_BRIGHTNESS * (2.0 * more[1] - 1.0)
    factor = INCEPTION_SATURATION[0] + (INCEPTION_SATURATION[1] - INCEPTION_SATURATION[0]) * more[2]
    image = tf.cond(more[3] < 0.5,
                    lambda: tf.image.adjust_saturation(image + delta, factor),
                    lambda: tf.image.adjust_saturation(image, factor) + delta)
    image = tf.clip_by_value(image, 0.0, 1.0)
    image.set_shape([height, width, 3])
    return image


def _parallel():
    return tf.data.experimental.AUTOTUNE


def train_dataset(folder, batch, height, width, augmentation=True, seed=None, shard=(1, 0), shuffle=True,
                  style="upstream"):
    """Endless shuffled (or, without shuffle, in file order) batches (images, labels) with static shapes; corrupt
    images are skipped. style: upstream (Keras ImageDataGenerator's affine warp and flip) or inception (TF-slim's
    ImageNet one)."""
    num_shards, index = shard
    files, labels = np.array(folder.files), np.array(folder.labels, np.int32)
    if num_shards > 1:
        files, labels = files[index::num_shards], labels[index::num_shards]
    ds = tf.data.Dataset.from_tensor_slices((files, labels))
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.repeat()
    ds = tf.data.Dataset.zip((tf.data.Dataset.range(2 ** 62), ds))   # each image drawn gets its own seed

    def load(number, path_label):
        path, label = path_label
        if augmentation:
            image_seed = tf.stack([tf.constant(seed or 0, tf.int64), number])
            load_one = load_inception if style == "inception" else load_augmented
            return load_one(path, height, width, image_seed), label
        return decode(path, height, width), label

    ds = ds.map(plain_fn(load), num_parallel_calls=_parallel())
    ds = ds.apply(tf.data.experimental.ignore_errors())
    return ds.batch(batch, drop_remainder=True).prefetch(_parallel())


def eval_dataset(files, labels, batch, height, width):
    """One pass in file order, the last batch padded to full size; yields (images, labels, valid mask)."""
    ds = tf.data.Dataset.from_tensor_slices((np.array(files), np.array(labels, np.int32)))
    ds = ds.map(plain_fn(lambda path, label: (decode(path, height, width), label)), num_parallel_calls=_parallel())
    ds = ds.apply(tf.data.experimental.ignore_errors())
    ds = ds.batch(batch)

    def pad(images, labels):
        n = tf.shape(labels)[0]
        images = tf.pad(images, [[0, batch - n], [0, 0], [0, 0], [0, 0]])
        labels = tf.pad(labels, [[0, batch - n]])
        mask = tf.cast(tf.range(batch) < n, tf.float32)
        images.set_shape([batch, height, width, 3])
        labels.set_shape([batch])
        mask.set_shape([batch])
        return images, labels, mask

    return ds.map(plain_fn(pad)).prefetch(_parallel())
