#!/usr/bin/env python3
"""MT-net's image folders, prepared as upstream's scripts do (our code): Omniglot at 28x28, miniImageNet at 84x84,
both resized with Lanczos filtering as upstream's resize_images.py and proc_images.py; written to a new folder
(upstream resized its source images in place).

    python datasets/prepare_mtnet_data.py omniglot --source=OMNIGLOT --output_dir=DATA/omniglot_resized
    python datasets/prepare_mtnet_data.py miniimagenet --image_dir=IMAGES --split_dir=SPLITS \
        --output_dir=DATA/miniImagenet

OMNIGLOT holds the contents of Omniglot's images_background and images_evaluation, <alphabet>/<character>/*.png
(or those two folders themselves); the output is <alphabet>/<character>/*.png, which --datasource=omniglot reads.
SPLITS holds Ravi & Larochelle's train.csv, val.csv, test.csv (`filename,label`); each image is looked up as
IMAGES/<file>, IMAGES/<wnid>/<file> or IMAGES/images/<file>; the output is {train,val,test}/<wnid>/<file>.jpg.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.errors import ArgumentParser, UserError, main_guard  # noqa: E402
from common.progress import Progress  # noqa: E402
from datasets import builder  # noqa: E402
from datasets.create_dataset_miniImagenet import find_image  # noqa: E402

OMNIGLOT_SIZE = 28
MINI_SIZE = 84
OMNIGLOT_HALVES = ("images_background", "images_evaluation")


def _image():
    from PIL import Image
    return Image


def _new_output(path):
    if os.path.isdir(path) and os.listdir(path):
        raise UserError("output folder %s is not empty: give a new one (nothing is overwritten)" % path)
    os.makedirs(path, exist_ok=True)


def _dirs(path):
    return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith("."))


def omniglot_characters(source):
    """[(alphabet, character, folder)] of the source: its two halves' alphabets, or its own."""
    if not os.path.isdir(source):
        raise UserError("--source %s is not a folder" % source)
    roots = [os.path.join(source, h) for h in OMNIGLOT_HALVES if os.path.isdir(os.path.join(source, h))] or [source]
    found = [(alphabet, character, os.path.join(root, alphabet, character))
             for root in roots for alphabet in _dirs(root) for character in _dirs(os.path.join(root, alphabet))]
    if not found:
        raise UserError("no <alphabet>/<character>/ folders in %s (expected Omniglot's images_background and "
                        "images_evaluation, or their contents)" % source)
    return found


def resize(source, target, size):
    """One image: Lanczos resize to size x size (upstream's filter), saved in the target's format."""
    Image = _image()
    try:
        with Image.open(source) as image:
            image.resize((size, size), resample=Image.LANCZOS).save(target)
    except (IOError, OSError) as err:
        raise UserError("cannot read image %s: %s" % (source, err))


def prepare_omniglot(source, output_dir):
    jobs = []
    for alphabet, character, folder in omniglot_characters(source):
        for name in sorted(os.listdir(folder)):
            if name.lower().endswith(".png"):
                jobs.append((os.path.join(folder, name), os.path.join(output_dir, alphabet, character, name)))
    return jobs


def prepare_mini(image_dir, split_dir, output_dir):
    jobs = []
    for split in builder.SPLITS:
        for filename, wnid in builder.read_image_list(os.path.join(split_dir, split + ".csv")):
            jobs.append((find_image(image_dir, filename, wnid), os.path.join(output_dir, split, wnid, filename)))
    return jobs


def run(jobs, size):
    progress = Progress("resize", len(jobs), "images")
    for i, (source, target) in enumerate(jobs):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        resize(source, target, size)
        progress.update(i + 1)
    print("wrote %d images of %dx%d" % (len(jobs), size, size), flush=True)


@main_guard
def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="dataset")
    omni = sub.add_parser("omniglot", help="Omniglot -> <alphabet>/<character>/*.png at 28x28")
    omni.add_argument("--source", required=True, help="Omniglot's images_background and images_evaluation")
    omni.add_argument("--output_dir", required=True, help="a new folder (the --data_path of omniglot runs)")
    mini = sub.add_parser("miniimagenet", help="miniImageNet -> {train,val,test}/<wnid>/*.jpg at 84x84")
    mini.add_argument("--image_dir", required=True, help="ImageNet images (see the usage above)")
    mini.add_argument("--split_dir", required=True, help="folder of train.csv, val.csv, test.csv")
    mini.add_argument("--output_dir", required=True, help="a new folder (the --data_path of miniimagenet runs)")
    args = parser.parse_args(argv)
    if args.dataset == "omniglot":
        jobs, size = prepare_omniglot(args.source, args.output_dir), OMNIGLOT_SIZE
    elif args.dataset == "miniimagenet":
        jobs, size = prepare_mini(args.image_dir, args.split_dir, args.output_dir), MINI_SIZE
    else:
        raise UserError("give the data set: omniglot or miniimagenet (see --help)")
    _new_output(args.output_dir)
    run(jobs, size)


if __name__ == "__main__":
    main()
