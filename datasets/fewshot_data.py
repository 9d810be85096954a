"""Episodic few-shot data from `few-shot-{split}.npz` + `few-shot-wordemb-{split}.npz` (AM3 format).

few-shot-{split}.npz:         features uint8 [N, H, W, 3] (84x84 for mini/tiered-ImageNet), targets int [N]
                              with values 0..C-1 (C classes of the split, in sorted-wnid order);
few-shot-wordemb-{split}.npz: features float [C, E] (row c: averaged word vectors of class c's name).

Episodes are sampled with numpy on a background tf.data thread (prefetched), so a training step never
waits for sampling; images leave the pipeline as uint8 and are cast to float in the graph.
"""
import os
import zipfile
import zlib

import numpy as np

from common.errors import UserError
from common.tf_compat import tf

# Upstream split names (flag values) -> file tags.
SPLIT_TAGS = {"sources": "train", "target_val": "val", "target_tst": "test",
              "train": "train", "val": "val", "test": "test"}


def split_tag(split):
    if split not in SPLIT_TAGS:
        raise UserError("unknown data split %r: use one of sources, target_val, target_tst" % (split,))
    return SPLIT_TAGS[split]


def image_path(data_dir, split):
    return os.path.join(data_dir, "few-shot-%s.npz" % split_tag(split))


def wordemb_path(data_dir, split):
    return os.path.join(data_dir, "few-shot-wordemb-%s.npz" % split_tag(split))


def resolve_data_dir(path):
    """The directory holding few-shot-train.npz: `path` itself, or path/mini-imagenet, path/data/mini-imagenet."""
    if not path:
        raise UserError("no data directory given: pass --data_dir (or --data_path) pointing at the folder with "
                        "few-shot-{train,val,test}.npz")
    if not os.path.isdir(path):
        raise UserError("data directory %s does not exist" % path)
    candidates = [path, os.path.join(path, "mini-imagenet"), os.path.join(path, "data", "mini-imagenet")]
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, "few-shot-train.npz")):
            return candidate
    raise UserError("no few-shot-train.npz in %s (also looked in %s): build the data with "
                    "datasets/create_dataset_miniImagenet.py" % (path, ", ".join(candidates[1:])))


def _open_npz(path):
    if not os.path.isfile(path):
        raise UserError("missing data file %s" % path)
    if os.path.getsize(path) == 0:
        raise UserError("%s is empty (0 bytes): rebuild it with the dataset builder" % path)
    if not zipfile.is_zipfile(path):   # checked first: np.load on a truncated zip also prints NpzFile noise
        raise UserError("%s is not a complete .npz archive (truncated, or not written by numpy.savez)" % path)
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:  # zip or format errors: say which file
        raise UserError("cannot read %s as a numpy .npz archive: %s" % (path, err))


def _field(npz, path, key):
    if key not in npz.files:
        raise UserError("%s has no '%s' array (keys: %s)" % (path, key, ", ".join(npz.files) or "none"))
    try:
        return npz[key]
    except ValueError as err:  # object arrays need pickle, which we refuse
        raise UserError("%s: array '%s' cannot be read: %s" % (path, key, err))
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:   # a damaged member
        raise UserError("%s: array '%s' is damaged (%s): rebuild the file" % (path, key, err))


class SplitData(object):
    """Images, labels and (optionally) class word embeddings of one split, validated."""

    def __init__(self, images, labels, embeddings, name):
        self.images = images
        self.labels = labels
        self.embeddings = embeddings
        self.name = name
        self.num_classes = int(labels.max()) + 1 if len(labels) else 0
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(self.num_classes + 1))
        self.class_indices = [order[bounds[c]:bounds[c + 1]] for c in range(self.num_classes)]

    @property
    def image_size(self):
        return self.images.shape[1]


