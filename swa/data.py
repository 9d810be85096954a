"""The seed task's data: three 2-d Gaussian blobs, generated here (no download, no scikit-learn needed)."""
import numpy as np


def blob_centers(centers=3, n_features=2, seed=2, center_box=(-10.0, 10.0)):
    """The blob centres make_blobs(seed=seed) uses: the first draws of RandomState(seed)."""
    rng = np.random.RandomState(seed)
    return rng.uniform(center_box[0], center_box[1], size=(centers, n_features))


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


def sample_blobs(n_samples, means, cluster_std=2.0, seed=0):
    """Fresh points from the same blobs (`means` from blob_centers), labels uniform over the blobs: a large
    sample of the data distribution itself, to estimate a classifier's expected accuracy."""
    rng = np.random.RandomState(seed)
    means = np.asarray(means, np.float64)
    labels = rng.randint(0, len(means), size=n_samples).astype(np.int64)
    points = means[labels] + rng.normal(scale=cluster_std, size=(n_samples, means.shape[1]))
    return points.astype(np.float32), labels


def nearest_centre_accuracy(points, labels, means):
    """Accuracy of the nearest-true-centre rule: Bayes-optimal for equal-std blobs with equal priors."""
    d = ((points[:, None, :].astype(np.float64) - np.asarray(means)[None]) ** 2).sum(-1)
    return float((d.argmin(1) == labels).mean())


def split(points, labels, test_fraction):
    """Hold out the last `test_fraction` of the (already shuffled) data as the test split."""
    n_test = int(round(len(points) * test_fraction))
    n_train = len(points) - n_test
    return (points[:n_train], labels[:n_train]), (points[n_train:], labels[n_train:])
