"""The seed task's data: three 2-d Gaussian blobs, generated here (no download, no scikit-learn needed)."""
import numpy as np


def make_blobs(n_samples, centers=3, n_features=2, cluster_std=2.0, seed=2, center_box=(-10.0, 10.0)):
    """Points around `centers` random centres, labelled by centre, in random order.

    Draws from numpy's RandomState(seed) in the order scikit-learn's make_blobs(random_state=seed) does
    (centres, then each blob's points, then a shuffle), so the seed script's data set is reproduced exactly.
    Returns float32 points [n_samples, n_features] and int64 labels [n_samples].
    """
    rng = np.random.RandomState(seed)
    means = rng.uniform(center_box[0], center_box[1], size=(centers, n_features))
    sizes = [n_samples // centers + (1 if i < n_samples % centers else 0) for i in range(centers)]
    points = np.concatenate([rng.normal(loc=means[i], scale=cluster_std, size=(sizes[i], n_features))
                             for i in range(centers)])
    labels = np.concatenate([np.full(size, i, dtype=np.int64) for i, size in enumerate(sizes)])
    order = np.arange(n_samples)
    rng.shuffle(order)
    return points[order].astype(np.float32), labels[order]


def split(points, labels, test_fraction):
    """Hold out the last `test_fraction` of the (already shuffled) data as the test split."""
    n_test = int(round(len(points) * test_fraction))
    n_train = len(points) - n_test
    return (points[:n_train], labels[:n_train]), (points[n_train:], labels[n_train:])
