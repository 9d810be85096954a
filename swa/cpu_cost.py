"""What SWA's seed script costs on a CPU (swa/README.md): the rule the wrappers' estimate line uses. An epoch is
about linear in the training points (80% of num_samples); the SGD baseline is a second run of the same length."""

MEASURED_ON = "stock TF 1.15.5 on a 2-core AMD EPYC VM, the seed model (swa/README.md)"
SAMPLE_EPOCH_SECONDS = 1.4e-6    # 0.15 s per epoch of 104858 points (batch 16384, SWA run)
TRAIN_SHARE = 0.8


def estimate(train_epochs=100, num_samples=131072, baseline=1):
    runs = 2 if baseline else 1
    seconds = runs * train_epochs * num_samples * TRAIN_SHARE * SAMPLE_EPOCH_SECONDS
    return [(seconds, "%d run(s) of %d epochs" % (runs, train_epochs))]