def load_split(data_dir, split, with_embeddings=True):
    """Load and check one split; raises UserError naming the file and the problem."""
    path = image_path(data_dir, split)
    npz = _open_npz(path)
    images = _field(npz, path, "features")
    labels = _field(npz, path, "targets")
    if images.dtype != np.uint8:
        raise UserError("%s: 'features' must be uint8 images, got dtype %s" % (path, images.dtype))
    if images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2] or images.shape[1] < 4:
        raise UserError("%s: 'features' must have shape [N, S, S, 3] (square RGB images, S=84 for "
                        "mini-ImageNet), got %s" % (path, list(images.shape)))
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise UserError("%s: 'targets' must have shape [%d] (one label per image), got %s"
                        % (path, images.shape[0], list(labels.shape)))
    if not np.issubdtype(labels.dtype, np.integer):
        raise UserError("%s: 'targets' must be integer class indices, got dtype %s" % (path, labels.dtype))
    if images.shape[0] == 0:
        raise UserError("%s holds no images" % path)
    if labels.min() < 0:
        raise UserError("%s: 'targets' has negative class indices" % path)
    labels = labels.astype(np.int32)
    present = np.unique(labels)
    if len(present) != labels.max() + 1:
        raise UserError("%s: class indices must be 0..C-1 with every class present; %d of 0..%d are missing"
                        % (path, labels.max() + 1 - len(present), labels.max()))
    embeddings = None
    if with_embeddings:
        epath = wordemb_path(data_dir, split)
        enpz = _open_npz(epath)
        embeddings = _field(enpz, epath, "features")
        if embeddings.ndim != 2 or not np.issubdtype(embeddings.dtype, np.floating):
            raise UserError("%s: 'features' must be a float array [classes, dim], got %s %s"
                            % (epath, embeddings.dtype, list(embeddings.shape)))
        if embeddings.shape[0] != len(present):
            raise UserError("%s has %d class embeddings but %s has %d classes"
                            % (epath, embeddings.shape[0], path, len(present)))
        if not np.all(np.isfinite(embeddings)):
            raise UserError("%s: 'features' contains NaN or infinite values" % epath)
        embeddings = embeddings.astype(np.float32)
    return SplitData(images, labels, embeddings, name=path)


class EpisodeSampler(object):
    """Draws few-shot tasks as upstream AM3 does.

    Per task: `ways` distinct classes; `shots` support images per class (class-major order); `queries`
    query images drawn without replacement from the remaining images of those classes (so per-class query
    counts vary, as upstream). Query labels are the positions 0..ways-1 of the classes in the task.
    """

    def __init__(self, data, ways, shots, queries, tasks=1, seed=None, what="episodes"):
        self.data, self.ways, self.shots, self.queries, self.tasks = data, ways, shots, queries, tasks
        self.rng = np.random.RandomState(seed)
        for name, value in (("ways", ways), ("shots", shots), ("queries", queries), ("tasks", tasks)):
            if value < 1:
                raise UserError("%s: %s must be at least 1, got %d" % (what, name, value))
        if ways > data.num_classes:
            raise UserError("%s: %d-way tasks need %d classes but %s has only %d"
                            % (what, ways, ways, data.name, data.num_classes))
        sizes = np.array([len(ix) for ix in data.class_indices])
        if sizes.min() <= shots:
            raise UserError("%s: %d shots need more than %d images per class, but class %d of %s has %d"
                            % (what, shots, shots, int(sizes.argmin()), data.name, sizes.min()))
        # The worst case: the `ways` smallest classes, minus their support images.
        spare = np.sort(sizes)[:ways].sum() - ways * shots
        if spare < queries:
            raise UserError("%s: %d queries per task cannot be drawn from %s: the %d smallest classes leave only "
                            "%d images after %d shots" % (what, queries, data.name, ways, spare, shots))

    def sample_indices(self):
        """(support [T, ways*shots], query [T, queries], query_labels [T, queries], class_ids [T, ways])."""
        t, n, k, q = self.tasks, self.ways, self.shots, self.queries
        support = np.empty((t, n * k), np.int64)
        query = np.empty((t, q), np.int64)
        qlabels = np.empty((t, q), np.int32)
        classes = np.empty((t, n), np.int32)
        for task in range(t):
            chosen = self.rng.choice(self.data.num_classes, n, replace=False)
            rest, rest_labels = [], []
            for pos, c in enumerate(chosen):
                perm = self.rng.permutation(self.data.class_indices[c])
                support[task, pos * k:(pos + 1) * k] = perm[:k]
                rest.append(perm[k:])
                rest_labels.append(np.full(len(perm) - k, pos, np.int32))
            rest, rest_labels = np.concatenate(rest), np.concatenate(rest_labels)
            pick = self.rng.choice(len(rest), q, replace=False)
            query[task], qlabels[task], classes[task] = rest[pick], rest_labels[pick], chosen
        return support, query, qlabels, classes

    def sample(self):
        support, query, qlabels, classes = self.sample_indices()
        images = self.data.images
        return images[support], images[query], qlabels, classes

    def generator(self):
        while True:
            yield self.sample()


