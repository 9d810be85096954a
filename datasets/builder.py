"""Shared parts of the dataset builders: split lists, class-name dictionaries, word vectors, images, npz output.

Inputs (user-supplied; nothing is downloaded):
  split CSVs        mini-ImageNet: `filename,label` rows (n0153282900000005.jpg,n01532829);
                    tiered-ImageNet: one class per row, wnid first (`n01530575[,category...]`).
  class dictionary  `wnid index name` lines (name words joined by '_', e.g. `n02119789 1 kit_fox`), or ImageNet's
                    LOC_synset_mapping.txt style `wnid name, synonym, ...` (the first name is used).
  word vectors      fastText/GloVe text `.vec`: optional `count dim` header, then `word v1 ... vdim` lines.
Outputs: few-shot-{split}.npz (features uint8 [N,S,S,3], targets int32 = index of the wnid in the sorted class
list of the split) and few-shot-wordemb-{split}.npz (features float32 [classes, dim]: the mean of the vectors
of the words of each class name, in the same sorted order).
"""
import csv
import io
import multiprocessing
import os
import re

import numpy as np

from common.errors import UserError
from common.progress import Progress

WNID = re.compile(r"^n\d{8}$")
SPLITS = ("train", "val", "test")


def read_image_list(path):
    """mini-ImageNet split CSV -> list of (filename, wnid)."""
    if not os.path.isfile(path):
        raise UserError("missing split file %s" % path)
    with io.open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["filename", "label"]:
            raise UserError("%s: expected a 'filename,label' header line, got %r" % (path, header))
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2 or not WNID.match(row[1].strip()) or not row[0].strip():
                raise UserError("%s line %d: expected 'filename,wnid' such as n0153282900000005.jpg,n01532829, "
                                "got %r" % (path, line_no, ",".join(row)))
            filename = row[0].strip()
            if not _inside(filename):   # the list names files of --image_dir, never of the rest of the disk
                raise UserError("%s line %d: %s is not a file name inside --image_dir (an absolute path, or '..' "
                                "leading out of it)" % (path, line_no, filename))
            rows.append((filename, row[1].strip()))
    if not rows:
        raise UserError("%s lists no images" % path)
    return rows


def _inside(filename):
    """A relative name that stays inside the folder it is looked up in (also one level down, under <wnid>/)."""
    parts = filename.replace("\\", "/").split("/")
    return not os.path.isabs(filename) and ".." not in parts


def read_class_list(path):
    """tiered-ImageNet split CSV -> sorted list of distinct wnids (first column; a header line is skipped)."""
    if not os.path.isfile(path):
        raise UserError("missing split file %s" % path)
    wnids = []
    with io.open(path, newline="", encoding="utf-8") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if not row or not row[0].strip():
                continue
            first = row[0].strip()
            if WNID.match(first):
                wnids.append(first)
            elif line_no != 1:
                raise UserError("%s line %d: expected a class wnid such as n01530575 first, got %r"
                                % (path, line_no, first))
    if not wnids:
        raise UserError("%s lists no classes" % path)
    return sorted(set(wnids))


def claim_classes(seen, wnids, split):
    """Record the classes of `split` in `seen` ({wnid: split}); few-shot splits must not share a class."""
    for wnid in wnids:
        if wnid in seen:
            raise UserError("class %s is listed in both %s.csv and %s.csv (few-shot splits must not share "
                            "classes)" % (wnid, seen[wnid], split))
        seen[wnid] = split


def read_class_dictionary(path):
    """Class-name dictionary -> {wnid: name}. Accepts `wnid index name` and `wnid name, synonym, ...` lines."""
    if not os.path.isfile(path):
        raise UserError("missing class dictionary %s" % path)
    names = {}
    with io.open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(None, 1)
            if len(parts) < 2 or not WNID.match(parts[0]):
                raise UserError("%s line %d: expected 'wnid index name' or 'wnid name, synonym, ...', got %r"
                                % (path, line_no, line))
            rest = parts[1].split()
            if len(rest) == 2 and rest[0].isdigit():
                name = rest[1]                      # `wnid index name_with_underscores`
            else:
                name = parts[1].split(",")[0]       # `wnid name words, synonym, ...`
            names.setdefault(parts[0], name.strip())
    if not names:
        raise UserError("%s holds no classes" % path)
    return names


