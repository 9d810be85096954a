#!/usr/bin/env python3
"""The paper's central claim on a generated task: with 1 shot, AM3 beats its visual-only base model.

Each class c has a latent code z_c. Its images are a smooth colour pattern decoded from z_c under heavy pixel
noise, so one support image gives a poor prototype; its "word embedding" is a fixed linear map of z_c plus a
little noise, so it carries the class centre. Train, validation and test classes are disjoint, so AM3 must learn
a map from word space to visual features that generalises to new classes, as with real word vectors.

    python am3/cross_modal_check.py --work_dir=/tmp/am3_check [--steps=400] [--base=protonet++]
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from common.errors import ArgumentParser, main_guard

SPLIT_CLASSES = (("train", 64), ("val", 16), ("test", 20))
AM3_OF = {"protonet++": "AM3_protonet++", "tadam": "AM3_TADAM"}
# Upstream's README settings for mini-ImageNet 1-shot. The TADAM base gets the TADAM part of the AM3-TADAM
# command (metric scale 5 and the auxiliary task), so the pair differs only in the word-embedding branch.
UPSTREAM_SETTINGS = {
    "protonet++": [],
    "AM3_protonet++": ["--mlp_dropout=0.7", "--att_input=word", "--task_encoder=self_att_mlp", "--mlp_type=non-linear",
                       "--mlp_weight_decay=0.001"],
    "tadam": ["--metric_multiplier_init=5", "--feat_extract_pretrain=multitask"],
    "AM3_TADAM": ["--metric_multiplier_init=5", "--feat_extract_pretrain=multitask", "--activation_mlp=relu",
                  "--att_dropout=0.7", "--att_type=non-linear", "--att_weight_decay=0.001", "--mlp_dropout=0.7",
                  "--mlp_type=non-linear", "--mlp_weight_decay=0.001", "--att_input=word",
                  "--task_encoder=self_att_mlp"],
}


def make_task(out_dir, size=16, per_class=40, latent=8, word_dim=32, signal=60.0, distractor=60.0, pixel_noise=40.0,
              word_noise=0.05, seed=0):
    """Write few-shot-*.npz and few-shot-wordemb-*.npz for the generated task into out_dir.

    image = 128 + signal * pattern(z_class) + distractor * pattern(z_random, new per image) + pixel noise
    """
    rng = np.random.RandomState(seed)
    decode = rng.randn(latent, 4 * 4 * 3) / np.sqrt(latent)   # latent -> 4x4 colour pattern, upsampled
    to_words = rng.randn(latent, word_dim) / np.sqrt(latent)  # latent -> word embedding, shared by all splits
    os.makedirs(out_dir, exist_ok=True)
    for split, classes in SPLIT_CLASSES:
        z = rng.randn(classes, latent)
        labels = rng.permutation(np.repeat(np.arange(classes), per_class))
        images = 128.0 + signal * _pattern(z[labels], decode, size) \
            + distractor * _pattern(rng.randn(len(labels), latent), decode, size) \
            + pixel_noise * rng.randn(len(labels), size, size, 3)
        np.savez(os.path.join(out_dir, "few-shot-%s.npz" % split),
                 features=np.clip(images, 0, 255).astype(np.uint8), targets=labels)
        words = z @ to_words + word_noise * rng.randn(classes, word_dim)
        np.savez(os.path.join(out_dir, "few-shot-wordemb-%s.npz" % split), features=words.astype(np.float32))
    return out_dir


def _pattern(z, decode, size):
    patterns = np.tanh(z @ decode).reshape(len(z), 4, 4, 3)
    return np.kron(patterns, np.ones((1, size // 4, size // 4, 1)))


def run_pair(work_dir, steps, base, test_cases, seed, extra=()):
    """Train and test `base` and its AM3 version on the generated task, each with upstream's recommended settings
    (UPSTREAM_SETTINGS); returns {variant: test results}."""
    from am3 import flags, train
    data = make_task(os.path.join(work_dir, "data"), seed=seed)
    common = ["--data_dir", data, "--number_of_steps", str(steps), "--num_classes_train=5", "--num_shots_train=1",
              "--num_shots_test=1", "--num_tasks_per_batch=5", "--train_batch_size=15", "--num_filters=8",
              "--num_blocks=3", "--num_units_in_block=2", "--num_max_pools=2", "--eval_interval_steps=0",
              "--eval_interval_fine_steps=0", "--num_steps_decay_pwc", str(max(steps // 4, 1)),
              "--num_cases_test", str(test_cases), "--log_interval_steps", str(max(steps // 4, 1)),
              "--seed", str(seed), "--save_checkpoint_steps", str(steps)]
    results = {}
    for variant in (base, AM3_OF[base]):
        log_dir = os.path.join(work_dir, variant)
        args = common + UPSTREAM_SETTINGS[variant] + list(extra) + ["--log_dir", log_dir]
        train.run(flags.parse_config(variant, args))
        results[variant] = train.run(flags.parse_config(variant, args + ["--mode=test"]))
    return results


@main_guard
def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work_dir", required=True, help="scratch folder for the data, checkpoints and results")
    p.add_argument("--steps", type=int, default=400, help="training steps of each model")
    p.add_argument("--base", default="protonet++", choices=sorted(AM3_OF), help="visual-only base model")
    p.add_argument("--num_cases_test", type=int, default=20000, help="test queries (100 per episode)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    results = run_pair(args.work_dir, args.steps, args.base, args.num_cases_test, args.seed)
    summary = {k: {"accuracy": v["accuracy"], "ci95": v["ci95"], "lambda": v["lambda"]} for k, v in results.items()}
    print(json.dumps(summary, indent=1, sort_keys=True))
    with open(os.path.join(args.work_dir, "cross_modal_check.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