def episode_dataset(sampler, prefetch=2):
    """An endless tf.data pipeline of (support uint8 [T,N*K,S,S,3], query uint8 [T,Q,S,S,3],
    query_labels int32 [T,Q], class_ids int32 [T,N])."""
    t, n, k, q, s = sampler.tasks, sampler.ways, sampler.shots, sampler.queries, sampler.data.image_size
    shapes = ((t, n * k, s, s, 3), (t, q, s, s, 3), (t, q), (t, n))
    ds = tf.data.Dataset.from_generator(sampler.generator, (tf.uint8, tf.uint8, tf.int32, tf.int32),
                                        tuple(tf.TensorShape(x) for x in shapes))
    return ds.prefetch(prefetch)


class BatchSampler(object):
    """Uniform random image batches with labels (the auxiliary all-classes classification task), drawn from
    `indices` (default: every image of the split)."""

    def __init__(self, data, batch_size, seed=None, indices=None):
        if batch_size < 1:
            raise UserError("pre_train_batch_size must be at least 1, got %d" % batch_size)
        self.data, self.batch_size = data, batch_size
        self.indices = np.arange(len(data.labels)) if indices is None else np.asarray(indices)
        self.rng = np.random.RandomState(seed)

    def generator(self):
        while True:
            idx = self.indices[self.rng.randint(0, len(self.indices), self.batch_size)]
            yield self.data.images[idx], self.data.labels[idx]


def holdout_split(data, fraction=0.1, seed=0):
    """(train, held_out) image indices: per class, a fixed random `fraction` (at least one image of every class
    with two or more) is held out. The same for every run on the same data, so a resumed run never trains on
    images it evaluated on."""
    rng = np.random.RandomState(seed)
    train, held = [], []
    for members in data.class_indices:
        perm = rng.permutation(members)
        n = max(1, int(round(fraction * len(perm)))) if len(perm) > 1 else 0
        held.append(perm[:n])
        train.append(perm[n:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def sequential_dataset(data, indices, batch_size):
    """One pass over data.images[indices] in batches of `batch_size`, the last one padded to full size:
    (images uint8 [b, S, S, 3], labels int32 [b], valid bool [b]). Every batch has the same shape, as a device
    compiling one graph per input shape needs. Re-initialise the iterator for another pass."""
    indices = np.asarray(indices)
    s = data.image_size

    def generator():
        for start in range(0, len(indices), batch_size):
            idx = indices[start:start + batch_size]
            pad = batch_size - len(idx)
            images = np.concatenate([data.images[idx], np.zeros((pad, s, s, 3), np.uint8)])
            labels = np.concatenate([data.labels[idx], np.zeros(pad, np.int32)]).astype(np.int32)
            yield images, labels, np.arange(batch_size) < len(idx)

    return tf.data.Dataset.from_generator(generator, (tf.uint8, tf.int32, tf.bool), (
        tf.TensorShape((batch_size, s, s, 3)), tf.TensorShape((batch_size,)), tf.TensorShape((batch_size,)))
    ).prefetch(2)


def batch_dataset(sampler, prefetch=2):
    s, b = sampler.data.image_size, sampler.batch_size
    ds = tf.data.Dataset.from_generator(sampler.generator, (tf.uint8, tf.int32),
                                        (tf.TensorShape((b, s, s, 3)), tf.TensorShape((b,))))
    return ds.prefetch(prefetch)
