"""What MT-net's seed configuration costs on a CPU (mtnet/README.md): the rule the wrappers' estimate line uses.
A meta-training step is about linear in the tasks of its meta-batch; the 600 regression test tasks take seconds."""

MEASURED_ON = "stock TF 1.15.5 on a 2-core AMD EPYC VM, sinusoid seed configuration (mtnet/README.md)"
STEP_SECONDS = 0.0015        # 60000-iteration runs averaged 1.3-1.7 ms a step with meta_batch_size 4
SEED_TASKS = 4


def estimate(train_steps=0, meta_batch_size=SEED_TASKS):
    return [(train_steps * STEP_SECONDS * float(meta_batch_size) / SEED_TASKS,
             "%d meta-training iterations" % train_steps)]