def class_words(name):
    """Words of a class name: 'kit_fox' or 'kit fox' -> ['kit', 'fox'] (hyphens and apostrophes stay)."""
    return [w for w in re.split(r"[\s_]+", name.strip()) if w]


def load_word_vectors(path, words):
    """{word: vector} for the requested words (lower-case and original case) from a .vec text file."""
    if not os.path.isfile(path):
        raise UserError("missing word-vector file %s" % path)
    wanted = set(words) | {w.lower() for w in words}
    found, dim = {}, None
    with io.open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if line_no == 1 and len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                continue                            # fastText header: count dim
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            elif len(parts) - 1 != dim:
                raise UserError("%s line %d: %d values where earlier lines have %d" % (
                    path, line_no, len(parts) - 1, dim))
            if parts[0] in wanted and parts[0] not in found:
                try:
                    found[parts[0]] = np.asarray(parts[1:], dtype=np.float64)
                except ValueError:
                    raise UserError("%s line %d: non-numeric vector for %r" % (path, line_no, parts[0]))
    if dim is None:
        raise UserError("%s holds no word vectors" % path)
    return found, dim


def class_embeddings(wnids, names, vectors_path, dictionary_path, skip_missing_words=False):
    """[classes, dim] float32: per class, the mean vector of its name's words (looked up lower-case first)."""
    missing_names = [w for w in wnids if w not in names]
    if missing_names:
        raise UserError("class dictionary %s has no entry for %d class(es) of the split, e.g. %s"
                        % (dictionary_path, len(missing_names), ", ".join(missing_names[:3])))
    words = [w for wnid in wnids for w in class_words(names[wnid])]
    vectors, dim = load_word_vectors(vectors_path, words)
    rows, problems = [], []
    for wnid in wnids:
        found = []
        for word in class_words(names[wnid]):
            vec = vectors.get(word.lower(), vectors.get(word))
            if vec is None:
                problems.append("'%s' (class %s '%s')" % (word, wnid, names[wnid]))
            else:
                found.append(vec)
        if not found:
            raise UserError("word-vector file %s has no vector for any word of class %s '%s'"
                            % (vectors_path, wnid, names[wnid]))
        rows.append(np.mean(found, axis=0))
    if problems and not skip_missing_words:
        raise UserError("word-vector file %s has no vector for %s%s; add them or pass --skip_missing_words to "
                        "average the words that are present" % (
                            vectors_path, problems[0],
                            " and %d more word(s)" % (len(problems) - 1) if len(problems) > 1 else ""))
    for problem in problems:
        print("warning: no word vector for %s; averaging the other words" % problem)
    return np.asarray(rows, dtype=np.float32).reshape(len(wnids), dim)


