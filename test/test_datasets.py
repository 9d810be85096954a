"""Dataset builders (image tree + split lists + .vec -> npz), the npz loader and the episode sampler."""
import os
import re

import numpy as np
import pytest

from conftest import REPO, run_python
from common.errors import UserError
from datasets import builder, fewshot_data as fsd

SHARED_MINI = os.path.join(os.path.dirname(REPO), "shared", "data", "miniimagenet")

# Three splits of made-up classes; names exercise underscores, hyphens and case.
CLASSES = {
    "train": {"n00000001": "kit_fox", "n00000002": "English_setter", "n00000003": "black-footed_ferret"},
    "val": {"n00000011": "go-kart", "n00000012": "house_finch"},
    "test": {"n00000021": "Shih-Tzu", "n00000022": "malamute"},
}
WORDS = ["kit", "fox", "english", "setter", "black-footed", "ferret", "go-kart", "house", "finch", "shih-tzu",
         "malamute"]
DIM = 6
IMAGES_PER_CLASS = 4
SIZE = 8


def _write_vec(path, words, dim=DIM, seed=0):
    rng = np.random.RandomState(seed)
    vectors = {w: np.round(rng.randn(dim), 4) for w in words}
    with open(path, "w") as f:
        f.write("%d %d\n" % (len(words), dim))
        f.write("unused %s\n" % " ".join(["0.5"] * dim))
        for w in words:
            f.write("%s %s\n" % (w, " ".join("%.4f" % v for v in vectors[w])))
    return vectors


def _write_dict3(path):
    with open(path, "w") as f:
        for i, (wnid, name) in enumerate(sorted(n for c in CLASSES.values() for n in c.items())):
            f.write("%s %d %s\n" % (wnid, i + 1, name))


def _make_tree(root, flat):
    """PNG images 12 wide x 8 high (the central 8x8 crop is the expected output, no resize); returns
    {split: {image bytes: wnid}}."""
    from PIL import Image
    rng = np.random.RandomState(1)
    expected = {}
    for split, classes in CLASSES.items():
        rows = ["filename,label"]
        expected[split] = {}
        for wnid in sorted(classes):
            for k in range(IMAGES_PER_CLASS):
                name = "%s%08d.png" % (wnid, k + 1)
                pixels = rng.randint(0, 256, (SIZE, 12, 3)).astype(np.uint8)
                folder = root if flat else os.path.join(root, wnid)
                os.makedirs(folder, exist_ok=True)
                Image.fromarray(pixels).save(os.path.join(folder, name))
                expected[split][pixels[:, 2:10].tobytes()] = wnid
                rows.append("%s,%s" % (name, wnid))
        with open(os.path.join(root, split + ".csv"), "w") as f:
            f.write("\n".join(rows) + "\n")
    return expected


