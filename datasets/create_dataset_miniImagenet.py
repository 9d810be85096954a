#!/usr/bin/env python3
"""Build mini-ImageNet few-shot npz files (84x84) and class word embeddings from images + split CSVs.

    python datasets/create_dataset_miniImagenet.py --image_dir=IMAGES --split_dir=SPLITS \
        --class_dict=CLASS_DICT --word_vectors=wiki-news-300d-1M.vec --output_dir=DATA/mini-imagenet

SPLITS holds train.csv, val.csv, test.csv with `filename,label` rows; each file is looked up as IMAGES/<file>,
IMAGES/<wnid>/<file> or IMAGES/images/<file>. See datasets/builder.py for the formats.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.errors import ArgumentParser, UserError, main_guard
from datasets import builder


def find_image(image_dir, filename, wnid):
    for candidate in (os.path.join(image_dir, filename), os.path.join(image_dir, wnid, filename),
                      os.path.join(image_dir, "images", filename)):
        if os.path.isfile(candidate):
            return candidate
    raise UserError("image %s (class %s) not found in %s (looked for %s, %s/%s and images/%s)"
                    % (filename, wnid, image_dir, filename, wnid, filename, filename))


def build(args):
    names = builder.read_class_dictionary(args.class_dict)
    seen, plans = {}, []
    for split in builder.SPLITS:   # every list, class name and file is checked before any image is decoded
        rows = builder.read_image_list(os.path.join(args.split_dir, split + ".csv"))
        wnids = sorted({wnid for _, wnid in rows})
        builder.claim_classes(seen, wnids, split)
        index = {wnid: i for i, wnid in enumerate(wnids)}
        embeddings = builder.class_embeddings(wnids, names, args.word_vectors, args.class_dict,
                                              args.skip_missing_words)
        paths = [find_image(args.image_dir, filename, wnid) for filename, wnid in rows]
        plans.append((split, paths, [index[w] for _, w in rows], embeddings))
    builder.write_splits(args.output_dir, plans, args.image_size, args.seed, args.num_workers)


@main_guard
def main(argv=None):
    parser = builder.add_common_arguments(ArgumentParser(description=__doc__.split("\n")[0]))
    build(builder.check_common(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