def load_image(path, size):
    """RGB uint8 [size, size, 3]: central square crop, bilinear resize (as upstream)."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            width, height = image.size
            crop = min(width, height)
            left, top = (width - crop) // 2, (height - crop) // 2
            image = image.crop((left, top, left + crop, top + crop))
            if crop != size:
                image = image.resize((size, size), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except (IOError, OSError, ValueError) as err:
        raise UserError("cannot read image %s: %s" % (path, err))


def _load(args):
    """Pool worker: (image, None), or (None, message) for an unreadable image. Errors travel as values: an
    exception raised in a worker left the parent stuck in pool.terminate() (seen with one bad JPEG)."""
    try:
        return load_image(*args), None
    except UserError as err:
        return None, str(err)


def _decoded(jobs, workers):
    """Yield the images of `jobs` in order; the first unreadable one raises UserError."""
    pool = multiprocessing.Pool(workers) if workers > 1 and len(jobs) > 64 else None
    try:
        results = pool.imap(_load, jobs, chunksize=32) if pool else map(_load, jobs)
        for image, problem in results:
            if problem:
                raise UserError(problem)
            yield image
    finally:
        if pool:
            pool.terminate()
            pool.join()


def _decode_split(output_dir, split, paths, size, workers):
    """Decode `paths` into a hidden .npy memmap in output_dir; returns its path. Progress every ~30 s."""
    tmp = os.path.join(output_dir, ".few-shot-%s.features.npy" % split)
    features = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
    progress = Progress("decoding %s" % split, len(paths), "images")
    try:
        for i, image in enumerate(_decoded([(p, size) for p in paths], workers)):
            features[i] = image
            progress.update(i + 1)
        features.flush()
    except BaseException:
        features = None   # closes the memmap before its file goes
        os.remove(tmp)
        raise
    del features
    return tmp


def write_splits(output_dir, plans, size, seed, workers):
    """plans: [(split, paths, labels, embeddings)] in SPLITS order, all checked already. Each split's images go
    in a seeded random order (seed + its position) into few-shot-{split}.npz, beside few-shot-wordemb-{split}.npz.
    Files are written under hidden names and renamed only when every split decoded: a bad image or a stop
    leaves no partial data set behind."""
    os.makedirs(output_dir, exist_ok=True)
    pending = []
    try:
        for offset, (split, paths, labels, embeddings) in enumerate(plans):
            order = np.random.RandomState(seed + offset).permutation(len(paths))
            paths = [paths[i] for i in order]
            labels = np.asarray(labels, dtype=np.int32)[order]
            pending.append(_decode_split(output_dir, split, paths, size, workers))
            features = np.load(pending[-1], mmap_mode="r")
            for name, arrays in (("few-shot-%s.npz" % split, dict(features=features, targets=labels)),
                                 ("few-shot-wordemb-%s.npz" % split, dict(features=embeddings))):
                hidden = os.path.join(output_dir, "." + name)
                with open(hidden, "wb") as f:   # a file object: np.savez would append .npz to the name
                    np.savez(f, **arrays)
                pending.append(hidden)
            del features
        for hidden in pending:
            if hidden.endswith(".npz"):
                os.replace(hidden, os.path.join(output_dir, os.path.basename(hidden)[1:]))
    finally:
        for hidden in pending:
            if os.path.exists(hidden):
                os.remove(hidden)
    for split, paths, _, embeddings in plans:
        print("%s: %d images of %d classes -> %s" % (split, len(paths), embeddings.shape[0],
                                                     os.path.join(output_dir, "few-shot-%s.npz" % split)), flush=True)


def _bool(text):
    return str(text).strip().lower() in ("1", "true", "t", "yes", "y", "on")


def add_common_arguments(parser):
    a = parser.add_argument
    a("--image_dir", "--data-dir", dest="image_dir", required=True,
      help="ImageNet-style image tree (IMAGE_DIR/<wnid>/<file>) or a flat folder of the listed files")
    a("--split_dir", default=None, help="folder with train.csv, val.csv, test.csv (default: IMAGE_DIR)")
    a("--class_dict", "--class_label_addr", dest="class_dict", required=True,
      help="class-name dictionary: 'wnid index name' or LOC_synset_mapping.txt-style 'wnid name, ...' lines")
    a("--word_vectors", "--emb_addr", dest="word_vectors", required=True,
      help="fastText/GloVe .vec text file of word vectors")
    a("--output_dir", "--output-dir", dest="output_dir", required=True, help="where the npz files are written")
    a("--image_size", type=int, default=84, help="side of the square output images")
    a("--seed", type=int, default=2017 + 5 + 17, help="seed of the image order in each npz (upstream's)")
    a("--num_workers", type=int, default=os.cpu_count() or 1, help="image decoding processes")
    a("--skip_missing_words", type=_bool, nargs="?", const=True, default=False,
      help="average the words of a class name that have vectors instead of failing on a missing one")
    return parser


def check_common(args):
    if not os.path.isdir(args.image_dir):
        raise UserError("image directory %s does not exist" % args.image_dir)
    if args.image_size < 4:
        raise UserError("--image_size must be at least 4, got %d" % args.image_size)
    args.split_dir = args.split_dir or args.image_dir
    if not os.path.isdir(args.split_dir):
        raise UserError("split directory %s does not exist" % args.split_dir)
    return args
