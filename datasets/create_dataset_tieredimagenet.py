#!/usr/bin/env python3
"""Build tiered-ImageNet few-shot npz files (84x84) and class word embeddings from an ImageNet image tree.

    python datasets/create_dataset_tieredimagenet.py --image_dir=ILSVRC/Data/CLS-LOC/train --split_dir=SPLITS \
        --class_dict=LOC_synset_mapping.txt --word_vectors=wiki-news-300d-1M.vec --output_dir=DATA/tiered-imagenet

SPLITS holds train.csv, val.csv, test.csv listing the classes of each split (wnid first on each row, e.g.
`n01530575,n01503061`); every image of IMAGE_DIR/<wnid>/ is used. Output images are held in a memory-mapped
file while they are decoded, so the 448k training images do not need to fit in memory twice.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.errors import ArgumentParser, UserError, main_guard
from datasets import builder

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp")


def class_images(image_dir, wnid):
    folder = os.path.join(image_dir, wnid)
    if not os.path.isdir(folder):
        raise UserError("class folder %s does not exist" % folder)
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise UserError("class folder %s holds no images (%s)" % (folder, ", ".join(IMAGE_EXTENSIONS)))
    return [os.path.join(folder, f) for f in files]


def build(args):
    names = builder.read_class_dictionary(args.class_dict)
    seen, plans = {}, []
    for split in builder.SPLITS:   # every list, class name and folder is checked before any image is decoded
        wnids = builder.read_class_list(os.path.join(args.split_dir, split + ".csv"))
        builder.claim_classes(seen, wnids, split)
        embeddings = builder.class_embeddings(wnids, names, args.word_vectors, args.class_dict,
                                              args.skip_missing_words)
        paths, labels = [], []
        for i, wnid in enumerate(wnids):
            files = class_images(args.image_dir, wnid)
            paths.extend(files)
            labels.extend([i] * len(files))
        plans.append((split, paths, labels, embeddings))
    builder.write_splits(args.output_dir, plans, args.image_size, args.seed, args.num_workers)


@main_guard
def main(argv=None):
    parser = builder.add_common_arguments(ArgumentParser(description=__doc__.split("\n")[0]))
    build(builder.check_common(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