def _check_output(out_dir, expected, vectors):
    for split, classes in CLASSES.items():
        data = fsd.load_split(out_dir, split)
        wnids = sorted(classes)
        assert data.images.shape == (len(classes) * IMAGES_PER_CLASS, SIZE, SIZE, 3)
        seen = set()
        for image, label in zip(data.images, data.labels):
            assert expected[split][image.tobytes()] == wnids[label]
            seen.add(image.tobytes())
        assert len(seen) == len(data.images)
        for row, wnid in zip(data.embeddings, wnids):
            words = builder.class_words(classes[wnid])
            want = np.mean([vectors[w.lower()] for w in words], axis=0)
            np.testing.assert_allclose(row, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("flat", [True, False], ids=["flat-folder", "wnid-tree"])
def test_mini_builder_round_trip(tmp_path, flat):
    expected = _make_tree(str(tmp_path / "raw"), flat)
    vectors = _write_vec(str(tmp_path / "w.vec"), WORDS)
    _write_dict3(str(tmp_path / "dict.txt"))
    from datasets import create_dataset_miniImagenet as mini
    mini.main(["--image_dir", str(tmp_path / "raw"), "--class_dict", str(tmp_path / "dict.txt"),
               "--word_vectors", str(tmp_path / "w.vec"), "--output_dir", str(tmp_path / "out"),
               "--image_size", str(SIZE), "--num_workers", "1"])
    _check_output(str(tmp_path / "out"), expected, vectors)
    assert not [f for f in os.listdir(str(tmp_path / "out")) if f.startswith(".")]


def test_tiered_builder_round_trip_with_loc_synset_dictionary(tmp_path):
    expected = _make_tree(str(tmp_path / "raw"), flat=False)
    for split, classes in CLASSES.items():   # tiered split lists: one class per row
        with open(str(tmp_path / "raw" / (split + ".csv")), "w") as f:
            f.write("".join("%s,n09999999\n" % w for w in sorted(classes)))
    with open(str(tmp_path / "loc.txt"), "w") as f:   # LOC_synset_mapping.txt style
        for classes in CLASSES.values():
            for wnid, name in classes.items():
                f.write("%s %s, some synonym\n" % (wnid, name.replace("_", " ")))
    vectors = _write_vec(str(tmp_path / "w.vec"), WORDS)
    from datasets import create_dataset_tieredimagenet as tiered
    tiered.main(["--image_dir", str(tmp_path / "raw"), "--class_dict", str(tmp_path / "loc.txt"),
                 "--word_vectors", str(tmp_path / "w.vec"), "--output_dir", str(tmp_path / "out"),
                 "--image_size", str(SIZE), "--num_workers", "2"])
    _check_output(str(tmp_path / "out"), expected, vectors)


def test_builder_names_the_missing_class_word(tmp_path):
    _make_tree(str(tmp_path / "raw"), flat=True)
    _write_vec(str(tmp_path / "w.vec"), [w for w in WORDS if w != "ferret"])
    _write_dict3(str(tmp_path / "dict.txt"))
    args = ["datasets/create_dataset_miniImagenet.py", "--image_dir", tmp_path / "raw", "--class_dict",
            tmp_path / "dict.txt", "--word_vectors", tmp_path / "w.vec", "--output_dir", tmp_path / "out",
            "--image_size", SIZE]
    proc = run_python(args, check=False)
    assert proc.returncode == 2
    lines = [line for line in proc.stdout.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "'ferret'" in lines[0] and "black-footed_ferret" in lines[0] and "w.vec" in lines[0]
    assert "Traceback" not in proc.stdout
    # With --skip_missing_words the class falls back to its other words.
    proc = run_python(args + ["--skip_missing_words", "--num_workers", "1"])
    assert "warning: no word vector for 'ferret'" in proc.stdout
    assert fsd.load_split(str(tmp_path / "out"), "train").embeddings.shape == (3, DIM)


def test_builder_input_errors(tmp_path):
    with pytest.raises(UserError, match="missing split file .*nope.csv"):
        builder.read_image_list(str(tmp_path / "nope.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("filename,label\nimg.jpg,notawnid\n")
    with pytest.raises(UserError, match="bad.csv line 2"):
        builder.read_image_list(str(bad))
    dictionary = tmp_path / "d.txt"
    dictionary.write_text("n00000001 1 kit_fox\n")
    vec = tmp_path / "v.vec"
    _write_vec(str(vec), ["kit", "fox"])
    with pytest.raises(UserError, match="d.txt has no entry .*n00000002"):
        builder.class_embeddings(["n00000001", "n00000002"], builder.read_class_dictionary(str(dictionary)),
                                 str(vec), str(dictionary))
    with pytest.raises(UserError, match="missing word-vector file"):
        builder.load_word_vectors(str(tmp_path / "none.vec"), ["kit"])


def test_dictionary_formats():
    assert builder.class_words("yellow_lady's_slipper") == ["yellow", "lady's", "slipper"]
    assert builder.class_words("jack-o'-lantern") == ["jack-o'-lantern"]


@pytest.mark.skipif(not os.path.isdir(SHARED_MINI), reason="real miniImageNet split files not available")
def test_parsers_read_the_real_mini_imagenet_files():
    names = builder.read_class_dictionary(os.path.join(SHARED_MINI, "mini_imagenet_class_label_dict3.txt"))
    assert len(names) == 1000 and names["n01532829"] == "house_finch"
    counts = {}
    for split, classes in (("train", 64), ("val", 16), ("test", 20)):
        rows = builder.read_image_list(os.path.join(SHARED_MINI, split + ".csv"))
        wnids = {w for _, w in rows}
        assert len(wnids) == classes and len(rows) == 600 * classes
        assert all(f.startswith(w) and f.endswith(".jpg") for f, w in rows)
        assert wnids <= set(names)
        counts[split] = wnids
    assert not (counts["train"] & counts["val"]) and not (counts["val"] & counts["test"])


def _tiny_split(tmp_path, classes=4, per_class=6, emb_classes=None, size=8):
    labels = np.repeat(np.arange(classes), per_class)
    images = np.random.RandomState(0).randint(0, 256, (len(labels), size, size, 3)).astype(np.uint8)
    np.savez(str(tmp_path / "few-shot-train.npz"), features=images, targets=labels)
    np.savez(str(tmp_path / "few-shot-wordemb-train.npz"),
             features=np.random.randn(emb_classes or classes, 5).astype(np.float32))
    return images, labels


def test_episode_sampler_ways_shots_queries(tmp_path):
    _tiny_split(tmp_path, classes=6, per_class=7)
    data = fsd.load_split(str(tmp_path), "sources")
    sampler = fsd.EpisodeSampler(data, ways=3, shots=2, queries=9, tasks=4, seed=3)
    for _ in range(5):
        support, query, qlabels, classes = sampler.sample_indices()
        assert support.shape == (4, 6) and query.shape == (4, 9) and classes.shape == (4, 3)
        for t in range(4):
            assert len(set(classes[t])) == 3
            assert not set(support[t]) & set(query[t])
            assert len(set(query[t])) == 9
            for pos, c in enumerate(classes[t]):
                assert (data.labels[support[t, pos * 2:(pos + 1) * 2]] == c).all()
            assert (data.labels[query[t]] == classes[t][qlabels[t]]).all()
    images = sampler.sample()
    assert images[0].shape == (4, 6, 8, 8, 3) and images[0].dtype == np.uint8


def test_episode_dataset_yields_fixed_shapes(tmp_path):
    from common.tf_compat import tf
    _tiny_split(tmp_path)
    sampler = fsd.EpisodeSampler(fsd.load_split(str(tmp_path), "sources"), ways=2, shots=1, queries=3, tasks=2,
                                 seed=0)
    with tf.Graph().as_default():
        ds = fsd.episode_dataset(sampler)
        shapes = [s.as_list() for s in tf.compat.v1.data.get_output_shapes(ds)]
        assert shapes == [[2, 2, 8, 8, 3], [2, 3, 8, 8, 3], [2, 3], [2, 2]]
        nxt = tf.compat.v1.data.make_one_shot_iterator(ds).get_next()
        with tf.compat.v1.Session() as sess:
            support, query, labels, classes = sess.run(nxt)
    assert labels.max() < 2 and support.dtype == np.uint8


def test_auxiliary_task_held_out_split(tmp_path):
    """The auxiliary task's held-out images: ~10% of every class, fixed across runs, never drawn for training,
    read back exactly (in batches, the last one short) by the evaluation pipeline."""
    from common.tf_compat import tf
    labels = np.repeat(np.arange(5), [20, 11, 9, 2, 1])
    images = np.zeros((len(labels), 8, 8, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(len(labels))       # each image carries its index
    data = fsd.SplitData(images, labels.astype(np.int32), None, "mem")
    train, held = fsd.holdout_split(data)
    assert not set(train) & set(held) and sorted(set(train) | set(held)) == list(range(len(labels)))
    assert [int((labels[held] == c).sum()) for c in range(5)] == [2, 1, 1, 1, 0]
    again = fsd.holdout_split(data)
    assert (again[0] == train).all() and (again[1] == held).all()
    drawn = next(fsd.BatchSampler(data, 500, seed=0, indices=train).generator())[0][:, 0, 0, 0]
    assert set(drawn) == set(train)
    with tf.Graph().as_default():
        nxt = tf.compat.v1.data.make_one_shot_iterator(fsd.sequential_dataset(data, held, 2)).get_next()
        seen, sizes = [], []
        with tf.compat.v1.Session() as sess:
            while True:
                try:
                    batch, batch_labels, valid = sess.run(nxt)
                except tf.errors.OutOfRangeError:
                    break
                assert batch.shape[0] == 2 and not batch[~valid].any()    # the last batch padded with zeros
                batch, batch_labels = batch[valid], batch_labels[valid]
                seen.extend(batch[:, 0, 0, 0])
                sizes.append(len(batch))
                assert (batch_labels == labels[batch[:, 0, 0, 0]]).all()
    assert seen == list(held) and sizes == [2, 2, 1]


def test_sampler_rejects_impossible_tasks(tmp_path):
    _tiny_split(tmp_path, classes=4, per_class=6)
    data = fsd.load_split(str(tmp_path), "sources")
    with pytest.raises(UserError, match="5-way tasks need 5 classes but .*few-shot-train.npz has only 4"):
        fsd.EpisodeSampler(data, ways=5, shots=1, queries=2)
    with pytest.raises(UserError, match="6 shots"):
        fsd.EpisodeSampler(data, ways=2, shots=6, queries=2)
    with pytest.raises(UserError, match="30 queries"):
        fsd.EpisodeSampler(data, ways=2, shots=1, queries=30)


def test_loader_errors_name_file_and_problem(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        fsd.resolve_data_dir(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="no few-shot-train.npz in"):
        fsd.resolve_data_dir(str(tmp_path))
    images, labels = _tiny_split(tmp_path)
    assert fsd.resolve_data_dir(str(tmp_path)) == str(tmp_path)
    with pytest.raises(UserError, match="missing data file .*few-shot-val.npz"):
        fsd.load_split(str(tmp_path), "target_val")
    path = str(tmp_path / "few-shot-train.npz")
    np.savez(path, images=images, targets=labels)
    with pytest.raises(UserError, match="few-shot-train.npz has no 'features' array"):
        fsd.load_split(str(tmp_path), "sources")
    np.savez(path, features=images.astype(np.float32), targets=labels)
    with pytest.raises(UserError, match="must be uint8"):
        fsd.load_split(str(tmp_path), "sources")
    np.savez(path, features=images[:, :, :4], targets=labels)
    with pytest.raises(UserError, match=r"shape \[N, S, S, 3\]"):
        fsd.load_split(str(tmp_path), "sources")
    np.savez(path, features=images, targets=labels[:-1])
    with pytest.raises(UserError, match="'targets' must have shape"):
        fsd.load_split(str(tmp_path), "sources")
    _tiny_split(tmp_path, emb_classes=3)
    with pytest.raises(UserError, match="few-shot-wordemb-train.npz has 3 class embeddings but .* has 4 classes"):
        fsd.load_split(str(tmp_path), "sources")
    assert fsd.load_split(str(tmp_path), "sources", with_embeddings=False).num_classes == 4
    (tmp_path / "few-shot-train.npz").write_text("not a zip")
    with pytest.raises(UserError, match="few-shot-train.npz is not a complete .npz archive"):
        fsd.load_split(str(tmp_path), "sources")
    (tmp_path / "few-shot-train.npz").write_bytes(b"")
    with pytest.raises(UserError, match=r"few-shot-train.npz is empty \(0 bytes\)"):
        fsd.load_split(str(tmp_path), "sources")


def test_truncated_npz_is_one_clean_error(tmp_path):
    _tiny_split(tmp_path)
    path = tmp_path / "few-shot-train.npz"
    path.write_bytes(path.read_bytes()[:-200])
    proc = run_python(["-c", "from datasets import fewshot_data as f\nfrom common.errors import main_guard\n"
                       "main_guard(lambda: f.load_split(%r, 'sources'))()" % str(tmp_path)], check=False)
    assert proc.returncode == 2 and "NpzFile" not in proc.stdout and "Traceback" not in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == (   # TF 2.x logs lines of its own at import
        "error: %s is not a complete .npz archive (truncated, or not written by numpy.savez)" % path)


def _big_flat_tree(root, per_class=40):
    """A flat mini-ImageNet folder with enough images (> 64 per split) for the multi-process decoder."""
    from PIL import Image
    rng = np.random.RandomState(2)
    for split, classes in CLASSES.items():
        rows = ["filename,label"]
        for wnid in sorted(classes):
            for k in range(per_class):
                name = "%s%08d.png" % (wnid, k + 1)
                Image.fromarray(rng.randint(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)).save(os.path.join(root, name))
                rows.append("%s,%s" % (name, wnid))
        with open(os.path.join(root, split + ".csv"), "w") as f:
            f.write("\n".join(rows) + "\n")


@pytest.mark.parametrize("workers", [1, 2])
def test_builder_stops_on_an_unreadable_image_and_writes_nothing(tmp_path, workers):
    raw = tmp_path / "raw"
    raw.mkdir()
    _big_flat_tree(str(raw))
    bad = sorted(CLASSES["test"])[1] + "00000007.png"
    (raw / bad).write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    _write_vec(str(tmp_path / "w.vec"), WORDS)
    _write_dict3(str(tmp_path / "dict.txt"))
    proc = run_python(["datasets/create_dataset_miniImagenet.py", "--image_dir", raw, "--class_dict",
                       tmp_path / "dict.txt", "--word_vectors", tmp_path / "w.vec", "--output_dir",
                       tmp_path / "out", "--image_size", SIZE, "--num_workers", workers], check=False, timeout=120)
    assert proc.returncode == 2, proc.stdout
    errors = [line for line in proc.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and bad in errors[0], proc.stdout
    assert "Traceback" not in proc.stdout
    assert not (tmp_path / "out").exists() or os.listdir(str(tmp_path / "out")) == []


def test_builder_checks_every_split_list_before_writing(tmp_path):
    _make_tree(str(tmp_path / "raw"), flat=True)
    (tmp_path / "raw" / "val.csv").write_text("file,class\nx.png,n00000001\n")
    _write_vec(str(tmp_path / "w.vec"), WORDS)
    _write_dict3(str(tmp_path / "dict.txt"))
    proc = run_python(["datasets/create_dataset_miniImagenet.py", "--image_dir", tmp_path / "raw", "--class_dict",
                       tmp_path / "dict.txt", "--word_vectors", tmp_path / "w.vec", "--output_dir",
                       tmp_path / "out", "--image_size", SIZE], check=False)
    assert proc.returncode == 2 and "val.csv" in proc.stdout
    assert not (tmp_path / "out").exists() or os.listdir(str(tmp_path / "out")) == []


def test_mini_builder_rejects_a_class_in_two_splits(tmp_path):
    _make_tree(str(tmp_path / "raw"), flat=True)
    shared = sorted(CLASSES["train"])[0]
    with open(str(tmp_path / "raw" / "test.csv"), "a") as f:
        f.write("%s00000001.png,%s\n" % (shared, shared))
    _write_vec(str(tmp_path / "w.vec"), WORDS)
    _write_dict3(str(tmp_path / "dict.txt"))
    proc = run_python(["datasets/create_dataset_miniImagenet.py", "--image_dir", tmp_path / "raw", "--class_dict",
                       tmp_path / "dict.txt", "--word_vectors", tmp_path / "w.vec", "--output_dir",
                       tmp_path / "out", "--image_size", SIZE], check=False)
    assert proc.returncode == 2 and "class %s is listed in both train.csv and test.csv" % shared in proc.stdout


def test_builder_prints_time_based_progress(tmp_path, capsys, monkeypatch):
    from common import progress
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)   # a line after every image instead of every 30 s
    _make_tree(str(tmp_path / "raw"), flat=True)
    _write_vec(str(tmp_path / "w.vec"), WORDS)
    _write_dict3(str(tmp_path / "dict.txt"))
    from datasets import create_dataset_miniImagenet as mini
    mini.main(["--image_dir", str(tmp_path / "raw"), "--class_dict", str(tmp_path / "dict.txt"),
               "--word_vectors", str(tmp_path / "w.vec"), "--output_dir", str(tmp_path / "out"),
               "--image_size", str(SIZE), "--num_workers", "1"])
    total = len(CLASSES["train"]) * IMAGES_PER_CLASS
    lines = [line.split(",")[0] for line in capsys.readouterr().out.splitlines() if line.startswith("decoding train")]
    assert lines == ["decoding train: %d/%d images" % (i, total) for i in range(1, total)]


@pytest.mark.parametrize("name", ["../outside.png", "ABSOLUTE", "n00000001/../../outside.png"])
def test_mini_builder_rejects_a_listed_file_outside_the_image_folder(tmp_path, name, capsys):
    """A split CSV row '../../x.jpg' or '/abs/x.jpg' was read into the data set without a word."""
    import shutil
    _make_tree(str(tmp_path / "raw"), flat=True)
    shutil.copy(str(tmp_path / "raw" / "n0000000100000001.png"), str(tmp_path / "outside.png"))
    name = str(tmp_path / "outside.png") if name == "ABSOLUTE" else name
    with open(str(tmp_path / "raw" / "train.csv"), "a") as f:
        f.write("%s,n00000001\n" % name)
    _write_vec(str(tmp_path / "w.vec"), WORDS)
    _write_dict3(str(tmp_path / "dict.txt"))
    from datasets import create_dataset_miniImagenet as mini
    with pytest.raises(SystemExit, match="2"):
        mini.main(["--image_dir", str(tmp_path / "raw"), "--class_dict", str(tmp_path / "dict.txt"),
                   "--word_vectors", str(tmp_path / "w.vec"), "--output_dir", str(tmp_path / "out"),
                   "--image_size", str(SIZE), "--num_workers", "1"])
    assert re.search(r"^error: \S+train.csv line 14: %s is not a file name inside --image_dir" % re.escape(name),
                     capsys.readouterr().err)
    assert not (tmp_path / "out").exists() or os.listdir(str(tmp_path / "out")) == []
