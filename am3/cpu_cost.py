"""What AM3's seed configuration costs on a CPU (am3/README.md, "What a CPU run costs"): the rule the wrappers'
estimate line uses. Convolutions dominate, so times scale with the square of the backbone width."""

MEASURED_ON = "stock TF 1.15.5 on a 2-core AMD EPYC VM, 64 filters (am3/README.md)"
STEP_SECONDS = 49.0          # a training step: 5 tasks x (5-way 1-shot + 24 queries) = 145 images of 84x84
EPISODE_SECONDS = 5.2        # an evaluation episode, 5-way 1-shot + 100 queries (500 test episodes: 43 min)
EPISODE_IMAGES = 105
SEED_FILTERS = 64
VALIDATION_SPLITS = 3        # each validation runs num_cases_val queries on the test, val and train splits


def validations(steps, interval=1000, fine_interval=250):
    """Validations during training: every `interval` steps in the first half, `fine_interval` in the second,
    none at the last step (as am3/train.py)."""
    half = steps // 2
    return half // interval + (steps - 1) // fine_interval - half // fine_interval


def estimate(train_steps=0, num_filters=SEED_FILTERS, eval_batch_size=100, num_cases_test=0, num_cases_val=5000,
             validate=0):
    """(seconds, what) for each phase of a wrapper run from step 0."""
    width = (float(num_filters) / SEED_FILTERS) ** 2
    episode = EPISODE_SECONDS * width * (5 + eval_batch_size) / EPISODE_IMAGES
    phases = [(train_steps * STEP_SECONDS * width, "%d training steps" % train_steps)]
    if validate:
        count = validations(train_steps)
        episodes = count * VALIDATION_SPLITS * max(1, num_cases_val // eval_batch_size)
        phases.append((episodes * episode, "%d validations" % count))
    if num_cases_test:
        episodes = max(1, num_cases_test // eval_batch_size)
        phases.append((episodes * episode, "%d test episodes" % episodes))
    return phases
